"""What ``Trainer(..., comm=comm)`` does beyond a single process (cdl.train calls these).

Before the first epoch every rank takes rank 0's parameters, buffers and
shuffling generators (so ranks start identical whatever their seeds), and a
``GradSync`` goes on the model. Each epoch every rank draws the same order,
reads its own shard of every global batch (``cdl.sampler.BatchSampler``), and
augments and drops out with generators of its own, derived from rank 0's by
a jump (``bit_generator.jumped(rank)``), so no two ranks draw the same noise
and the shared shuffling generator stays in step. After the epoch the loss
is averaged over all samples, BatchNorm's running statistics over the ranks,
evaluation is sharded and reduced, and rank 0's logs are everyone's, so
callbacks take the same decisions (a stop is agreed on).
"""
import numpy as np

from cdl.model import walk


def start(trainer):
    """Rank 0's weights and generator states on every rank of trainer.comm; the gradient
    sync on trainer.model."""
    from cdl.distributed.sync import AllReduceOptimizer, GradSync
    comm, model = trainer.comm, trainer.model
    if trainer.device == "cuda" and not model._on_device():
        model.to_device()
    comm.broadcast_model(model)
    _share_state(comm, trainer.rng)
    if trainer._loader is not None:
        _share_state(comm, trainer._loader.rng)
    opt = trainer.optimizer
    options = {}
    if isinstance(opt, AllReduceOptimizer):
        options = {"compression": opt.compression, "bucket_bytes": opt.bucket_bytes}
        vars(opt)["needs_broadcast"] = False
    trainer._sync = GradSync(comm, **options).attach(model)


def stop(trainer):
    """Take the gradient sync that ``start`` put on the trainer's model off again."""
    if trainer._sync is not None:
        trainer._sync.detach(trainer.model)
        trainer._sync = None


def _share_state(comm, rng):
    state = comm.bcast(rng.bit_generator.state)
    rng.bit_generator.state = state


def jumped(rng, rank):
    """A new Generator for rank, independent of rng's stream and of the other ranks' (rng's
    bit generator jumped ``rank`` times; a seed drawn from a copy where it cannot jump)."""
    bit = rng.bit_generator
    if hasattr(bit, "jumped"):
        return np.random.Generator(bit.jumped(rank))
    copy = type(bit)()
    copy.state = bit.state
    seeds = np.random.Generator(copy).integers(2 ** 63, size=4)
    return np.random.Generator(type(bit)(np.random.SeedSequence([rank, *seeds.tolist()])))


def rank_streams(trainer):
    """At each epoch's start: ranks > 0 draw their noise (trainer.noise_rng, layers' own
    generators) from rank 0's states jumped by their rank; rank 0 keeps its own, which is
    what a checkpoint saves (so a resumed run redraws the other ranks' noise alike)."""
    comm = trainer.comm
    gens = [trainer.noise_rng] + [layer._rng for _, layer in walk(trainer.model.layers)
                                  if isinstance(getattr(layer, "_rng", None),
                                                np.random.Generator)]
    states = comm.bcast([None if g is None else g.bit_generator.state for g in gens])
    if comm.rank == 0:
        return
    for g, state in zip(gens, states):
        if g is not None:
            g.bit_generator.state = state
            g.bit_generator.state = jumped(g, comm.rank).bit_generator.state


def loader_batches(trainer, loader, sampler, rng):
    """One epoch of a DataLoader's batches for this rank: (idx, xb, tb, n_global), the order
    drawn as the loader draws it (rng) and dealt by sampler (a BatchSampler of the
    trainer's ranks), augmented with a generator of this rank."""
    n = loader.num_samples
    order = rng.permutation(n) if loader.shuffle else np.arange(n)
    aug = jumped(rng, trainer.comm.size + trainer.comm.rank + 1)  # not the trainer's augment stream
    for idx, n_global in sampler.split(order):
        idx = np.sort(idx)  # read front to back, as the loader does
        xb, tb = loader._convert(np.asarray(loader.x[idx]), np.asarray(loader.t[idx]))
        if loader.augment is not None:
            xb, tb = loader.augment(xb, tb, aug)
        yield idx, loader._normalized(xb), tb, n_global


def epoch_loss(trainer, total, seen):
    """The mean training loss over every rank's samples: the sum of the ranks' loss sums
    (total) over the sum of their sample counts (seen), reduced over trainer.comm."""
    comm = trainer.comm
    total, seen = comm.allreduce_scalar(float(total)), comm.allreduce_scalar(int(seen))
    return total / max(seen, 1)


def agree(trainer, flag):
    """True on every rank of trainer.comm when flag is on any (a stop asked for by one
    rank's callbacks)."""
    return trainer.comm.allreduce_scalar(int(bool(flag)), "max") > 0


def shard(n, comm):
    """This rank's contiguous [lo, hi) of n rows, comm's ranks in order."""
    return n * comm.rank // comm.size, n * (comm.rank + 1) // comm.size


def evaluate(trainer, x, t, validation_data, is_loader):
    """Trainer.evaluate of trainer with every rank on its shard of the rows, the sums
    reduced: train accuracy on (x, t) (t None when x is a DataLoader, as is_loader tells),
    and loss and accuracy on validation_data when given."""
    comm = trainer.comm
    size = x.num_samples if is_loader(x) else len(x)
    n = size if trainer.eval_samples is None else min(size, trainer.eval_samples)
    sums, counts = list(_sums(trainer, x, t, n, loss=False)), [n]
    if validation_data is not None:
        if is_loader(validation_data):
            nv = validation_data.num_samples
            sums += _sums(trainer, validation_data, None, nv, True)
        else:
            xv, tv = validation_data
            nv = len(xv)
            sums += _sums(trainer, xv, tv, nv, True)
        counts.append(nv)
    total = comm.allreduce_sum(np.array(sums, dtype=np.float64))
    logs = {"train_acc": total[0] / counts[0]}
    if validation_data is not None:
        logs["val_loss"], logs["val_acc"] = total[3] / counts[1], total[2] / counts[1]
    return {k: float(v) for k, v in logs.items()}


def _sums(trainer, x, t, n, loss):
    """(correct count, loss sum) over this rank's shard of the first n rows."""
    return trainer._sums(x, t, *shard(n, trainer.comm), loss)  # t None: x a DataLoader
