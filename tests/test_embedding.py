"""cdl inside someone else's program: thread safety and no process-wide side effects.

Each case runs in a fresh process under a timeout, so a deadlock fails the
test instead of hanging the suite, and no earlier test has loaded anything.
"""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow


def _run(code, timeout=180):
    """Run code in a fresh interpreter; its stdout, or a failure naming what went wrong."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s (deadlock?)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_import_and_kernels_change_no_process_state():
    out = _run("""
        import ctypes, os
        import numpy as np
        from threadpoolctl import threadpool_info
        env = dict(os.environ)
        blas = [(i["filepath"], i["num_threads"]) for i in threadpool_info()
                if i["user_api"] == "blas"]
        import cdl
        from cdl import layers as L, optim
        x = np.random.default_rng(0).random((8, 3, 12, 12), dtype=np.float32)
        net = cdl.Sequential([L.Conv2D(3, 8, 3, pad=1), L.BatchNorm(8), L.ReLU(),
                              L.MaxPool2D(2), L.Flatten(), L.Affine(8 * 36, 10)],
                             loss=L.SoftmaxCrossEntropy())
        net.loss(x, np.arange(8) % 10); net.backward()
        optim.Adam().update(net.params, net.grads)
        assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())
        after = dict((i["filepath"], i["num_threads"]) for i in threadpool_info()
                     if i["user_api"] == "blas")
        assert all(after[path] == n for path, n in blas), (blas, after)
        for path, _ in blas:  # no callback left in OpenBLAS (it serves every caller)
            lib = ctypes.CDLL(path)
            try:
                callback = ctypes.c_void_p.in_dll(lib, "openblas_threads_callback_")
            except ValueError:
                continue
            assert not callback.value, "cdl left a threads callback in OpenBLAS"
        print("ok")
    """)
    assert out.strip() == "ok"


def test_numpy_matmul_in_two_threads_after_a_conv():
    """The issue's reproducer: this deadlocked (6 of 6 runs) once cdl had run a Conv2D."""
    out = _run("""
        import threading
        import numpy as np
        from cdl import layers as L
        L.Conv2D(8, 8, 3).forward(np.ones((4, 8, 8, 8), np.float32))
        rng = np.random.default_rng(0)
        a = rng.random((50, 2048), dtype=np.float32)
        b = rng.random((2048, 10), dtype=np.float32)
        want = a @ b
        bad = []
        def work():
            for _ in range(1000):
                if not np.array_equal(a @ b, want):
                    bad.append(1)
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(bad))
    """, timeout=120)
    assert out.strip() == "0"


def test_conv_layers_in_two_threads_match_one_thread():
    out = _run("""
        import threading
        import numpy as np
        from cdl import layers as L
        def case(seed):
            r = np.random.default_rng(seed)
            conv = L.Conv2D(8, 32, 3, pad=1, rng=r)
            x = r.standard_normal((16, 8, 12, 12)).astype(np.float32)
            d = r.standard_normal((16, 32, 12, 12)).astype(np.float32)
            return conv, x, d
        def run(conv, x, d):
            y = conv.forward(x).copy()
            return y, conv.backward(d).copy(), conv.grads["W"].copy()
        want = [run(*case(s)) for s in (0, 1)]
        bad = [0, 0]
        def work(s):
            c = case(s)
            for _ in range(60):
                got = run(*c)
                if not all(np.array_equal(g, w) for g, w in zip(got, want[s])):
                    bad[s] += 1
        threads = [threading.Thread(target=work, args=(s,)) for s in (0, 1)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(bad)
    """)
    assert out.strip() == "[0, 0]"


def test_one_model_predicts_from_two_threads():
    out = _run("""
        import threading
        import numpy as np
        from cdl.data import load_digits
        from cdl.models import MODELS
        (x, _), _ = load_digits()
        net = MODELS["cnn"](rng=0)
        want = net.forward(x[:200])
        bad = []
        def work():
            for _ in range(30):
                if not np.array_equal(net.forward(x[:200]), want):
                    bad.append(1)
        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(bad))
    """)
    assert out.strip() == "0"


def test_models_trained_in_two_threads_match_trained_alone():
    """Two Trainers at once, one with Dropout drawing from its seed: same weights as alone,
    while a third thread's NumPy BLAS keeps giving right answers."""
    out = _run("""
        import threading
        import numpy as np
        from cdl import Sequential, Trainer, layers as L, optim
        from cdl.data import load_digits
        (x, t), _ = load_digits()
        x, t = x[:256], t[:256]
        def build(seed):
            r = np.random.default_rng(seed)
            return Sequential([L.Conv2D(1, 8, 3, pad=1, rng=r), L.ReLU(), L.MaxPool2D(2),
                               L.Flatten(), L.Dropout(0.3), L.Affine(8 * 16, 32, rng=r),
                               L.ReLU(), L.Affine(32, 10, rng=r)], loss=L.SoftmaxCrossEntropy())
        def train(seed, out):
            net = build(seed)
            Trainer(net, optim.Adam(lr=1e-3), batch_size=32, epochs=2, seed=seed,
                    verbose=False, progress=False).fit(x, t)
            out[seed] = net.params
        alone = {}
        for s in (0, 1):
            train(s, alone)
        rng = np.random.default_rng(2)
        a = rng.random((64, 512), dtype=np.float32)
        b = rng.random((512, 256), dtype=np.float32)
        want = a @ b
        done, bad = threading.Event(), []
        def blas():  # right to rounding: BLAS may run on one thread while cdl's kernels do
            while not done.is_set():
                if not np.allclose(a @ b, want, rtol=1e-5, atol=1e-5):
                    bad.append(1)
        together = {}
        threads = [threading.Thread(target=train, args=(s, together)) for s in (0, 1)]
        side = threading.Thread(target=blas)
        side.start()
        for th in threads: th.start()
        for th in threads: th.join()
        done.set(); side.join()
        same = all(np.array_equal(alone[s][k], together[s][k]) for s in (0, 1) for k in alone[s])
        print(same, len(bad))
    """, timeout=300)
    assert out.split() == ["True", "0"]
