"""The algorithm tuner: measured choice, policy, tiny calls, disk cache, budget, threads."""
import json
import os
import threading

import numba
import numpy as np
import pytest

from cdl.kernels import binary as kbin
from cdl.kernels import conv as kconv
from cdl.kernels import conv_gemm
from cdl.kernels import reference as ref
from cdl.kernels import tuner, tuner_cache

# 4.7 MFLOP forward: above the tiny threshold; gemm, direct and winograd apply
XS, WS, STRIDE, PAD = (8, 8, 16, 16), (16, 8, 3, 3), (1, 1), (1, 1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh tuner (policy "measure", every candidate compiled) caching in tmp_path."""
    monkeypatch.setenv("CDL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tuner, "compiled", lambda dispatchers, dtype: True)
    before = tuner.set_policy("measure")
    tuner.reset()
    yield tmp_path / "cache"
    tuner.reset()
    tuner.set_policy(before)


def fake_timer(monkeypatch, ms, calls=None, clock=None):
    """_time_call runs the candidate and reports ms[candidate] milliseconds, and the
    tuner's clock advances by as much (a fresh one unless given); calls collects the
    candidates timed."""
    clock = [0.0] if clock is None else clock

    def time_call(run, c):
        run(c)
        if calls is not None:
            calls.append(c)
        clock[0] += ms[c] / 1e3
        return ms[c] / 1e3
    monkeypatch.setattr(tuner, "_time_call", time_call)
    monkeypatch.setattr(tuner, "_clock", lambda: clock[0])


def no_timing(monkeypatch):
    def refuse(run, c):
        raise AssertionError("timed")
    monkeypatch.setattr(tuner, "_time_call", refuse)


def arrays(xs=XS, ws=WS, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x, W = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    return x, W, b


def forward(x, W, b, stride=STRIDE, pad=PAD):
    want = ref.conv2d_forward(x, W, b, *stride, *pad)
    y = kconv.conv2d_forward(x, W, b, stride, pad, np.empty_like(want))
    np.testing.assert_allclose(y, want, rtol=1e-9, atol=1e-9)
    return y


def entries(folder):
    (path,) = [os.path.join(folder, f) for f in os.listdir(folder)]
    assert path == tuner.cache_path()
    with open(path) as f:
        data = json.load(f)
    assert {k: data[k] for k in ("cdl", "numba", "cpu")} == tuner_cache.versions()
    return data["entries"]


def forward_key(xs=XS, ws=WS, stride=STRIDE, pad=PAD, dtype="float64"):
    return tuner.key_text(kconv._key("conv2d_forward", xs, ws, stride, pad, np.dtype(dtype)))


@pytest.mark.parametrize("fastest", ["gemm", "direct", "winograd", "pointwise"])
def test_picks_the_fastest_and_persists_it(cache, monkeypatch, fastest):
    ws, pad = (WS, PAD) if fastest != "pointwise" else ((128, 8, 1, 1), (0, 0))
    algos = kconv.applicable(XS, ws, STRIDE, pad)
    assert fastest in algos
    calls = []
    fake_timer(monkeypatch, {a: 1.0 if a == fastest else 3.0 for a in algos}, calls)
    x, W, b = arrays(ws=ws)
    forward(x, W, b, pad=pad)
    assert set(calls) == set(algos)
    d = kconv.decision(XS, ws, STRIDE, pad, "float64")
    assert (d.choice, d.source) == (fastest, "measured")
    assert d.why.startswith(f"measured: {fastest} 1 ms vs ")
    assert entries(cache)[forward_key(ws=ws, pad=pad)] == {
        "choice": fastest, "ms": {a: 1.0 if a == fastest else 3.0 for a in algos},
        "skipped": {}}
    # a second call, and a new process (memory forgotten), time nothing
    no_timing(monkeypatch)
    forward(x, W, b, pad=pad)
    tuner.reset()
    forward(x, W, b, pad=pad)
    d = kconv.decision(XS, ws, STRIDE, pad, "float64")
    assert (d.choice, d.source) == (fastest, "cached")
    assert d.why.startswith(f"cached: {fastest} 1 ms")


def test_directions_are_decided_apart(cache, monkeypatch):
    """Forward, backward with dx and backward without dx: three keys, three choices."""
    x, W, b = arrays()
    y = forward(x, W, b)
    dout = np.random.default_rng(1).standard_normal(y.shape)
    fake_timer(monkeypatch, {"gemm": 1.0, "direct": 2.0, "winograd": 3.0})
    dx, dW, db = kconv.conv2d_backward(dout, x, W, STRIDE, PAD, np.empty_like(x),
                                       np.empty_like(W), np.empty_like(b))
    fake_timer(monkeypatch, {"gemm": 3.0, "direct": 2.0, "winograd": 1.0})
    _, dW2, db2 = kconv.conv2d_backward(dout, x, W, STRIDE, PAD, None, np.empty_like(W),
                                        np.empty_like(b))
    want = ref.conv2d_backward(dout, x, W, *STRIDE, *PAD)
    for got, w in zip((dx, dW, db, dW2, db2), (*want, *want[1:])):
        np.testing.assert_allclose(got, w, rtol=1e-9, atol=1e-9)
    ops = {op: kconv.decision(XS, WS, STRIDE, PAD, "float64", op).choice
           for op in ("conv2d_backward", "conv2d_backward_params")}
    assert ops == {"conv2d_backward": "gemm", "conv2d_backward_params": "winograd"}
    assert len(entries(cache)) == 3


def test_backward_tuning_leaves_the_outputs_alone(cache, monkeypatch):
    """The candidates are timed into scratch arrays: the caller's dx, dW, db are written
    once, by the chosen algorithm, after the timing."""
    x, W, b = arrays()
    dout = np.random.default_rng(1).standard_normal(forward(x, W, b).shape)
    out = [np.full_like(x, np.nan), np.full_like(W, np.nan), np.full_like(b, np.nan)]
    checked = []

    def time_call(run, c):
        run(c)
        checked.append(all(np.isnan(o).all() for o in out))
        return {"gemm": 2e-3, "direct": 1e-3, "winograd": 3e-3}[c]
    monkeypatch.setattr(tuner, "_time_call", time_call)
    got = kconv.conv2d_backward(dout, x, W, STRIDE, PAD, *out)
    assert checked and all(checked)
    for g, w in zip(got, ref.conv2d_backward(dout, x, W, *STRIDE, *PAD)):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


def test_heuristic_policy_never_times(cache, monkeypatch):
    no_timing(monkeypatch)
    assert tuner.set_policy("heuristic") == "measure"
    x, W, b = arrays()
    forward(x, W, b)
    d = kconv.decision(XS, WS, STRIDE, PAD, "float64")
    assert (d.choice, d.why) == (kconv.choose_algorithm(XS, WS, STRIDE, PAD),
                                 "heuristic: policy 'heuristic'")
    assert not os.path.exists(cache)
    with pytest.raises(ValueError, match="policy must be one of"):
        tuner.set_policy("fastest")


def test_tiny_calls_keep_the_heuristic(cache, monkeypatch):
    no_timing(monkeypatch)
    xs, ws = (2, 4, 8, 8), (8, 4, 3, 3)  # 0.074 MFLOP
    x, W, b = arrays(xs, ws)
    forward(x, W, b)
    d = kconv.decision(xs, ws, STRIDE, PAD, "float64")
    assert d.choice == kconv.choose_algorithm(xs, ws, STRIDE, PAD)
    assert d.why == "heuristic: tiny layer (0.074 MFLOP)"
    assert not os.path.exists(cache)


def test_forced_algorithm_overrides_the_tuner(cache, monkeypatch):
    no_timing(monkeypatch)
    x, W, b = arrays()
    seen = []
    real = kconv._forward
    monkeypatch.setattr(kconv, "_forward", lambda a, *args: seen.append(a) or real(a, *args))
    with kconv.forced_algorithm("winograd"):
        forward(x, W, b)
    assert seen == ["winograd"] and kconv.decision(XS, WS, STRIDE, PAD, "float64") is None


def test_uncompiled_candidates_are_not_timed(cache, monkeypatch):
    """Only the heuristic's pick and what is compiled already; an entry that skipped a
    candidate as not compiled is measured again once it is."""
    heuristic = kconv.choose_algorithm(XS, WS, STRIDE, PAD)
    monkeypatch.setattr(tuner, "compiled", lambda dispatchers, dtype: False)
    no_timing(monkeypatch)
    x, W, b = arrays()
    forward(x, W, b)
    d = kconv.decision(XS, WS, STRIDE, PAD, "float64")
    assert (d.choice, d.source) == (heuristic, "only")
    assert d.why.startswith(f"heuristic: {heuristic}, the only candidate compiled")
    assert not os.path.exists(cache)  # nothing measured, nothing stored

    ready = {heuristic, "winograd"} - {"direct"}
    monkeypatch.setattr(tuner, "compiled", lambda dispatchers, dtype: any(
        dd in kconv._kernels(a, "conv2d_forward", WS[0]) for a in ready for dd in dispatchers))
    tuner.reset()
    calls = []
    fake_timer(monkeypatch, {"gemm": 2.0, "direct": 1.0, "winograd": 3.0}, calls)
    forward(x, W, b)
    assert set(calls) == ready
    assert entries(cache)[forward_key()]["skipped"] == {"direct": "not compiled"}

    tuner.reset()  # a new process, direct still not compiled: the entry holds
    no_timing(monkeypatch)
    forward(x, W, b)
    assert kconv.decision(XS, WS, STRIDE, PAD, "float64").source == "cached"

    tuner.reset()  # direct compiled since: measured again
    monkeypatch.setattr(tuner, "compiled", lambda dispatchers, dtype: True)
    fake_timer(monkeypatch, {"gemm": 2.0, "direct": 1.0, "winograd": 3.0})
    forward(x, W, b)
    assert kconv.decision(XS, WS, STRIDE, PAD, "float64").choice == "direct"
    assert entries(cache)[forward_key()]["skipped"] == {}


def test_compiled_looks_at_the_process_and_numbas_disk_cache(tmp_path):
    @numba.njit
    def first(a):
        return a[0]
    assert not tuner.compiled([first], np.float32)
    first(np.zeros(1, np.float32))
    assert tuner.compiled([first], np.float32) and not tuner.compiled([first], np.float64)
    assert tuner.compiled([], np.float64)
    # a kernel of cdl compiled in this process for float64 (cache=True: also on disk)
    conv_gemm.rows_to_nchw(np.zeros((4, 2)), np.zeros(2), 0, np.empty((1, 2, 4)))
    assert tuner.compiled([conv_gemm.rows_to_nchw], np.float64)


def test_budget_caps_the_timing(cache, monkeypatch):
    """Every call "takes" 0.2 s: after the heuristic's warm-up, the budget is 4 calls of it
    (0.8 s), and timing stops before a call would pass it."""
    clock, calls = [0.0], []
    fake_timer(monkeypatch, {"gemm": 200.0, "direct": 200.0, "winograd": 200.0}, calls, clock)
    forward(*arrays())
    assert len(calls) == 5 and len(set(calls)) == 3 and clock[0] <= 0.2 + 0.8

    # a slow candidate eats the budget: what is left gets no warm-up
    tuner.reset(disk=True)
    clock[0], calls[:] = 0.0, []
    h = kconv.choose_algorithm(XS, WS, STRIDE, PAD)
    order = [h] + [a for a in kconv.applicable(XS, WS, STRIDE, PAD) if a != h]
    fake_timer(monkeypatch, {order[0]: 10.0, order[1]: 1000.0, order[2]: 1.0}, calls, clock)
    forward(*arrays())
    assert calls == [h, h, order[1]]
    d = kconv.decision(XS, WS, STRIDE, PAD, "float64")
    assert d.choice == h and d.skipped == {order[2]: "over budget"}
    assert d.why.endswith(f"not timed: {order[2]} (over budget)")


def test_heuristic_pick_stays_within_the_margin(cache, monkeypatch):
    h = kconv.choose_algorithm(XS, WS, STRIDE, PAD)
    other = next(a for a in kconv.applicable(XS, WS, STRIDE, PAD) if a != h)
    ms = {a: 9.0 for a in kconv.applicable(XS, WS, STRIDE, PAD)}
    fake_timer(monkeypatch, {**ms, h: 1.04, other: 1.0})
    forward(*arrays())
    d = kconv.decision(XS, WS, STRIDE, PAD, "float64")
    assert d.choice == h
    (third,) = set(ms) - {h, other}
    assert d.why == (f"measured: {h} 1.04 ms vs {other} 1 ms, {third} 9 ms (the heuristic's "
                     f"pick: within 5% of the fastest)")
    tuner.reset(disk=True)
    fake_timer(monkeypatch, {**ms, h: 1.06, other: 1.0})
    forward(*arrays())
    assert kconv.decision(XS, WS, STRIDE, PAD, "float64").choice == other


def test_clear_losers_drop_out(cache, monkeypatch):
    calls = []
    fake_timer(monkeypatch, {"gemm": 1.0, "direct": 1.5, "winograd": 5.0}, calls)
    forward(*arrays())
    # winograd: its warm-up and one timed run (a warm-up includes loading code)
    assert calls.count("winograd") == 2 and calls.count("gemm") == 1 + tuner._REPEAT


def test_a_slow_first_call_is_no_loss(cache, monkeypatch):
    """A candidate's first call loads its code: it is timed again before it can drop out."""
    seen, clock = [], [0.0]

    def time_call(run, c):
        run(c)
        t = {"gemm": 1e-3, "winograd": 3e-3}.get(c, 0.5e-3 if c in seen else 50e-3)
        seen.append(c)
        clock[0] += t
        return t
    monkeypatch.setattr(tuner, "_time_call", time_call)
    monkeypatch.setattr(tuner, "_clock", lambda: clock[0])
    forward(*arrays())
    d = kconv.decision(XS, WS, STRIDE, PAD, "float64")
    assert d.choice == "direct" and d.ms["direct"] == 0.5


def test_corrupt_cache_file_is_ignored_and_rewritten(cache, monkeypatch):
    os.makedirs(cache)
    with open(tuner.cache_path(), "w") as f:
        f.write('{"format": 1, "entries": {"conv')
    fake_timer(monkeypatch, {"gemm": 1.0, "direct": 2.0, "winograd": 3.0})
    with pytest.warns(tuner.TuningWarning, match="unreadable.*ignored, it will be rewritten"):
        forward(*arrays())
    assert entries(cache)[forward_key()]["choice"] == "gemm"


@pytest.mark.parametrize("other", [{"cpu": "another CPU"}, {"cdl": "0.0.1"},
                                   {"numba": "0.1"}, {"format": 0}])
def test_stale_cache_file_is_ignored_and_rewritten(cache, monkeypatch, other):
    os.makedirs(cache)
    stale = {"format": 1, **tuner_cache.versions(),
             "entries": {forward_key(): {"choice": "winograd", "ms": {"winograd": 0.1,
                                                                       "gemm": 1, "direct": 1},
                                         "skipped": {}},
                         "conv2d_forward float32 1x2x3x3 4x2x3x3 1x1 1x1 2": {
                             "choice": "gemm", "ms": {"gemm": 1}, "skipped": {}}}}
    stale.update(other)
    with open(tuner.cache_path(), "w") as f:
        json.dump(stale, f)
    fake_timer(monkeypatch, {"gemm": 1.0, "direct": 2.0, "winograd": 3.0})
    with pytest.warns(tuner.TuningWarning, match="ignored, it will be rewritten"):
        forward(*arrays())
    assert kconv.decision(XS, WS, STRIDE, PAD, "float64").choice == "gemm"
    assert list(entries(cache)) == [forward_key()]


def test_unusable_entry_is_measured_again(cache, monkeypatch):
    """An entry whose choice does not apply (a hand-edited file) is not trusted."""
    os.makedirs(cache)
    with open(tuner.cache_path(), "w") as f:
        json.dump({"format": 1, **tuner_cache.versions(), "entries": {
            forward_key(): {"choice": "pointwise", "ms": {"pointwise": 0.1}}}}, f)
    fake_timer(monkeypatch, {"gemm": 1.0, "direct": 2.0, "winograd": 3.0})
    forward(*arrays())
    assert kconv.decision(XS, WS, STRIDE, PAD, "float64").choice == "gemm"


@pytest.mark.parametrize("how", ["under a file", "write refused"])
def test_unwritable_cache_works_in_memory_with_one_warning(cache, monkeypatch, how):
    """Tests run as root, where a 0o500 folder is still writable: a folder below a file
    cannot be created, and a refused write is simulated."""
    if how == "under a file":
        blocker = cache.parent / "a file"
        blocker.write_text("")
        monkeypatch.setenv("CDL_CACHE_DIR", str(blocker / "cdl"))
    else:
        import cdl._atomic

        def refuse(path, write, who="save"):
            raise PermissionError(13, "Permission denied", str(path))
        monkeypatch.setattr(cdl._atomic, "atomic_write", refuse)
    fake_timer(monkeypatch, {"gemm": 3.0, "direct": 1.0, "winograd": 2.0})
    with pytest.warns(tuner.TuningWarning, match="cannot be written.*stay in memory") as w:
        forward(*arrays())
        forward(*arrays(xs=(4, 8, 16, 16)))  # a second geometry: no second warning
    assert len([x for x in w if issubclass(x.category, tuner.TuningWarning)]) == 1
    no_timing(monkeypatch)
    forward(*arrays())
    assert kconv.decision(XS, WS, STRIDE, PAD, "float64").choice == "direct"
    assert not os.path.exists(tuner.cache_path())


@pytest.mark.parametrize("same", [True, False])
def test_two_threads_tuning_at_once(cache, monkeypatch, same):
    """The same geometry is timed once and both threads get its choice; two geometries
    both land in the file."""
    calls, barrier = [], threading.Barrier(2)
    fake_timer(monkeypatch, {"gemm": 2.0, "direct": 1.0, "winograd": 3.0}, calls)
    shapes = [XS, XS] if same else [XS, (4, 8, 16, 16)]
    errors = []

    def work(xs):
        try:
            barrier.wait()
            forward(*arrays(xs))
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=work, args=(xs,)) for xs in shapes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    per_geometry = 4 + 2 * tuner._REPEAT  # warm-ups, gemm timed, 3 rounds (winograd: one)
    assert len(calls) == per_geometry * len(set(shapes))
    got = entries(cache)
    assert sorted(got) == sorted({forward_key(xs) for xs in shapes})
    assert all(e["choice"] == "direct" for e in got.values())


# -- the binary GEMM variants ---------------------------------------------------------

GEMM = (256, 64, 16)  # M, N, W: 2^18 word pairs, the smallest product timed


def xnor(M=GEMM[0], N=GEMM[1], W=GEMM[2], seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, (M, W), dtype=np.uint64)
    b = rng.integers(0, 2**64, (N, W), dtype=np.uint64)
    out = np.full((M, N), -7, dtype=np.int32)
    kbin.xnor_gemm(a, b, 64 * W, out)
    np.testing.assert_array_equal(out, ref.binary_matmul(a, b, 64 * W))


@pytest.mark.parametrize("fastest", kbin.applicable_variants())
def test_gemm_variant_by_measurement(cache, monkeypatch, fastest):
    monkeypatch.delenv("CDL_BINARY_GEMM", raising=False)
    variants = kbin.applicable_variants()
    calls = []
    fake_timer(monkeypatch, {v: 1.0 if v == fastest else 3.0 for v in variants}, calls)
    xnor()
    assert set(calls) == set(variants)
    key = ("xnor_gemm", "uint64", GEMM, numba.get_num_threads())
    assert tuner.cached(key).choice == fastest
    assert entries(cache)[tuner.key_text(key)]["choice"] == fastest
    no_timing(monkeypatch)
    tuner.reset()
    xnor()
    assert tuner.cached(key).source == "cached"


@pytest.mark.parametrize("why", ["tiny", "policy", "environment"])
def test_gemm_variant_not_measured(cache, monkeypatch, why):
    no_timing(monkeypatch)
    monkeypatch.delenv("CDL_BINARY_GEMM", raising=False)
    if why == "policy":
        tuner.set_policy("heuristic")
    elif why == "environment":
        monkeypatch.setenv("CDL_BINARY_GEMM", "vector")
    xnor(*(GEMM[:2] + (GEMM[2] // 2,)) if why == "tiny" else GEMM)
    assert not os.path.exists(cache)


def test_decision_argument_check():
    with pytest.raises(ValueError, match="op must be one of"):
        kconv.decision(XS, WS, STRIDE, PAD, op="conv2d_dx")
