"""cdl.kernels.parallel: slices, the worker pool, BLAS hand-over, errors and fork."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from cdl.kernels import parallel


def _blas_threads():
    """Threads of the BLAS libraries cdl hands over (those loaded when it first looked)."""
    paths = {c.filepath for c in parallel._blas_controllers()}
    return [i["num_threads"] for i in threadpool_info() if i["filepath"] in paths]


@pytest.mark.parametrize("n,parts", [(1, 4), (5, 2), (7, 3), (3, 3), (10, 1)])
def test_split_covers_range_in_order(n, parts):
    slices = parallel.split(n, parts)
    assert len(slices) == min(n, parts)
    assert slices[0][0] == 0 and slices[-1][1] == n
    assert all(a < z for a, z in slices)
    assert all(z == a2 for (_, z), (a2, _) in zip(slices, slices[1:]))


def test_run_slices_results_in_slice_order():
    out = np.zeros(11)

    def fill(a, z):
        out[a:z] = np.arange(a, z)
        return (a, z)

    got = parallel.run_slices(fill, 11, threads=3)
    assert got == parallel.split(11, 3)
    np.testing.assert_array_equal(out, np.arange(11))


def test_blas_is_single_threaded_inside_and_restored_after():
    before = _blas_threads()
    seen = []
    parallel.run_slices(lambda a, z: seen.append(_blas_threads()), 4, threads=2)
    assert all(all(n == 1 for n in s) for s in seen)
    assert _blas_threads() == before
    with parallel.single_threaded_blas():
        with parallel.single_threaded_blas():
            assert all(n == 1 for n in _blas_threads())
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_error_in_a_worker_propagates_after_all_slices():
    done = []

    def work(a, z):
        if a > 0:
            raise ValueError(f"slice {a}")
        done.append(a)

    before = _blas_threads()
    with pytest.raises(ValueError, match="slice"):
        parallel.run_slices(work, 6, threads=3)
    assert done == [0]
    assert _blas_threads() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_after_fork():
    from cdl.kernels import conv
    x = np.ones((4, 2, 5, 5), np.float32)
    W = np.ones((3, 2, 3, 3), np.float32)
    want = conv.conv2d_forward(x, W, None, (1, 1), (1, 1))  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # child: a pool made before fork has no threads here
        try:
            got = conv.conv2d_forward(x, W, None, (1, 1), (1, 1))
            os._exit(0 if np.array_equal(got, want) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_inside_single_threaded_blas_gives_the_child_its_blas_threads_back():
    before = _blas_threads()
    with parallel.single_threaded_blas():
        pid = os.fork()
        if pid == 0:
            os._exit(0 if _blas_threads() == before else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert _blas_threads() == before


def _big_matmul_is_right():
    a = np.random.default_rng(0).standard_normal((300, 400)).astype(np.float32)
    return np.allclose(a @ a.T, (a.astype(np.float64) @ a.T.astype(np.float64)), atol=1e-3)


def test_blas_routed_to_openmp_computes_the_same():
    routed = parallel.route_blas_threads()
    assert parallel.route_blas_threads() is routed  # decided once per process
    assert _big_matmul_is_right()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_openblas_threads_back():
    """libgomp cannot restart its threads in a fork child: BLAS must not use it there."""
    parallel.route_blas_threads()
    assert _big_matmul_is_right()  # the parent has run OpenMP threads
    pid = os.fork()
    if pid == 0:
        import signal
        signal.alarm(20)  # a hang becomes a failure, not a stuck test run
        routed_before = bool(parallel._callback_setters)
        ok = _big_matmul_is_right()
        if routed_before:  # undone in the child, and not done again
            ok = ok and parallel.route_blas_threads() is False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_opt_out_keeps_openblas_threads():
    import subprocess
    import sys
    code = "from cdl.kernels import parallel; print(parallel.route_blas_threads())"
    env = dict(os.environ, CDL_OPENBLAS_THREADS="own")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_nested_and_concurrent_calls_run_every_slice_once():
    """A run_slices inside a slice, or from another thread meanwhile, runs in its caller."""
    import threading
    outs = [np.zeros((3, 40)) for _ in range(2)]

    def job(out):
        def outer(a, z):
            for row in range(a, z):
                def fill(b, e):
                    out[row, b:e] += np.arange(b, e)
                parallel.run_slices(fill, 40, threads=2)
        parallel.run_slices(outer, 3, threads=2)

    threads = [threading.Thread(target=job, args=(out,)) for out in outs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in outs:
        np.testing.assert_array_equal(out, np.tile(np.arange(40.0), (3, 1)))
