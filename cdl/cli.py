"""Command line: ``cdl train`` (the main job) and friends; also ``python -m cdl``.

    cdl                 prints the usage and the commands
    cdl --version       prints ``cdl X.Y.Z`` (cdl.__version__)

    cdl train [--model cnn] [--epochs 30] [--batch-size 32] [--lr 2e-3]
              [--optimizer adam] [--seed 0] [--save model.npz]
              [--data {digits,fashion-mnist,mnist,cifar10}] [--data-dir DIR] [--plot DIR]
              [--checkpoint run.ckpt] [--distributed]

trains on the 8x8 digits shipped with cdl (or on --data, read from --data-dir,
$CDL_DATA or the system's data folders; the model's input shape follows the
data) and prints loss and accuracy per epoch. A data set that is not there
prints one line saying where to put its files and exits with status 2.
--checkpoint writes a checkpoint after every epoch and, when the file exists,
resumes from it first (the same command line continues the run bit for bit,
up to --epochs in all). --distributed trains data parallel over MPI, one
process per rank (``mpiexec -n 4 cdl train --distributed``, cdl.distributed).

    cdl bench [--threads N] [--full] [--no-torch]

prints the speed report of cdl.benchmarks, cdl alone: each convolution's
algorithm (and why the tuner chose it), a DeepConvNet training step layer by
layer, and inference. The comparisons with the book's NumPy code and PyTorch
are bench/conv.py, bench/pool.py and bench/epoch.py in a source checkout. A
bad option prints one line and exits with status 2.

    cdl tune [--model cnn] [--trials 20] [--method {grid,random,tpe}] [--epochs 10]
             [--seed 0] [--jobs 1]

searches learning rate and weight decay (log-uniform) of a model on the
digits with cdl.tune (validation carved from the training part; the test
part stays out), prints the trials best first and the best command line.
"""
import argparse
import importlib.util
import os
import sys
import time

from cdl import __version__


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _error(command, message, status=2):
    """Print ``cdl COMMAND: error: MESSAGE`` (one line, on stderr); returns status."""
    print(f"cdl {command}: error: {message}", file=sys.stderr)
    return status


def _optimizers():
    """The first-order optimizers of cdl.optim by lower-case name (full-batch ones, which
    set ``first_order = False``, and the schedules, clipping etc. are not choices)."""
    from cdl import optim
    classes = [getattr(optim, name) for name in optim.__all__]
    return {c.__name__.lower(): c for c in classes
            if isinstance(c, type) and issubclass(c, optim.Optimizer) and c is not optim.Optimizer
            and getattr(c, "first_order", True)}


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {kind.__name__}: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _save_path(text):
    """--save's (and --checkpoint's) PATH, checked before training: its folder exists and is
    writable."""
    from cdl._atomic import check_save_path
    try:
        check_save_path(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _models_help():
    """--model's help: every model of cdl.models.MODELS with its default input shape."""
    from cdl.models import MODELS, default_input_shape
    listed = ", ".join(f"{name} ({'x'.join(map(str, default_input_shape(name)))})"
                       for name in sorted(MODELS))
    return (f"model to train (default: cnn), with its default input shape; every one also "
            f"takes the 8x8 digits: {listed}")


DATASETS = ("digits", "fashion-mnist", "mnist", "cifar10")


def _load_data(name, folder):
    """(((x, t), (xt, tt)), description) of the data set --data names."""
    from cdl import data
    if name == "digits":
        return data.load_digits(), "digits 8x8"
    load = {"fashion-mnist": data.load_fashion_mnist, "mnist": data.load_mnist,
            "cifar10": data.load_cifar10}[name]
    (x, t), test = load(folder)
    C, H, W = x.shape[1:]
    return ((x, t), test), f"{name} {H}x{W}{' RGB' if C == 3 else ''}"


_DEFAULT_LR = {"adam": 2e-3}  # cdl train's own default, where it differs from the optimizer's


def _train(args):
    import numpy as np

    import cdl
    from cdl import optim
    from cdl.models import MODELS
    from cdl.train import Trainer

    if args.data_dir is not None and (args.data == "digits" or not os.path.isdir(args.data_dir)):
        why = "the digits ship with cdl" if args.data == "digits" else "no such folder"
        return _error("train", f"--data-dir {args.data_dir}: {why}")
    if args.device == "cuda" and not cdl.cuda.is_available():
        return _error("train", "--device cuda: no CUDA GPU found (numba.cuda.is_available() "
                               "is False)")
    if args.plot is not None:
        from cdl import viz
        if not viz.available():
            return _error("train", f"--plot: {viz.HINT.format('learning_curves')}")
        os.makedirs(args.plot, exist_ok=True)  # before training: a bad DIR fails now
    comm = None
    if args.distributed:
        try:
            comm = args.comm = cdl.distributed.init()
        except ImportError as e:
            return _error("train", f"--distributed: {e}")
        if comm.rank != 0:  # rank 0 alone prints; every rank's errors reach stderr
            sys.stdout = open(os.devnull, "w")
    cdl.seed(args.seed)
    try:
        ((x, t), (xt, tt)), described = _load_data(args.data, args.data_dir)
    except FileNotFoundError as e:  # a data set not there: where to put it, in one line
        return _error("train", str(e).replace("pass path=...", "pass --data-dir DIR"))
    net = MODELS[args.model](input_shape=x.shape[1:], num_classes=10,
                             rng=np.random.default_rng(args.seed))
    opt_cls = _optimizers()[args.optimizer]
    lr = args.lr if args.lr is not None else _DEFAULT_LR.get(args.optimizer)
    opt = opt_cls(lr=lr) if lr is not None else opt_cls()
    print(f"cdl train: {args.model} ({net.num_params():,} parameters) on {described}, "
          f"{len(x)} train / {len(xt)} test images, {opt!r} with cosine decay, "
          f"batch {args.batch_size}"
          f"{'' if comm is None else f' per rank on {comm.size} ranks (mpiexec)'}, "
          f"seed {args.seed}", flush=True)
    start = time.perf_counter()
    # Cosine decay: over seeds 0-7 the default CNN ends at 97.5-98.6 % test accuracy with it
    # (30 epochs, Adam 2e-3), at 96.7-97.5 % with a constant 1e-3 over 15 epochs.
    schedule = optim.CosineLR(total=args.epochs, lr_min=opt.lr * 0.01)
    # train accuracy on at most 10,000 images: all of the digits, a sixth of MNIST
    trainer = Trainer(net, opt, batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
                      callbacks=[schedule], eval_samples=10000, device=args.device,
                      checkpoint=args.checkpoint, precision=args.precision, comm=comm)
    if args.checkpoint is not None and os.path.exists(args.checkpoint):
        try:
            trainer.load_checkpoint(args.checkpoint)
        except ValueError as e:  # another model or optimizer, or a damaged file
            return _error("train", f"--checkpoint: {e}")
        trainer.epochs = max(args.epochs - trainer.epoch, 0)
        print(f"resuming from {args.checkpoint} after epoch {trainer.epoch}", flush=True)
    before = viz.first_weights(net) if args.plot is not None else None
    history = trainer.fit(x, t, validation_data=(xt, tt))
    if trainer.interrupted:
        return _interrupted(args, net, trainer.epoch)
    test_acc = history["val_acc"][-1] if history.get("val_acc") else net.accuracy(xt, tt)
    print(f"test accuracy {test_acc:.4f} after {len(history.get('loss', []))} epochs "
          f"in {time.perf_counter() - start:.1f}s", flush=True)
    if comm is not None and comm.rank != 0:
        return 0  # rank 0 saves and draws
    if trainer.scaler is not None:  # --precision float16
        print(f"float16: loss scale {trainer.scaler.scale:g}, {trainer.scaler.skipped} of "
              f"{trainer.scaler.steps} steps skipped (gradients overflowed)", flush=True)
    if args.save:
        net.save(args.save)
        print(f"saved to {args.save}")
    if args.plot is not None:
        _plot(args.plot, net, history, before, xt, tt)
    return 0


def _plot(folder, net, history, before, xt, tt):
    """--plot DIR: learning curves, first-layer filters before/after, test confusion matrix."""
    from cdl import viz
    names = []
    for name, draw in (("learning_curves.png", lambda p: viz.learning_curves(history, p)),
                       ("filters.png", lambda p: viz.filters(net, p, before=before)),
                       ("confusion_matrix.png", lambda p: viz.confusion_matrix(net, xt, tt, p))):
        draw(os.path.join(folder, name))
        names.append(name)
    print(f"figures in {folder}: {', '.join(names)}", flush=True)


def _interrupted(args, net, epoch):
    """Ctrl-C during training: save what --save asked for, say so in one line, status 130."""
    saved = ""
    if args.save:
        net.save(args.save)
        saved = f"; saved to {args.save}"
    print(f"cdl train: interrupted after epoch {epoch}{saved}", file=sys.stderr, flush=True)
    return 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def _bench(args):
    from cdl import benchmarks
    torch = None if args.no_torch else benchmarks.torch_or_none()
    start = time.perf_counter()
    benchmarks.report(threads=args.threads, full=args.full, torch=torch,
                      out=lambda line: print(line, flush=True))
    print(f"\ncdl bench took {time.perf_counter() - start:.0f}s; bench/conv.py, bench/pool.py "
          f"and bench/epoch.py in a source checkout run the long versions", flush=True)
    return 0


def _tune(args):
    from cdl import data, tune
    from cdl.tune import builtin

    if args.method == "tpe" and importlib.util.find_spec("optuna") is None:
        return _error("tune", "--method tpe needs Optuna: pip install 'cdl[tune]'")
    (x, t), (xt, _) = data.load_digits()  # the test part stays out of the search
    (xs, _), (xv, _) = tune.split_validation(x, t, 0.2, args.seed)  # as search carves it
    space = builtin.grid_space(args.trials) if args.method == "grid" else builtin.SPACE
    total = len(tune.space.grid_points(space)) if args.method == "grid" else args.trials
    print(f"cdl tune: {args.model} on digits 8x8, {len(xs)} train / {len(xv)} validation "
          f"images (the {len(xt)} test images stay out), {args.method} search over lr and "
          f"weight decay, {total} trials of up to {args.epochs} epochs, "
          f"{args.jobs} process{'es' if args.jobs > 1 else ''}", flush=True)

    def progress(trial):
        print(f"trial {trial['number'] + 1}/{total}: lr {trial['params']['lr']:.3g}, weight "
              f"decay {trial['params']['weight_decay']:.3g}: val acc "
              f"{builtin.score_text(trial)}, {trial['state']} after {trial['epochs']} epochs, "
              f"{trial['seconds']:.1f}s", flush=True)

    start = time.perf_counter()
    trials = tune.search(space, builtin.objective(args.model, args.epochs, seed=args.seed),
                         args.method, None if args.method == "grid" else args.trials,
                         args.seed, data=(x, t), validation=0.2, n_jobs=args.jobs,
                         callback=progress)
    print(f"\n{len(trials)} trials in {time.perf_counter() - start:.1f}s, best first:")
    for line in builtin.table(trials):
        print(line)
    best = trials[0]
    if best["state"] != "complete":
        return _error("tune", f"no trial completed ({best['error']})", status=1)
    print(f"\nbest: val acc {best['score']:.4f}; to train it on all the training data and "
          f"measure it on the test part:")
    print(f"    cdl train --model {args.model} --epochs {args.epochs} "
          f"--lr {best['params']['lr']:.3g} --seed {args.seed}")
    print(f"    # and weight decay {best['params']['weight_decay']:.3g} (L2, "
          f"cdl.optim.WeightDecay): cdl train has no option for it", flush=True)
    return 0


def main(argv=None):
    """The ``cdl`` command: parse argv (default sys.argv[1:]), run the command (train,
    bench, tune) and return the exit status."""
    parser = _Parser(prog="cdl", description="cdl: deep learning from scratch, fast")
    parser.add_argument("--version", action="version", version=f"cdl {__version__}")
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                parser_class=_Parser)
    from cdl.models import MODELS
    p = sub.add_parser("train", help="train a model on the digits shipped with cdl")
    p.add_argument("--model", choices=sorted(MODELS), default="cnn", metavar="NAME",
                   help=_models_help())
    p.add_argument("--epochs", type=_positive(int), default=30)
    p.add_argument("--batch-size", type=_positive(int), default=32)
    p.add_argument("--lr", type=_positive(float), default=None,
                   help="initial learning rate, decayed on a cosine to 1%% of it by the last "
                        "epoch (default: 2e-3 for adam, the optimizer's own for the others)")
    p.add_argument("--optimizer", choices=sorted(_optimizers()), default="adam")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", metavar="PATH", type=_save_path, default=None,
                   help="save the trained model (.npz)")
    p.add_argument("--checkpoint", metavar="PATH", type=_save_path, default=None,
                   help="write a checkpoint (model, optimizer, schedule, generators) to PATH "
                        "after every epoch; if PATH exists, resume from it first and train "
                        "up to --epochs in all (same options as the run that wrote it)")
    p.add_argument("--data", choices=DATASETS, default="digits",
                   help="data set (default: digits, shipped with cdl; the others are read "
                        "from their files: IDX for the MNISTs, the binary version of CIFAR-10)")
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help="folder holding the data set's files (default: $CDL_DATA, then, for "
                        "the MNISTs, /usr/share/datasets/<name>)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="train on the CPU (default) or on a CUDA GPU (numba.cuda)")
    p.add_argument("--distributed", action="store_true",
                   help="data parallel over MPI, one process per rank: mpiexec -n 4 cdl train "
                        "--distributed ...; --batch-size is per rank (scale --lr with the "
                        "ranks for large batches); needs pip install \"cdl[mpi]\"")
    p.add_argument("--precision", choices=["float32", "float16"], default="float32",
                   help="float16: mixed precision (float16 weights and activations, float32 "
                        "master weights and compute, dynamic loss scaling; cdl.precision)")
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="at the end, save learning_curves.png, filters.png (first layer, "
                        "before and after) and confusion_matrix.png (test set) in DIR; "
                        "needs matplotlib: pip install \"cdl[plot]\"")
    p = sub.add_parser("bench", help="speed report of cdl alone: conv algorithms chosen "
                                      "and why, a DeepConvNet step layer by layer, inference")
    p.add_argument("--threads", type=_positive(int), default=None,
                   help="threads for every contender (default: all cores)")
    p.add_argument("--full", action="store_true", help="more runs and steps (a few minutes)")
    p.add_argument("--no-torch", action="store_true",
                   help="don't look for PyTorch (the report is cdl's alone; with torch it "
                        "points to bench/)")
    p = sub.add_parser("tune", help="search learning rate and weight decay of a model on the "
                                     "digits (validation split; the test part stays out)")
    p.add_argument("--model", choices=sorted(MODELS), default="cnn", metavar="NAME",
                   help=_models_help())
    p.add_argument("--trials", type=_positive(int), default=20,
                   help="trials to run (grid: a log-spaced grid of at most this many)")
    p.add_argument("--method", choices=["grid", "random", "tpe"], default="random",
                   help="grid, random (log-uniform draws, default) or tpe (Optuna's TPE: "
                        "pip install 'cdl[tune]')")
    p.add_argument("--epochs", type=_positive(int), default=10, help="epochs per trial")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the draws, the validation split and each trial's training")
    p.add_argument("--jobs", type=_positive(int), default=1,
                   help="trials run at once, each in its own process")
    args = parser.parse_args(argv)
    if args.command is None:  # bare `cdl`: what it can do, not an error
        parser.print_help()
        return 0
    try:
        return {"train": _train, "bench": _bench, "tune": _tune}[args.command](args)
    except (ValueError, FloatingPointError, OSError) as e:
        status = _error(args.command, e, status=1)
        _abort_other_ranks(args)
        return status
    except KeyboardInterrupt:  # outside the training loop (loading, building, saving, bench)
        print(f"cdl {args.command}: interrupted", file=sys.stderr, flush=True)
        _abort_other_ranks(args)
        return 130


def _abort_other_ranks(args):
    """--distributed: one rank's error ends the job (the others would wait for it forever)."""
    comm = getattr(args, "comm", None)
    if comm is not None and comm.size > 1:
        time.sleep(0.3)  # MPICH can drop the last lines of a rank that MPI_Abort ends
        comm.abort(1)


if __name__ == "__main__":
    sys.exit(main())
