"""cdl.kernels.parallel: slices, the worker pool, BLAS held to one thread, errors, fork."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from cdl.kernels import parallel


def _blas_threads():
    """Threads of the BLAS libraries cdl hands over (those loaded when it first looked)."""
    paths = {c.filepath for c in parallel._blas_libraries()}
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
    # after this call the parent's pool exists
    want = conv.conv2d_forward(x, W, None, (1, 1), (1, 1), np.empty((4, 3, 5, 5), np.float32))
    pid = os.fork()
    if pid == 0:  # child: a pool made before fork has no threads here
        try:
            got = conv.conv2d_forward(x, W, None, (1, 1), (1, 1), np.empty_like(want))
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


def test_blas_held_to_one_thread_from_any_python_thread():
    """threadpoolctl lets only its first caller's thread change OpenBLAS's count; cdl's
    worker slices in other threads must still get one BLAS thread."""
    import threading
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=2):  # makes this thread threadpoolctl's controller
        pass
    seen = []

    def job():
        with parallel.single_threaded_blas():
            seen.append(_blas_threads())
    t = threading.Thread(target=job)
    t.start()
    t.join()
    assert seen and all(n == 1 for n in seen[0])


def test_a_setting_changed_meanwhile_is_kept():
    libs = parallel._blas_libraries()
    if not libs:
        pytest.skip("no BLAS library found by threadpoolctl")
    before = [lib.get() for lib in libs]
    try:
        with parallel.single_threaded_blas():
            for lib in libs:
                lib.set(3)  # e.g. the user's own threadpool_limits in another thread
        assert [lib.get() for lib in libs] == [3] * len(libs)
    finally:
        for lib, n in zip(libs, before):
            lib.set(n)


def test_leave_policy_never_touches_blas():
    before = _blas_threads()
    seen = []
    previous = parallel.set_blas_policy("leave")
    try:
        parallel.run_slices(lambda a, z: seen.append(_blas_threads()), 4, threads=2)
    finally:
        assert parallel.set_blas_policy(previous) == "leave"
    assert seen == [before, before]
    with pytest.raises(ValueError, match="set_blas_policy"):
        parallel.set_blas_policy("off")
