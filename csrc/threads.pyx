# cython: boundscheck=False, wraparound=False, language_level=3
"""OpenBLAS's parallel work on the OpenMP runtime: one pool of threads instead of two.

OpenBLAS (0.3.27 and later) can hand each parallel section to a callback
instead of its own worker threads, which otherwise spin for about 0.1 s after
every call and take the cores from the OpenMP and cdl threads that run next.
``openblas_callback()`` gives the address of a callback that runs OpenBLAS's
jobs as one OpenMP parallel loop, with the wait policy cdl sets (threads
sleep when idle). cdl.kernels.parallel installs it.

The signature is OpenBLAS's ``openblas_threads_callback`` (cblas.h):
    void callback(int sync, openblas_dojob_callback dojob, int numjobs,
                  size_t jobdata_elsize, void *jobdata, int dojob_data)
with ``void dojob(int thread_num, void *jobdata, int dojob_data)``. The jobs
run to completion before the callback returns, which serves sync and async
calls alike.
"""
from cython.parallel cimport prange

ctypedef void (*dojob_t)(int thread_num, void *jobdata, int dojob_data) noexcept nogil


cdef void _run_jobs(int sync, dojob_t dojob, int numjobs, size_t jobdata_elsize,
                    void *jobdata, int dojob_data) noexcept nogil:
    cdef int i
    for i in prange(numjobs, schedule="static", num_threads=numjobs):
        dojob(i, <char *>jobdata + i * jobdata_elsize, dojob_data)


def openblas_callback():
    """Address of the OpenMP callback for openblas_set_threads_callback_function."""
    return <size_t>&_run_jobs
