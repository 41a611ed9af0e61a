"""cdl.kernels.conv_direct: the wide-row, phase-split direct convolution, its slice kernels
called as its docstring lays them out, against the reference; and its geometry helpers.
The algorithm as conv2d_forward/backward choose and run it: tests/kernels/test_conv.py."""
import numpy as np
import pytest

from cdl.kernels import conv_direct as direct
from cdl.kernels import reference as ref

# (N, C, H, W, F, KH, KW, SH, SW, PH, PW): stride 1 and 2 and mixed, F not a multiple of 4
# (nor of 2), and C = 5: dx's blocks of four input channels and the one left over
CASES = [(2, 1, 7, 9, 4, 3, 3, 1, 1, 1, 1), (1, 3, 8, 6, 5, 3, 2, 2, 1, 0, 1),
         (2, 2, 9, 9, 3, 5, 5, 2, 3, 2, 2), (1, 2, 5, 5, 6, 1, 1, 1, 1, 0, 0),
         (3, 1, 4, 11, 2, 2, 4, 1, 2, 1, 0), (2, 5, 6, 7, 9, 3, 3, 1, 1, 1, 1)]


def _geometry(case):
    N, C, H, W, F, kh, kw, sh, sw, ph, pw = case
    oh, ow = ref.out_hw(H, W, kh, kw, sh, sw, ph, pw)
    hq, wq, L = direct.phase_geometry((F, C, kh, kw), (sh, sw), (oh, ow))
    planes, offs = direct.taps(C, kh, kw, sh, sw, wq)
    return (oh, ow), (planes, offs, sh, sw, ph, pw, hq, wq)


def _arrays(case, rng, dtype=np.float64):
    N, C, H, W, F, kh, kw = case[:7]
    return (rng.standard_normal((N, C, H, W)).astype(dtype),
            rng.standard_normal((F, C, kh, kw)).astype(dtype), rng.standard_normal(F).astype(dtype))


def test_phase_geometry():
    # 3x3, stride 2, output 4x5: phase planes of 4 + 1 rows and 5 + 1 columns
    assert direct.phase_geometry((8, 3, 3, 3), (2, 2), (4, 5)) == (5, 6, 3 * 6 + 5)
    assert direct.phase_geometry((8, 3, 3, 3), (1, 1), (4, 5)) == (6, 7, 3 * 7 + 5)


def test_taps_read_their_phase_at_their_offset():
    C, kh, kw, sh, sw, wq = 2, 3, 4, 2, 3, 10
    planes, offs = direct.taps(C, kh, kw, sh, sw, wq)
    t = 0
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                assert planes[t] == ((i % sh) * sw + j % sw) * C + c
                assert offs[t] == (i // sh) * wq + j // sw
                t += 1


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_slice_is_the_convolution(case, dtype, rng):
    x, W, b = _arrays(case, rng, dtype)
    (oh, ow), g = _geometry(case)
    N, F = x.shape[0], W.shape[0]
    y = np.full((N, F, oh, ow), np.nan, dtype)
    direct.forward_slice(x, W.reshape(F, -1), b, *g, y, 0, N)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref.conv2d_forward(x, W, b, *case[7:]), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES)
def test_backward_slice_is_the_gradient_and_adds_into_dw_db(case, rng):
    x, W, _ = _arrays(case, rng)
    (oh, ow), g = _geometry(case)
    N, F = x.shape[0], W.shape[0]
    dout = rng.standard_normal((N, F, oh, ow))
    lists = direct.gather_lists(W, case[7:9], g[-1])
    want_dx, want_dW, want_db = ref.conv2d_backward(dout, x, W, *case[7:])
    dx = np.full(x.shape, np.nan)
    dWt, db = np.zeros((F, W[0].size)), np.zeros(F)
    for a, z in ((0, N // 2), (N // 2, N)):  # two slices add their parts
        direct.backward_slice(dout, x, W.reshape(F, -1), *g[:2], *lists, *g[2:], dx, True,
                              dWt, db, a, z)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dWt.reshape(W.shape), want_dW, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(db, want_db, rtol=1e-11, atol=1e-12)


def test_without_dx_only_the_parameter_gradients(rng):
    case = CASES[1]
    x, W, _ = _arrays(case, rng)
    (oh, ow), g = _geometry(case)
    F = W.shape[0]
    dout = rng.standard_normal((1, F, oh, ow))
    lists = direct.gather_lists(W, case[7:9], g[-1])
    dWt, db = np.zeros((F, W[0].size)), np.zeros(F)
    direct.backward_slice(dout, x, W.reshape(F, -1), *g[:2], *lists, *g[2:],
                          np.empty((0, 0, 0, 0)), False, dWt, db, 0, 1)
    np.testing.assert_allclose(dWt.reshape(W.shape), ref.conv2d_backward(dout, x, W, *case[7:])[1],
                               rtol=1e-11)


def test_a_slice_writes_only_its_samples(rng):
    case = CASES[0]
    x, W, b = _arrays(case, rng)
    (oh, ow), g = _geometry(case)
    y = np.zeros((2, W.shape[0], oh, ow))
    direct.forward_slice(x, W.reshape(W.shape[0], -1), b, *g, y, 1, 2)
    assert not y[0].any()
    np.testing.assert_allclose(y[1], ref.conv2d_forward(x[1:], W, b, 1, 1, 1, 1)[0], rtol=1e-12)


def test_nan_and_inf_propagate_despite_fastmath(rng):
    case = CASES[0]
    x, W, b = _arrays(case, rng)
    x[0, 0, 3, 4] = np.nan
    x[1, 0, 0, 0] = np.inf
    (oh, ow), g = _geometry(case)
    y = np.zeros((2, W.shape[0], oh, ow))
    direct.forward_slice(x, W.reshape(W.shape[0], -1), b, *g, y, 0, 2)
    assert np.isnan(y[0, :, 2:5, 3:6]).all() and np.isfinite(y[0, :, 0, 0]).all()
    assert not np.isfinite(y[1, :, 0, 0]).any()


def test_gather_lists_order_entries_by_phase():
    W = np.arange(2 * 3 * 3 * 3, dtype=np.float64).reshape(2, 3, 3, 3)  # F 2, C 3, 3x3
    wq = 7
    Gw, rows, goffs, starts = direct.gather_lists(W, (2, 2), wq)
    # taps per phase of a 3x3 kernel at stride 2: 4, 2, 2, 1; times F = 2 entries each
    assert starts.tolist() == [0, 8, 12, 16, 18]
    i, j = np.unravel_index(np.arange(9), (3, 3))
    phase = (i % 2) * 2 + j % 2
    off = (i // 2) * wq + j // 2
    for r in range(4):  # phase r's entries: its taps (each for every f), their weights
        e = np.arange(starts[r], starts[r + 1])
        taps = [t for t in range(9) if phase[t] == r]
        assert len(e) == 2 * len(taps)
        for k in e:
            tap = taps[(k - starts[r]) // 2]
            f = rows[k]
            assert goffs[k] == off.max() - off[tap]
            np.testing.assert_array_equal(Gw[:, k], W[f, :, i[tap], j[tap]])
