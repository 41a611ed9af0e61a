"""cdl.benchmarks (behind `cdl bench`): the cdl-only report, its timing and decision helpers;
and the bench/ helpers built on it (bench/_twins.py: the book's reference code is right;
bench/_tables.py: the comparison tables are sane; bench/neighbours.py: what it times after
what), which pytest reaches through bench/ on sys.path as the bench scripts do."""
import importlib
import pathlib
import sys

import numpy as np
import pytest

from cdl import benchmarks as B
from cdl.cli import main
from cdl.kernels import reference as ref

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def bench(monkeypatch):
    """bench/_tables.py as the bench scripts import it (bench/ first on sys.path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("_tables", "_twins", "neighbours"):
        sys.modules.pop(name, None)
    yield importlib.import_module("_tables")
    for name in ("_tables", "_twins", "neighbours"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("shape,w,s,p", [((2, 3, 7, 6), (4, 3, 3, 3), 1, 1),
                                         ((2, 2, 9, 9), (3, 2, 5, 5), 2, 2),
                                         ((1, 4, 4, 4), (2, 4, 1, 1), 1, 0)])
def test_book_conv_is_a_convolution(bench, shape, w, s, p):
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal(shape), rng.standard_normal(w), rng.standard_normal(w[0])
    y, dx, dW, db = bench.book_conv(x, W, b, dout := rng.standard_normal(
        ref.conv2d_forward(x, W, b, s, s, p, p).shape), s, p)
    np.testing.assert_allclose(y, ref.conv2d_forward(x, W, b, s, s, p, p), atol=1e-10)
    for got, want in zip((dx, dW, db), ref.conv2d_backward(dout, x, W, s, s, p, p)):
        np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_book_pool_matches_reference(bench, op):
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) * 0.1
    y, dx = bench.book_pool(op, x, dout := rng.standard_normal((2, 3, 3, 3)), 3, 2)
    if op == "max":
        np.testing.assert_allclose(y, ref.maxpool2d_forward(x, 3, 3, 2, 2))
        np.testing.assert_allclose(dx, ref.maxpool2d_backward(dout, x, 3, 3, 2, 2))
    else:
        np.testing.assert_allclose(y, ref.avgpool2d_forward(x, 3, 3, 2, 2))
        np.testing.assert_allclose(dx, ref.avgpool2d_backward(dout, x.shape, 3, 3, 2, 2))


def test_comparison_rows_and_table(bench):
    rows = bench.conv_rows([(2, 3, 14, 14, 4, 3, 1, 1), (2, 8, 4, 4, 4, 1, 1, 0),
                        (2, 8, 6, 6, 4, 3, 1, 1)], 1, 1, algos=True)
    assert [r["algo"] for r in rows] == ["direct", "pointwise", "gemm"]
    assert all(r["cdl ms"] > 0 and r["book/cdl"] > 0 for r in rows)
    assert all(r["gemm ms"] > 0 and r["direct ms"] > 0 for r in rows)
    assert "pointwise ms" in rows[1] and "pointwise ms" not in rows[0]
    rows += bench.pool_rows([("max", (2, 3, 6, 6), 2, 2), ("avg", (2, 3, 7, 7), 3, 2)], 1, 1)
    lines = []
    B.table(rows + [bench.summary(rows)], bench.CONV_COLUMNS, out=lines.append)
    assert lines[0].split()[:3] == ["shape", "algo", "cdl"] and len(lines) == 7
    assert "torch ms" not in lines[0]  # a column nobody filled is left out


@pytest.mark.slow
def test_machine_line_names_blas_and_threads():
    info = B.machine()
    assert info["numba_layer"] in ("omp", "tbb", "workqueue")
    assert info["cores"] >= 1 and "cpu" in info and "blas" in info


@pytest.mark.parametrize("argv", [["bench", "--threads", "0"], ["bench", "--fast"]])
def test_cli_bench_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_conv_rows_with_dx_say_which_algorithm_and_why(bench, monkeypatch, tmp_path):
    monkeypatch.setenv("CDL_CACHE_DIR", str(tmp_path))
    rows = bench.conv_rows([(2, 3, 8, 8, 4, 3, 1, 1), (8, 8, 16, 16, 16, 3, 1, 1)], 1, 1,
                       with_dx=True)
    assert all(r["fwd ms"] > 0 and r["bwd ms"] > 0 and r["bwd+dx ms"] > 0 for r in rows)
    tiny, timed = (r["decisions"] for r in rows)
    assert list(tiny) == ["forward", "backward", "backward without dx"]
    assert all(why.startswith("heuristic: tiny layer") for why in tiny.values())
    # measured, unless no other algorithm is compiled yet (a cold Numba cache)
    assert all(why.startswith(("measured: ", "heuristic: ")) for why in timed.values())
    lines = B.decision_lines(rows[0]["shape"], tiny)
    assert lines[0] == "N2 3->4 8x8 k3 s1 p1" and lines[1].startswith("  forward: heuristic")


def test_model_decisions_name_each_conv_layer():
    import cdl
    from cdl import layers as L
    rng = np.random.default_rng(0)
    net = cdl.Sequential([L.Conv2D(1, 4, 3, pad=1, rng=rng), L.ReLU(),
                          L.Conv2D(4, 4, 3, pad=1, rng=rng), L.Flatten(),
                          L.Affine(4 * 36, 3, rng=rng)], loss=L.SoftmaxCrossEntropy())
    net.loss(rng.standard_normal((2, 1, 6, 6)).astype(np.float32), np.array([0, 2]))
    net.backward(input_grad=False)
    got = B.model_decisions(net)
    assert list(got) == ["0 Conv2D 1->4 6x6 k3 N2", "2 Conv2D 4->4 6x6 k3 N2"]
    first, second = got.values()
    assert list(first) == ["forward", "backward without dx"]
    assert list(second) == ["forward", "backward"]
    assert first["forward"].why.startswith("heuristic: tiny layer")


def test_conv_times_say_which_algorithm_and_why(monkeypatch, tmp_path):
    monkeypatch.setenv("CDL_CACHE_DIR", str(tmp_path))
    rows = B.conv_times([(2, 3, 8, 8, 4, 3, 1, 1), (2, 8, 4, 4, 4, 1, 1, 0)], 1, 1)
    assert [r["shape"] for r in rows] == ["N2 3->4 8x8 k3 s1 p1", "N2 8->4 4x4 k1 s1 p0"]
    assert rows[1]["algo"] == "pointwise"
    assert all(r["cdl ms"] > 0 and r["cdl GFLOP/s"] > 0 and r["cdl first s"] > 0 for r in rows)
    assert list(rows[0]["decisions"]) == ["forward", "backward"]
    assert rows[0]["decisions"]["forward"].startswith("heuristic: tiny layer")


def test_layer_times_cover_every_layer_of_a_training_step():
    import cdl
    from cdl import layers as L
    rng = np.random.default_rng(0)
    net = cdl.Sequential([L.Conv2D(1, 4, 3, pad=1, rng=rng), L.ReLU(), L.Flatten(),
                          L.Affine(4 * 36, 3, rng=rng)], loss=L.SoftmaxCrossEntropy())
    x, t = rng.standard_normal((2, 1, 6, 6)).astype(np.float32), np.array([0, 2])
    rows = B.layer_times(net, x, t, repeat=2, warmup=1)
    assert [r["layer"] for r in rows] == ["0 Conv2D", "1 ReLU", "2 Flatten", "3 Affine"]
    assert [r["output"] for r in rows] == ["4x6x6", "4x6x6", "144", "3"]
    assert all(r["fwd ms"] > 0 and r["bwd ms"] > 0 for r in rows)
    assert sum(r["share %"] for r in rows) == pytest.approx(100)
    assert net.layers[0].grads["W"].any()  # the backward really ran
    assert list(B.model_decisions(net)) == ["0 Conv2D 1->4 6x6 k3 N2"]


@pytest.mark.slow
def test_report_runs_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    monkeypatch.setattr(B, "CONV_SHAPES", [(2, 3, 8, 8, 4, 3, 1, 1)])
    monkeypatch.setattr(B, "BATCH", 2)
    monkeypatch.setattr(B, "INFERENCE_BATCH", 2)
    lines = []
    res = B.report(threads=1, torch=B.torch_or_none(), out=lines.append)
    assert set(res) == {"conv", "layers", "decisions", "inference"}
    text = "\n".join(lines)
    assert "torch=None" in lines[0] and "bench/" not in text
    assert "0 Conv2D 1->16 28x28 k3 N2" in text and "  forward: " in text
    assert [r["model"] for r in res["inference"]] == ["DeepConvNet", "ResNet"]
    assert [r["layer"].split()[1] for r in res["layers"]][:2] == ["Conv2D", "ReLU"]


def test_neighbours_times_each_target_alone_and_right_after_each_other_call(bench,
                                                                           monkeypatch):
    """bench/neighbours.py: per round, every target after quiet, alone and right after each
    other call (untimed), so that a neighbour's spinning threads meet the timed call."""
    nb = importlib.import_module("neighbours")
    monkeypatch.setattr(nb, "QUIET_S", 0.0)
    ran = []
    calls = {name: (lambda name=name: ran.append(name)) for name in ("a", "b", "c")}
    med = nb.measure(calls, repeat=2, warmup=1)
    assert set(med) == {"a", "b", "c"}
    assert all(set(v) == {"alone"} | ({"a", "b", "c"} - {k}) for k, v in med.items())
    assert all(t >= 0 for v in med.values() for t in v.values())
    timed = ran[3:]  # after one warm-up call each: per round 3 targets x (alone + 2 others)
    assert len(timed) == 2 * 3 * (1 + 2 * 2)
    assert timed[:5] == ["a", "b", "a", "c", "a"]  # a alone, after b, after c


def test_interleaved_times_after_the_kernels_compiling_ahead(monkeypatch):
    """A cold cache: the warm-up waits for cdl.kernels.ahead's process, then calls each
    contender once more (tuned among all kernels) before the timed calls."""
    from cdl.kernels import ahead

    class Child:
        returncode = None

        def poll(self):
            return self.returncode

        def wait(self, timeout=None):
            self.returncode = 0
            return 0

    child = Child()
    monkeypatch.setattr(ahead, "_children", {"float32": child})
    calls = []
    B.interleaved({"a": lambda: calls.append(child.returncode)}, repeat=2, warmup=1,
                  pause_s=0)
    assert calls == [None, 0, 0, 0]  # warm-up while compiling, once more after, 2 timed
    assert not B.wait_for_compiles()  # done: nothing to wait for
