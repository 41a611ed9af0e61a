"""Data-parallel training over MPI (mpi4py): ``pip install "cdl[mpi]"``.

    comm = cdl.distributed.init()                        # rank, size (COMM_WORLD)
    opt = cdl.distributed.AllReduceOptimizer(opt, comm)  # or Trainer(..., comm=comm)
    Trainer(net, opt, batch_size=64, seed=0).fit(x, t)   # batch_size per rank

    mpiexec -n 4 python train.py        # or: mpiexec -n 4 cdl train --distributed

Every rank holds the whole model. Rank 0's parameters are broadcast before
training; each rank reads its own disjoint shard of every epoch's shuffled
order (the same order on every rank); gradients are averaged with an
allreduce on the model's flat gradient buffer, in buckets started while
backward is still running on earlier layers (``GradSync``), optionally in
float16 (``AllReduceOptimizer(..., compression="float16")``). BatchNorm
keeps per-rank batch statistics unless ``sync_batchnorm(model, comm)``;
its running statistics are averaged over the ranks after every epoch. Only
rank 0 prints, shows progress and writes checkpoints; evaluation is sharded
and reduced; a checkpoint resumes on any number of ranks. An exception in
one rank ends the whole job (``init`` installs an excepthook that calls
MPI_Abort). Each rank runs cdl's kernels and BLAS with cores / ranks
threads. Large global batches: ``cdl.optim.LinearWarmup(..., scale=comm.size)``
(Goyal et al. 2017).
"""
from cdl.distributed.comm import Communicator, default_threads, init, set_threads
from cdl.distributed.sync import AllReduceOptimizer, GradSync, sync_batchnorm

__all__ = ["init", "Communicator", "AllReduceOptimizer", "GradSync", "sync_batchnorm",
           "default_threads", "set_threads"]
