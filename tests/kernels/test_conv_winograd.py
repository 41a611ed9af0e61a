"""cdl.kernels.conv_winograd: the F(2x2, 3x3) transforms of its docstring, each checked on its
own (against the matrices B, G, A written out here, or as the adjoint of its partner) and
composed into a convolution against the reference. The algorithm as conv2d_forward/backward
run it: tests/kernels/test_conv.py."""
import numpy as np
import pytest

from cdl.kernels import conv_winograd as wino
from cdl.kernels import reference as ref

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# (N, C, H, W, ph, pw): even and odd output sizes, padding 0, 1 and 2
CASES = [(1, 1, 4, 4, 0, 0), (2, 3, 5, 7, 1, 1), (1, 2, 6, 5, 0, 1), (2, 1, 3, 4, 2, 1)]


def _out_hw(H, W, ph, pw):
    return H + 2 * ph - 2, W + 2 * pw - 2


def _tiles(x, ph, pw):
    N, C, H, W = x.shape
    th, tw = wino.tiles_hw(_out_hw(H, W, ph, pw))
    V = np.empty((16, C, N * th * tw), dtype=x.dtype)
    wino.input_tiles(x, 0, N, ph, pw, th, tw, V)
    return V, th, tw


@pytest.mark.parametrize("out_hw, tiles", [((1, 1), (1, 1)), ((4, 5), (2, 3)), ((2, 2), (1, 1))])
def test_tiles_hw(out_hw, tiles):
    assert wino.tiles_hw(out_hw) == tiles


def test_weights_are_g_w_gt_and_weight_grads_their_adjoint(rng):
    W = rng.standard_normal((3, 2, 3, 3))
    U = wino.weights(W)
    assert U.shape == (16, 3, 2) and U.dtype == W.dtype
    for f in range(3):
        for c in range(2):
            np.testing.assert_allclose(U[:, f, c], (wino.G @ W[f, c] @ wino.G.T).ravel(),
                                       rtol=1e-12)
    dU = rng.standard_normal(U.shape)
    np.testing.assert_allclose((U * dU).sum(), (W * wino.weight_grads(dU)).sum(), rtol=1e-12)
    assert wino.weights(W.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("case", CASES)
def test_input_tiles_are_bt_d_b(case, rng):
    N, C, H, W, ph, pw = case
    x = rng.standard_normal((N, C, H, W))
    V, th, tw = _tiles(x, ph, pw)
    img = np.zeros((N, C, 2 * th + 2 + 2 * ph, 2 * tw + 2 + 2 * pw))  # zeros past the edge
    img[:, :, ph:ph + H, pw:pw + W] = x
    for n in range(N):
        for ty in range(th):
            for tx in range(tw):
                t = (n * th + ty) * tw + tx
                d = img[n, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]
                want = np.einsum("ai,cij,bj->abc", BT, d, BT).reshape(16, C)
                np.testing.assert_allclose(V[:, :, t], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_input_grads_is_the_adjoint_of_input_tiles(case, rng):
    N, C, H, W, ph, pw = case
    x = rng.standard_normal((N, C, H, W))
    V, th, tw = _tiles(x, ph, pw)
    dV = rng.standard_normal(V.shape)
    dx = np.zeros_like(x)
    wino.input_grads(dV, 0, N, ph, pw, th, tw, dx)
    np.testing.assert_allclose((V * dV).sum(), (x * dx).sum(), rtol=1e-10)


@pytest.mark.parametrize("oh, ow", [(4, 4), (3, 5), (1, 2)])
def test_output_tiles_are_at_m_a_and_dout_tiles_their_adjoint(oh, ow, rng):
    N, F = 2, 3
    th, tw = wino.tiles_hw((oh, ow))
    M = rng.standard_normal((16, F, N * th * tw))
    b = rng.standard_normal(F)
    y = np.empty((N, F, oh, ow))
    wino.output_tiles(M, b, 0, N, th, tw, y)
    for n in range(N):
        for ty in range(th):
            for tx in range(tw):
                t = (n * th + ty) * tw + tx
                block = np.einsum("ai,fij,bj->fab", AT, M[:, :, t].T.reshape(F, 4, 4), AT)
                block += b[:, None, None]
                got = y[n, :, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2]
                np.testing.assert_allclose(got, block[:, :got.shape[1], :got.shape[2]],
                                           rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    Z = np.empty_like(M)
    wino.dout_tiles(dy, 0, N, th, tw, Z)
    wino.output_tiles(M, np.zeros(F), 0, N, th, tw, y)
    np.testing.assert_allclose((y * dy).sum(), (M * Z).sum(), rtol=1e-10)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_transforms_compose_into_the_convolution(case, dtype, rng):
    N, C, H, W, ph, pw = case
    F = 4
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((F, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    V, th, tw = _tiles(x, ph, pw)
    M = np.matmul(wino.weights(Wt), V)
    y = np.empty((N, F, *_out_hw(H, W, ph, pw)), dtype)
    wino.output_tiles(M, b, 0, N, th, tw, y)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref.conv2d_forward(x, Wt, b, 1, 1, ph, pw), rtol=tol, atol=tol)


def test_a_chunk_of_samples_writes_only_its_samples(rng):
    x = rng.standard_normal((3, 2, 4, 4))
    th, tw = wino.tiles_hw((2, 2))
    V = np.empty((16, 2, 1 * th * tw))
    wino.input_tiles(x, 1, 2, 0, 0, th, tw, V)  # sample 1 alone
    np.testing.assert_allclose(V, _tiles(x[1:2], 0, 0)[0], rtol=1e-12)
    dx = np.zeros_like(x)
    wino.input_grads(np.ones_like(V), 1, 2, 0, 0, th, tw, dx)
    assert not dx[0].any() and not dx[2].any() and dx[1].any()
