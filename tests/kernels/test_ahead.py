"""Compiling ahead (cdl.kernels.ahead): the direct and Winograd kernels compile in a second
process while "gemm" runs; afterwards the tuner times every algorithm, loaded from the cache
that process filled. tests/conftest.py turns it off for the rest of the suite."""
import fcntl
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from cdl.kernels import ahead, tuner
from cdl.kernels import conv as kconv
from cdl.kernels import reference as ref

# 1 input channel on 28x28, 3x3: the heuristic's pick is "direct"; 3.6 MFLOP: tuned
XS, WS = (16, 1, 28, 28), (16, 1, 3, 3)

_FIRST_USE = r"""
import json, sys, time
import numpy as np
from numba.core import event
from cdl.kernels import ahead, conv, conv_direct, reference as ref

compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        d = ev.data["dispatcher"]
        compiled.append(f"{d.py_func.__module__}.{d.__name__}{ev.data['args']}")
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
rng = np.random.default_rng(0)
x = rng.standard_normal(%(xs)r).astype(np.float32)
W = rng.standard_normal(%(ws)r).astype(np.float32)
b = rng.standard_normal(%(ws)r[0]).astype(np.float32)
want = ref.conv2d_forward(x, W, b, 1, 1, 1, 1)
y = np.empty(want.shape, dtype=np.float32)
conv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
out = {"first ok": bool(np.allclose(y, want, atol=1e-4)),
       "running": ahead.running(np.float32),
       "decided while running": conv.decision(x.shape, W.shape, (1, 1), (1, 1)) is not None,
       "direct compiled here": len(conv_direct.forward_slice.signatures)}
t = time.perf_counter()
out["done"] = ahead.wait(120)
y[...] = 0
conv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
d = conv.decision(x.shape, W.shape, (1, 1), (1, 1))
out.update({"second ok": bool(np.allclose(y, want, atol=1e-4)), "source": d.source,
            "timed": sorted(d.ms), "skipped": d.skipped,
            "compiled by conv_direct/winograd here": [
                m for m in compiled if "conv_direct" in m or "conv_winograd" in m],
            "loaded": sum(conv_direct.forward_slice.stats.cache_hits.values())})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """A Numba cache and a tuner cache of their own (cold at first) for this module."""
    root = tmp_path_factory.mktemp("ahead")
    return {"NUMBA_CACHE_DIR": str(root / "numba"), "CDL_CACHE_DIR": str(root / "tuner")}


def _python(code, env, timeout=300):
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_cold_first_call_runs_gemm_and_the_tuner_then_times_what_the_child_compiled(caches):
    env = dict(os.environ, **caches, CDL_COMPILE_AHEAD="1", CDL_ALGO_POLICY="measure")
    out = _python(_FIRST_USE % {"xs": XS, "ws": WS}, env)
    assert out["first ok"] and out["second ok"]
    assert out["running"] and not out["decided while running"]
    assert out["direct compiled here"] == 0  # gemm ran meanwhile
    assert out["done"]
    # then measured as usual, no candidate left out as "not compiled" (one may be "over
    # budget" on a slow machine), the heuristic's direct timed: loaded, not compiled here
    assert out["source"] == "measured" and "direct" in out["timed"]
    assert "not compiled" not in out["skipped"].values()
    assert out["compiled by conv_direct/winograd here"] == [] and out["loaded"] >= 1


def test_the_child_waits_for_another_holding_the_cache_lock(caches):
    """One compiling child per cache folder: a second one waits for the lock, then finds
    everything compiled (the module's first test filled this cache) and exits."""
    env = dict(os.environ, **caches)
    folder = _python("import json; from cdl.kernels import conv_direct as d; "
                     "print(json.dumps(d.forward_slice._cache._cache_path))", env)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "cdl-compile-ahead.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        child = subprocess.Popen([sys.executable, "-m", "cdl.kernels.ahead", "--dtype",
                                  "float32", "--nice", "0"], env=env)
        time.sleep(1.5)
        assert child.poll() is None  # waiting for the lock
        fcntl.flock(held, fcntl.LOCK_UN)
    assert child.wait(120) == 0


@pytest.fixture
def fresh(monkeypatch):
    """No child of this process yet, compiling ahead on, policy "measure", no decisions."""
    monkeypatch.setattr(ahead, "_children", {})
    monkeypatch.setattr(kconv, "_known_compiled", set())
    before = ahead.set_enabled(True)
    policy = tuner.set_policy("measure")
    tuner.reset()
    yield
    tuner.reset()
    tuner.set_policy(policy)
    ahead.set_enabled(before)


class _Running:
    """A stand-in child that runs until told to stop."""
    returncode = None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


def _conv(rng):
    x = rng.standard_normal(XS).astype(np.float32)
    W = rng.standard_normal(WS).astype(np.float32)
    b = rng.standard_normal(WS[0]).astype(np.float32)
    y = np.empty((XS[0], WS[0], 28, 28), dtype=np.float32)
    return x, W, b, y


def test_while_the_child_runs_the_heuristics_pick_if_compiled_else_gemm(fresh, monkeypatch,
                                                                       rng):
    child = _Running()
    monkeypatch.setattr(ahead, "_spawn", lambda name: child)
    compiled = {"direct": False}
    monkeypatch.setattr(kconv, "_compiled", lambda a, op, F, dtype: compiled.get(a, True))
    ran = []
    real = kconv._forward
    monkeypatch.setattr(kconv, "_forward", lambda a, *args: ran.append(a) or real(a, *args))
    x, W, b, y = _conv(rng)
    kconv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, W, b, 1, 1, 1, 1), atol=1e-4)
    compiled["direct"] = True  # the child has done direct, not yet everything
    kconv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
    assert ran == ["gemm", "direct"]
    assert kconv.decision(XS, WS, (1, 1), (1, 1)) is None  # nothing decided meanwhile
    child.returncode = 0  # done: the tuner decides, timing every applicable algorithm
    kconv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
    d = kconv.decision(XS, WS, (1, 1), (1, 1))
    assert d.source == "measured" and "direct" in d.ms  # the heuristic's pick is timed first
    assert "not compiled" not in d.skipped.values()
    np.testing.assert_allclose(y, ref.conv2d_forward(x, W, b, 1, 1, 1, 1), atol=1e-4)


def test_the_heuristic_policy_never_compiles_ahead(fresh, monkeypatch, rng):
    """Reproducible runs: the heuristic's pick from the first call, whatever the cache."""
    spawned = []
    monkeypatch.setattr(ahead, "_spawn", lambda name: spawned.append(name) or _Running())
    monkeypatch.setattr(kconv, "_compiled", lambda a, op, F, dtype: a != "direct")
    ran = []
    real = kconv._forward
    monkeypatch.setattr(kconv, "_forward", lambda a, *args: ran.append(a) or real(a, *args))
    tuner.set_policy("heuristic")
    x, W, b, y = _conv(rng)
    kconv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
    assert ran == ["direct"] and spawned == []
    monkeypatch.setattr(ahead, "_children", {"float32": _Running()})  # one running anyway
    kconv.conv2d_forward(x, W, b, (1, 1), (1, 1), y)
    assert ran == ["direct", "direct"]


def test_off_or_no_second_process_compiles_in_place(fresh, monkeypatch, rng):
    """Disabled, or a child that cannot start, or a dtype it does not compile for: no
    child, and the call runs the heuristic's pick (compiling it here, as before)."""
    spawned = []
    monkeypatch.setattr(ahead, "_spawn", lambda name: spawned.append(name) or _Running())
    ahead.set_enabled(False)
    assert not ahead.start(np.float32) and spawned == []
    ahead.set_enabled(True)
    assert not ahead.start(np.float16) and spawned == []
    monkeypatch.setattr(sys, "executable", "")  # an embedding application: no interpreter
    assert not ahead.enabled() and not ahead.start(np.float32) and spawned == []


def test_a_child_that_fails_to_start_is_not_running(fresh, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no processes left")
    monkeypatch.setattr(subprocess, "Popen", refuse)
    assert not ahead.start(np.float64)
    assert not ahead.running(np.float64) and ahead.wait(0)
    assert not ahead.start(np.float64)  # once per process: not retried on every call


def test_a_forked_child_has_no_children_of_its_parents(fresh, monkeypatch):
    monkeypatch.setattr(ahead, "_spawn", lambda name: _Running())
    assert ahead.start(np.float32) and ahead.running(np.float32)
    pid = os.fork()
    if pid == 0:  # the forked copy: its parent's child is not its own
        os._exit(0 if ahead._children == {} and not ahead.running(np.float32) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_environment_turns_it_off():
    code = "import json; from cdl.kernels import ahead; print(json.dumps(ahead._enabled))"
    for value, want in (("0", False), ("off", False), ("1", True), ("", True)):
        env = dict(os.environ, CDL_COMPILE_AHEAD=value)
        assert _python(code, env) is want
