"""cdl.kernels.reference, the tests' oracles, against loops over every output element (tiny
shapes) and against identities: an oracle that is wrong would pass every kernel it checks."""
import itertools

import numpy as np
import pytest

from cdl.kernels import reference as ref

GEOMETRIES = [(3, 3, 1, 1, 0, 0), (3, 2, 2, 1, 1, 0), (2, 3, 2, 3, 1, 1)]  # kh kw sh sw ph pw


def _loop_conv(x, W, b, sh, sw, ph, pw):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    img = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw))
    img[:, :, ph:ph + H, pw:pw + Wd] = x
    oh, ow = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    y = np.zeros((N, F, oh, ow))
    for n, f, i, j in itertools.product(range(N), range(F), range(oh), range(ow)):
        y[n, f, i, j] = (img[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw] * W[f]).sum() + b[f]
    return y


def _loop_pool(x, kh, kw, sh, sw, ph, pw, op, fill):
    N, C, H, W = x.shape
    img = np.full((N, C, H + 2 * ph, W + 2 * pw), fill)
    img[:, :, ph:ph + H, pw:pw + W] = x
    oh, ow = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, C, oh, ow))
    for n, c, i, j in itertools.product(range(N), range(C), range(oh), range(ow)):
        y[n, c, i, j] = op(img[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw])
    return y


@pytest.mark.parametrize("g", GEOMETRIES)
def test_conv_forward_is_the_loop(g, rng):
    kh, kw, sh, sw, ph, pw = g
    x = rng.standard_normal((2, 3, 6, 5))
    W = rng.standard_normal((4, 3, kh, kw))
    b = rng.standard_normal(4)
    np.testing.assert_allclose(ref.conv2d_forward(x, W, b, sh, sw, ph, pw),
                               _loop_conv(x, W, b, sh, sw, ph, pw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_conv_backward_is_the_adjoint(g, rng):
    """<conv(x, W), dout> is linear in x and in W: its gradients are dx and dW."""
    kh, kw, sh, sw, ph, pw = g
    x = rng.standard_normal((2, 3, 6, 5))
    W = rng.standard_normal((4, 3, kh, kw))
    y = ref.conv2d_forward(x, W, None, sh, sw, ph, pw)
    dout = rng.standard_normal(y.shape)
    dx, dW, db = ref.conv2d_backward(dout, x, W, sh, sw, ph, pw)
    vx, vW = rng.standard_normal(x.shape), rng.standard_normal(W.shape)
    dot = lambda a, b: float((a * b).sum())  # noqa: E731
    np.testing.assert_allclose(dot(ref.conv2d_forward(vx, W, None, sh, sw, ph, pw), dout),
                               dot(vx, dx), rtol=1e-10)
    np.testing.assert_allclose(dot(ref.conv2d_forward(x, vW, None, sh, sw, ph, pw), dout),
                               dot(vW, dW), rtol=1e-10)
    np.testing.assert_allclose(db, dout.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("g", GEOMETRIES)
def test_im2col_times_weights_is_the_conv_and_col2im_its_adjoint(g, rng):
    kh, kw, sh, sw, ph, pw = g
    x = rng.standard_normal((2, 3, 6, 5))
    W = rng.standard_normal((4, 3, kh, kw))
    col = ref.im2col(x, kh, kw, sh, sw, ph, pw)
    oh, ow = ref.out_hw(6, 5, kh, kw, sh, sw, ph, pw)
    y = (col @ W.reshape(4, -1).T).reshape(2, oh, ow, 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, _loop_conv(x, W, np.zeros(4), sh, sw, ph, pw), rtol=1e-12)
    c = rng.standard_normal(col.shape)
    np.testing.assert_allclose((col * c).sum(),
                               (x * ref.col2im(c, x.shape, kh, kw, sh, sw, ph, pw)).sum(),
                               rtol=1e-12)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_pools_are_the_loop(g, rng):
    kh, kw, sh, sw, ph, pw = g
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)
    x = rng.standard_normal((2, 2, 6, 5))
    np.testing.assert_array_equal(ref.maxpool2d_forward(x, kh, kw, sh, sw, ph, pw),
                                  _loop_pool(x, kh, kw, sh, sw, ph, pw, np.max, -np.inf))
    np.testing.assert_allclose(ref.avgpool2d_forward(x, kh, kw, sh, sw, ph, pw),
                               _loop_pool(x, kh, kw, sh, sw, ph, pw, np.sum, 0.0) / (kh * kw),
                               rtol=1e-12)
    y = ref.avgpool2d_forward(x, kh, kw, sh, sw, ph, pw)
    dout, v = rng.standard_normal(y.shape), rng.standard_normal(x.shape)
    dx = ref.avgpool2d_backward(dout, x.shape, kh, kw, sh, sw, ph, pw)
    np.testing.assert_allclose((ref.avgpool2d_forward(v, kh, kw, sh, sw, ph, pw) * dout).sum(),
                               (v * dx).sum(), rtol=1e-12)


def test_maxpool_backward_routes_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])  # a tie: the first in row-major order wins
    dx = ref.maxpool2d_backward(np.array([[[[5.0]]]]), x, 2, 2, 2, 2)
    np.testing.assert_array_equal(dx, [[[[0, 5], [0, 0]]]])
    x = np.arange(16.0).reshape(1, 1, 4, 4)  # overlapping windows add up
    dx = ref.maxpool2d_backward(np.ones((1, 1, 2, 2)), x, 3, 3, 1, 1)
    assert dx.sum() == 4 and dx[0, 0, 3, 3] == 1 and dx[0, 0, 2, 3] == 1


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3, 3)])
def test_batchnorm_forward_and_backward(shape, rng):
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    y, xc, xn, std, mean, var = ref.batchnorm_forward(x, gamma, beta, 1e-5)
    axes = (0,) if len(shape) == 2 else (0, 2, 3)
    np.testing.assert_allclose(mean, x.mean(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(xn.mean(axis=axes), 0, atol=1e-12)
    # backward against central differences of L = sum(y * dout)
    dout = rng.standard_normal(shape)
    dx, dgamma, dbeta = ref.batchnorm_backward(dout, gamma, xc, xn, std)
    L = lambda x_, g_, b_: (ref.batchnorm_forward(x_, g_, b_, 1e-5)[0] * dout).sum()  # noqa: E731
    h = 1e-6
    for arr, grad in ((x, dx), (gamma, dgamma), (beta, dbeta)):
        v = rng.standard_normal(arr.shape)
        old = arr.copy()
        arr += h * v
        up = L(x, gamma, beta)
        arr[...] = old - h * v
        down = L(x, gamma, beta)
        arr[...] = old
        np.testing.assert_allclose((grad * v).sum(), (up - down) / (2 * h), rtol=1e-6)


def test_pack_bits_is_the_design_layout():
    """bit j of a row in word j // 64 at position j % 64, 1 where x >= 0, tail zero."""
    x = -np.ones((2, 70))
    x[0, [0, 5, 63, 64, 69]] = 0.0
    x[1, 1] = 2.0
    p = ref.pack_bits(x)
    assert p.dtype == np.uint64 and p.shape == (2, 2)
    assert p[0].tolist() == [(1 << 0) | (1 << 5) | (1 << 63), (1 << 0) | (1 << 5)]
    assert p[1].tolist() == [1 << 1, 0]
    np.testing.assert_array_equal(ref.unpack_bits(p, 70), np.where(x >= 0, 1.0, -1.0))


def test_binary_matmul_and_conv_are_sign_products(rng):
    a, b = rng.standard_normal((3, 100)), rng.standard_normal((4, 100))
    want = np.sign(a + 0.0) @ np.sign(b).T  # no exact zeros in standard normals
    got = ref.binary_matmul(ref.pack_bits(a), ref.pack_bits(b), 100)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    np.testing.assert_array_equal(ref.binary_conv2d(x, w, 1, 1, 1, 1),
                                  _loop_conv(np.sign(x), np.sign(w), np.zeros(3), 1, 1, 1, 1))


def test_warp_affine_identity_shift_and_fill(rng):
    x = rng.standard_normal((2, 1, 4, 5))
    eye = np.tile(np.eye(3)[:2], (2, 1, 1))
    np.testing.assert_allclose(ref.warp_affine(x, eye), x, rtol=1e-12)
    shift = eye.copy()
    shift[:, 0, 2] = 1.0  # sample one pixel to the right
    out = ref.warp_affine(x, shift, fill=7.0)
    np.testing.assert_allclose(out[..., :-1], x[..., 1:], rtol=1e-12)
    assert (out[..., -1] == 7.0).all()
    half = eye.copy()
    half[:, 1, 2] = 0.5  # halfway between two rows: their mean
    np.testing.assert_allclose(ref.warp_affine(x, half)[:, :, :-1],
                               (x[:, :, :-1] + x[:, :, 1:]) / 2, rtol=1e-12)


def test_shift_hue():
    red = np.zeros((1, 3, 1, 2))
    red[0, 0] = 1.0
    np.testing.assert_allclose(ref.shift_hue(red, [0.0]), red)
    green = ref.shift_hue(red, [1 / 3])
    np.testing.assert_allclose(green[0, :, 0, 0], [0, 1, 0], atol=1e-12)
