"""Mini-batch training loop with evaluation, history, callbacks and a progress bar.

    trainer = Trainer(net, optim.Adam(lr=1e-3), batch_size=100, epochs=10, seed=0)
    history = trainer.fit(x_train, t_train, validation_data=(x_test, t_test))
    history["loss"], history["train_acc"], history["val_acc"]

    loader = cdl.data.DataLoader(x_train, t_train, batch_size=100, seed=0)  # memmaps too
    history = trainer.fit(loader, validation_data=(x_test, t_test))

Each epoch shuffles the training set with the trainer's own generator (same
seed, same batches), runs ``loss -> backward -> update`` per batch, then
evaluates. NaN or Inf in the targets or the validation data is refused up
front (ValueError); one in a batch or in the loss stops training with an
error naming the epoch and the batch. Callbacks see every batch and epoch
and may set ``trainer.stop_training = True``.

Ctrl-C (KeyboardInterrupt) during ``fit`` stops training at once, runs the
callbacks' ``on_train_end`` (so they can restore or save), sets
``trainer.interrupted = True`` and returns the history of the finished
epochs; ``trainer.epoch`` is the last finished epoch.

Checkpoints (``cdl.checkpoint``): ``Trainer(..., checkpoint=path)`` writes one
at the end of every epoch, atomically; ``save_checkpoint(path)`` and
``load_checkpoint(path)`` do it by hand. A run resumed from the checkpoint of
epoch k with the same setup (seed, data, callbacks) continues bit for bit:
``fit`` then trains ``epochs`` more epochs, k+1 on.
"""
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from cdl import cuda
from cdl._checks import check_finite, check_float, check_int, positive_int
from cdl.callbacks import Callback
from cdl.init import rng_scope
from cdl.predictor import count_correct
from cdl.sampler import BatchSampler

__all__ = ["Trainer", "Callback"]  # Callback lives in cdl.callbacks; imported from here too


class Trainer:
    """Train a model with an optimizer on mini-batches.

    model       a Sequential (``loss``, ``backward``, ``params``, ``grads``, ``accuracy``);
                the Trainer calls ``backward(input_grad=False)``: nothing reads dL/dx
    optimizer   anything with ``update(params, grads)``
    batch_size  samples per update; the last, smaller batch of an epoch is kept
    epochs      passes over the training set
    seed        seeds the shuffling, ``augment`` and the noise of layers built without
                their own ``rng`` (Dropout masks: drawn from a generator of the trainer's
                seed, not the package one, so trainers in several threads do not mix
                their draws); independent of weight init
    callbacks   list of Callback
    augment     optional ``f(x, t, rng) -> (x, t)`` applied to training batches only
    eval_samples  evaluate train accuracy on at most this many training samples
    eval_batch_size  samples per forward pass in evaluation
    verbose     print a line per epoch; ``progress`` shows a tqdm bar per epoch
                (None: only when stderr is a terminal)
    out         the stream the epoch lines go to (default sys.stdout)
    device      "cpu", or "cuda": the model moves to the GPU at the first epoch (create
                the optimizer's state there: a fresh optimizer does so by itself), each
                batch is copied there, and a step brings back only the loss; evaluation
                copies predictions back. ``model.to_host()`` before saving is optional.
    checkpoint  a path: write a checkpoint there after every epoch (its folder is checked
                now); resume with ``load_checkpoint`` (``cdl.checkpoint`` says what it holds)
    precision   "float32" (as the model is), or "float16": mixed precision for a float32
                model (``cdl.precision``): float16 weights and activations, float32 master
                weights and compute, dynamic loss scaling by ``self.scaler`` (a LossScaler,
                also appended to the callbacks so checkpoints keep its state; pass one as
                precision= for other settings). Evaluation uses the float32 weights.
    comm        a ``cdl.distributed`` communicator (or an ``AllReduceOptimizer``, whose comm
                is used): data-parallel training over MPI. ``batch_size`` is then per rank
                (a global batch of batch_size * comm.size); every rank starts from rank 0's
                weights, reads its own shard of each global batch, and the gradients are
                averaged over the ranks during backward; only rank 0 prints, shows progress
                and writes checkpoints (``cdl.distributed.training``).
    """

    def __init__(self, model, optimizer, batch_size=100, epochs=10, seed=None,
                 callbacks=(), augment=None, eval_samples=None, eval_batch_size=1000,
                 verbose=True, progress=None, out=None, device="cpu", checkpoint=None,
                 precision="float32", comm=None):
        if device not in ("cpu", "cuda"):
            raise ValueError(f"Trainer: device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda":
            cuda._require()  # one clear error when there is no GPU
        self.device = device
        if checkpoint is not None:
            from cdl._atomic import check_save_path
            check_save_path(checkpoint)  # a bad folder fails now, not after the first epoch
        self.checkpoint = checkpoint
        self._loader = None      # the seeded DataLoader being trained on (its rng is saved)
        self._loader_rng = None  # a restored loader generator, for the next fit on a loader
        if not callable(getattr(optimizer, "update", None)):
            raise ValueError(f"Trainer: optimizer must have update(params, grads) (e.g. "
                             f"cdl.optim.SGD()), got {type(optimizer).__name__}")
        self.model, self.optimizer = model, optimizer
        self.batch_size = positive_int("Trainer", "batch_size", batch_size)
        self.epochs = check_int("Trainer", "epochs", epochs, minimum=0)
        self.rng = np.random.default_rng(seed)
        self.noise_rng = None if seed is None else np.random.default_rng([seed, 1])
        self.callbacks = list(callbacks)
        self.precision, self.scaler, self._mixed = _precision(precision, model, self.callbacks)
        if comm is None and type(optimizer).__name__ == "AllReduceOptimizer":
            comm = optimizer.comm
        self.comm, self._sync = comm, None  # _sync: the GradSync while fit runs on > 1 rank
        self._where = (0, 0)  # (epoch, batch) of the step running, for error messages
        self.augment = augment
        self.eval_samples, self.eval_batch_size = eval_samples, eval_batch_size
        self.verbose, self.progress = verbose, progress
        self.out = out if out is not None else sys.stdout
        self.history = {}
        self.epoch = 0
        self.stop_training = False
        self.interrupted = False

    def _call(self, hook, *args):
        for cb in self.callbacks:  # duck-typed callbacks may define only the hooks they use
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    def fit(self, x, t=None, validation_data=None):
        """Train for ``epochs`` epochs; returns the history dict of per-epoch lists.

        x, t: arrays, or x a ``cdl.data.DataLoader`` and t omitted: the loader
        then makes the batches (its batch_size, not the trainer's; a loader
        without a seed is shuffled by the trainer's generator), and
        validation_data, given as raw arrays like the loader's, gets the
        loader's conversion and normalization (``loader.like``).
        validation_data may also be a DataLoader (evaluated in order).
        """
        if _is_loader(x):
            if t is not None:
                raise ValueError("Trainer.fit: a DataLoader carries its own targets; call "
                                 "fit(loader) without t")
            if validation_data is not None and not _is_loader(validation_data):
                validation_data = x.like(*validation_data)
            return self._fit(x, None, validation_data)
        if t is None:
            raise ValueError("Trainer.fit: targets t missing (pass fit(x, t) or a DataLoader)")
        x = check_float("Trainer.fit", x, ndim=range(2, 8), what="training data")
        t = np.asarray(t)
        if len(t) != len(x):
            raise ValueError(f"Trainer.fit: {len(t)} targets for {len(x)} samples "
                             f"(x {x.shape}, t {t.shape})")
        _check_targets(t, "t (training targets)")
        if validation_data is not None and not _is_loader(validation_data):
            xv, tv = validation_data
            xv = check_float("Trainer.fit", xv, ndim=x.ndim, what="validation data")
            if len(tv) != len(xv):
                raise ValueError(f"Trainer.fit: {len(tv)} validation targets for "
                                 f"{len(xv)} samples")
            # a NaN here would only show up as a NaN val_loss, which EarlyStopping skips
            check_finite("Trainer.fit", xv, "validation_data x")
            tv = np.asarray(tv)
            _check_targets(tv, "validation_data t")
            validation_data = (xv, tv)
        return self._fit(x, t, validation_data)

    def save_checkpoint(self, path):
        """Write the run's state to path, atomically (``cdl.checkpoint``); with ``comm``, only
        rank 0 writes (every rank holds the same state)."""
        if self.comm is not None and self.comm.rank != 0:
            return
        from cdl import checkpoint
        checkpoint.save(self, path)

    def load_checkpoint(self, path):
        """Restore the run's state from path (``cdl.checkpoint``): the model's weights, the
        optimizer's state, epoch, history, generators and callbacks' state. The model,
        optimizer type and stateful callbacks must be those of the saved run
        (ValueError otherwise, as for a damaged file; FileNotFoundError when missing)."""
        from cdl import checkpoint
        checkpoint.load(self, path)

    def _fit(self, x, t, validation_data):
        """The epochs of ``fit`` on checked data (t None: x is a DataLoader)."""
        self.stop_training = self.interrupted = False
        self._loader = x if t is None and x.seed is not None else None
        if self._loader is not None and self._loader_rng is not None:
            from cdl.rngstate import set_generator
            self._loader.rng = set_generator(self._loader.rng, self._loader_rng)
            self._loader_rng = None
        dist = None
        if self.comm is not None and self.comm.size > 1:
            from cdl.distributed import training as dist
            dist.start(self)
        try:
            return self._epochs(x, t, validation_data, dist)
        finally:
            if dist is not None:
                dist.stop(self)

    def _epochs(self, x, t, validation_data, dist):
        self._call("on_train_begin")
        done = self.epoch  # the last finished epoch
        first = done + 1
        self._last_epoch = first + self.epochs - 1
        root = self.comm is None or self.comm.rank == 0
        try:
            for epoch in range(first, first + self.epochs):
                self.epoch = epoch
                self._call("on_epoch_begin", epoch)
                start = time.perf_counter()
                if dist is not None:
                    dist.rank_streams(self)
                with rng_scope(self.noise_rng):
                    loss = self._train_epoch(x, t, epoch)
                if dist is not None:  # every rank evaluates and saves the same model
                    self.comm.average_buffers(self.model)
                logs = {"epoch": epoch, "loss": loss}
                self._call("on_eval_begin")
                try:
                    logs.update(self.evaluate(x, t, validation_data))
                finally:
                    self._call("on_eval_end")
                logs["time"] = time.perf_counter() - start
                if dist is not None:  # rank 0's logs: callbacks decide alike on every rank
                    logs = self.comm.bcast(logs)
                for k, v in logs.items():
                    self.history.setdefault(k, []).append(v)
                done = epoch
                self._call("on_epoch_end", epoch, logs)
                if self.checkpoint is not None:
                    self.save_checkpoint(self.checkpoint)
                if self.verbose and root:
                    print(self._format(logs), file=self.out, flush=True)
                if dist is not None:
                    self.stop_training = dist.agree(self, self.stop_training)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            if dist is not None:  # ranks stop at different batches: end the job (excepthook)
                raise
            # Ctrl-C: stop now, but keep the finished epochs and let the callbacks
            # restore or save (on_train_end) as after any other stop
            self.interrupted, self.epoch = True, done
        self._call("on_train_end")
        return self.history

    def _batches(self, x, t):
        """(batches, count, augment's rng): an iterator of (idx, xb, tb, n_global) for one
        epoch, its order drawn now (n_global: the rows of the global batch idx is part of)."""
        if self._sync is not None:
            return self._shards(x, t)
        if t is None:  # a DataLoader
            return ((idx, xb, tb, len(idx)) for idx, xb, tb in
                    x.batches(self.rng if x.seed is None else None)), len(x), self.rng
        sampler = BatchSampler(len(x), self.batch_size)
        return ((idx, x[idx], t[idx], len(idx)) for idx, _ in sampler.epoch(self.rng)), \
            len(sampler), self.rng

    def _shards(self, x, t):
        """_batches on one of several ranks: this rank's shard of every global batch, and
        augmentation from a generator of this rank (the shared one stays in step)."""
        from cdl.distributed import training as dist
        comm = self.comm
        if t is None:  # a DataLoader
            sampler = BatchSampler(x.num_samples, x.batch_size, comm.rank, comm.size,
                                   shuffle=x.shuffle, drop_last=x.drop_last)
            rng = self.rng if x.seed is None else x.rng
            batches = dist.loader_batches(self, x, sampler, rng)
        else:
            sampler = BatchSampler(len(x), self.batch_size, comm.rank, comm.size)
            batches = ((idx, x[idx], t[idx], n) for idx, n in sampler.epoch(self.rng))
        aug = dist.jumped(self.rng, comm.rank + 1) if self.augment is not None else None
        return batches, len(sampler), aug

    def _train_epoch(self, x, t, epoch):
        if self.device == "cuda" and not self.model._on_device():  # Sequential's
            self.model.to_device()
        batches, n_batches, aug_rng = self._batches(x, t)
        quiet = self.comm is not None and self.comm.rank != 0  # rank 0 shows the progress
        bar = tqdm(total=n_batches, desc=f"epoch {epoch}", leave=False, unit="batch",
                   disable=True if quiet else
                   (None if self.progress is None else not self.progress),
                   file=sys.stderr)
        total, seen = 0.0, 0
        dist = None
        if self._sync is not None:
            from cdl.distributed import training as dist
        try:
            for b, (idx, xb, tb, n_global) in enumerate(batches):
                if self.augment is not None:
                    xb, tb = self.augment(xb, tb, aug_rng)
                if not np.isfinite(xb).all():
                    raise FloatingPointError(
                        f"Trainer: NaN or Inf in the input at epoch {epoch}, batch {b + 1} "
                        f"(samples {np.sort(idx)[:5].tolist()}...); clean the data")
                if tb.dtype.kind in "fc" and not np.isfinite(tb).all():
                    raise FloatingPointError(
                        f"Trainer: NaN or Inf in the targets at epoch {epoch}, batch {b + 1} "
                        f"(samples {np.sort(idx)[:5].tolist()}...); check the data or augment")
                if self.device == "cuda":  # the batch goes to the GPU; only the loss comes back
                    xb, tb = cuda.to_device(xb), cuda.to_device(tb)
                self._where = (epoch, b + 1)
                loss = self._step(xb, tb, len(idx) / n_global)
                total += loss * len(idx)
                seen += len(idx)
                bar.update(1)
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
                self._call("on_batch_end", b + 1, {"loss": loss})
                if dist is not None and self.callbacks:
                    self.stop_training = dist.agree(self, self.stop_training)
                if self.stop_training:
                    break
        finally:
            bar.close()
        if dist is not None:
            return dist.epoch_loss(self, total, seen)
        return total / max(seen, 1)

    def step(self, x, t):
        """One update on the batch (x, t): loss, backward, the optimizer's update; returns
        the loss. While ``fit`` runs with ``comm``, the gradients are averaged over the
        ranks (each rank's batch an equal share) during backward."""
        return self._step(x, t, None)

    def _step(self, x, t, share):
        """step, with ``share`` this rank's fraction of the global batch (fit knows it)."""
        stepper = self.model if self._mixed is None else self._mixed
        loss = stepper.loss(x, t)
        if not np.isfinite(loss):
            epoch, batch = self._where
            raise FloatingPointError(
                f"Trainer: loss is {loss} at epoch {epoch}, batch {batch}; the model "
                f"diverged (try a smaller learning rate)")
        sync, optimizer = self._sync, self.optimizer
        if sync is not None and share is not None:
            sync.weight = share
        if type(optimizer).__name__ == "AllReduceOptimizer":  # the trainer syncs, not it
            optimizer = optimizer.optimizer
        stepper.backward(input_grad=False)
        if self._mixed is None:
            optimizer.update(self.model.params, self.model.grads)
        else:  # skipped when the scaled gradients overflowed float16 (on any rank)
            if sync is not None:
                sync.reduce(self.model)  # MixedPrecision's backward does not call the hook
            self._mixed.update(optimizer)
        return loss

    def evaluate(self, x, t=None, validation_data=None):
        """{"train_acc": ..., and with validation data "val_loss", "val_acc"}.

        x, t arrays or x a DataLoader (t None; its rows in order, unaugmented);
        validation_data (xv, tv) or a DataLoader. With ``comm`` (during fit, on several
        ranks), each rank evaluates its shard of the rows and the sums are reduced.
        """
        if self._sync is not None:
            from cdl.distributed import training as dist
            return dist.evaluate(self, x, t, validation_data, _is_loader)
        size = x.num_samples if _is_loader(x) else len(x)
        n = size if self.eval_samples is None else min(size, self.eval_samples)
        if _is_loader(x):
            logs = {"train_acc": self._sums(x, None, 0, n, loss=False)[0] / n}
        else:
            logs = {"train_acc": self.model.accuracy(x[:n], t[:n], self.eval_batch_size)}
        if _is_loader(validation_data):
            nv = validation_data.num_samples
            correct, loss = self._sums(validation_data, None, 0, nv, loss=True)
            logs["val_loss"], logs["val_acc"] = loss / nv, correct / nv
        elif validation_data is not None:
            xv, tv = validation_data
            correct, loss = self._sums(xv, tv, 0, len(xv), loss=True)
            logs["val_loss"], logs["val_acc"] = loss / len(xv), correct / len(xv)
        return logs

    def _sums(self, x, t, lo, hi, loss):
        """(correct predictions, loss sum or 0.0) over rows lo..hi-1 of arrays x, t, or of x
        a DataLoader (t None: its rows in order, unaugmented), in eval batches."""
        correct, total = 0.0, 0.0
        for i in range(lo, hi, self.eval_batch_size):
            j = min(hi, i + self.eval_batch_size)
            c, s = self._batch_sums(*(x.rows(i, j) if t is None else (x[i:j], t[i:j])), loss)
            correct, total = correct + c, total + s
        return correct, total

    def _batch_sums(self, xb, tb, loss):
        """One inference pass over a batch gives both its correct count and its loss sum."""
        y = self.model.predict(xb)
        correct = count_correct("Trainer.evaluate", y, tb)
        return correct, (self.model.loss_layer.forward(y, tb) * len(xb) if loss else 0.0)

    def _format(self, logs):
        parts = [f"epoch {logs['epoch']:>3}/{self._last_epoch}", f"loss {logs['loss']:.4f}", f"train acc {logs['train_acc']:.4f}"]
        if "val_acc" in logs:
            parts += [f"val loss {logs['val_loss']:.4f}", f"val acc {logs['val_acc']:.4f}"]
        parts.append(f"{logs['time']:.1f}s")
        return "  ".join(parts)


def _precision(precision, model, callbacks):
    """(name, scaler, MixedPrecision or None) for Trainer's precision argument; the scaler
    joins the callbacks (checkpoints save callbacks' state)."""
    from cdl import precision as amp
    if isinstance(precision, amp.LossScaler):
        scaler = precision
    elif isinstance(precision, str) and precision in amp.PRECISIONS:
        if precision == "float32":
            return precision, None, None
        scaler = amp.LossScaler()
    else:
        raise ValueError(f"Trainer: precision must be one of {', '.join(amp.PRECISIONS)} or a "
                         f"cdl.precision.LossScaler, got {precision!r}")
    callbacks.append(scaler)
    return "float16", scaler, amp.MixedPrecision(model, scaler)


def _is_loader(obj):
    loader = sys.modules.get("cdl.data.loader")  # not imported yet: nothing is a DataLoader
    return loader is not None and isinstance(obj, loader.DataLoader)


def _check_targets(t, what):
    """ValueError naming ``what`` when float targets hold NaN or Inf (integer labels cannot)."""
    if t.dtype.kind in "fc":
        check_finite("Trainer.fit", t, what)

