"""Binary layers: forward against float +-1 math, STE gradients against their stated rule.

Central differences cannot check a gradient through sign() (it is flat almost
everywhere), so the straight-through parts are compared with the rule the
layers document, and only the continuous parts go through check_layer / numerical
gradients: dx of a first layer (binarize_input=False), the bias, and the
XNOR-Net scale alpha = mean|W| through the latent weights.
"""
import numpy as np
import pytest

import cdl
from cdl import layers as L
from cdl.gradcheck import check_layer, numerical_gradient
from cdl.kernels import reference as ref
from cdl.layers.binary import hard_sigmoid


def pm1(x):
    return np.where(x >= 0, 1.0, -1.0)


def inside(x):
    return (np.abs(x) <= 1).astype(float)


def latent(shape, rng, low=0.05, high=0.95):
    """Latent weights inside (-1, 1) and away from 0, so sign and clipping are locally fixed."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


# -- Binarize ---------------------------------------------------------------------

def test_binarize_deterministic_forward():
    x = np.array([[-2.0, -1e-9, -0.0, 0.0, 0.3, 5.0]])
    np.testing.assert_array_equal(L.Binarize().forward(x), [[-1, -1, 1, 1, 1, 1]])


def test_binarize_gradient_is_the_ste(rng):
    x = np.array([[-3.0, -1.0, -0.5, 0.0, 0.99, 1.0, 1.01, 7.0]])
    dout = rng.standard_normal(x.shape)
    for mode in ("deterministic", "stochastic"):
        b = L.Binarize(mode, rng=0)
        b.forward(x)
        np.testing.assert_array_equal(b.backward(dout), dout * [[0, 1, 1, 1, 1, 1, 0, 0]])
    b32 = L.Binarize()
    b32.forward(x.astype(np.float32))
    assert b32.backward(dout.astype(np.float32)).dtype == np.float32


def test_stochastic_binarize_frequencies_follow_the_hard_sigmoid():
    values = np.array([-1.5, -0.8, -0.3, 0.0, 0.25, 0.7, 1.2])
    draws = 20000
    x = np.tile(values, (draws, 1))
    y = L.Binarize("stochastic", rng=7).forward(x)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    freq = (y == 1).mean(axis=0)
    p = hard_sigmoid(values)
    # 5 standard errors, and exact at the saturated ends
    np.testing.assert_allclose(freq, p, atol=5 * np.sqrt(0.25 / draws))
    assert freq[0] == 0.0 and freq[-1] == 1.0


def test_stochastic_binarize_is_deterministic_at_inference():
    x = np.random.default_rng(0).standard_normal((50, 20))
    np.testing.assert_array_equal(L.Binarize("stochastic", rng=1).forward(x, train=False), pm1(x))


def test_stochastic_binarize_uses_cdl_seed_by_default():
    x = np.zeros((4, 100))
    cdl.seed(3)
    a = L.Binarize("stochastic").forward(x)
    cdl.seed(3)
    np.testing.assert_array_equal(a, L.Binarize("stochastic").forward(x))


def test_binarize_bad_mode():
    with pytest.raises(ValueError, match="Binarize: mode"):
        L.Binarize("random")


# -- BinaryAffine -------------------------------------------------------------------

@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("binarize_input", [True, False])
def test_binary_affine_forward_is_float_pm1_math(rng, scale, binarize_input):
    layer = L.BinaryAffine(12, 5, scale=scale, binarize_input=binarize_input)
    layer.params["W"][...] = latent((12, 5), rng)
    layer.params["b"][...] = rng.standard_normal(5)
    x = rng.standard_normal((4, 3, 4)).astype(np.float32)
    W = layer.params["W"].astype(np.float64)
    xin = pm1(x.reshape(4, 12)) if binarize_input else x.reshape(4, 12)
    want = xin @ pm1(W)
    if scale:
        want = want * np.abs(W).mean(axis=0)
    want += layer.params["b"]
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_binary_affine_gradients(rng):
    """The STE rule for dx and dW, the exact bias, and numerical checks of the continuous parts."""
    for scale in (False, True):
        layer = L.BinaryAffine(7, 4, scale=scale).astype(np.float64)
        W = layer.params["W"]
        W[...] = latent(W.shape, rng)
        x = rng.uniform(-1.6, 1.6, (5, 7))
        dout = rng.standard_normal((5, 4))
        layer.forward(x)
        dx = layer.backward(dout)
        alpha = np.abs(W).mean(axis=0) if scale else np.ones(4)
        g = dout * alpha
        # the stated rule: d sign(r)/dr = 1{|r| <= 1} for inputs and weights alike
        np.testing.assert_allclose(dx, (g @ pm1(W).T) * inside(x), rtol=1e-12, atol=1e-12)
        ste_W = (pm1(x).T @ g) * inside(W)
        scale_path = np.zeros_like(W)
        if scale:
            dalpha = (dout * (pm1(x) @ pm1(W))).sum(axis=0)
            scale_path = dalpha * np.sign(W) / W.shape[0]
        np.testing.assert_allclose(layer.grads["W"], ste_W + scale_path, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0))

        # continuous part of dW: with sign(W) locally fixed, differences see only alpha
        def loss():
            return float((layer.forward(x) * dout).sum())
        numeric = numerical_gradient(loss, W)
        np.testing.assert_allclose(layer.grads["W"] - ste_W, numeric, atol=1e-7)
        if scale:
            assert np.abs(numeric).max() > 1e-3  # the check has something to see

    # a first layer takes real inputs: dx and the bias are exact, so check_layer applies
    first = L.BinaryAffine(6, 3, scale=True, binarize_input=False).astype(np.float64)
    first.params["W"][...] = latent((6, 3), rng)
    check_layer(first, rng.standard_normal((4, 6)), wrt=["x", "b"])


def test_latent_weights_are_clipped_at_each_forward(rng):
    layer = L.BinaryAffine(3, 2, scale=True)
    W = layer.params["W"]
    W[...] = [[2.0, -0.5], [-3.0, 0.25], [0.5, 1.5]]
    x = rng.standard_normal((2, 3)).astype(np.float32)
    y = layer.forward(x)
    assert W is layer.params["W"]  # in place: the optimizer's array
    np.testing.assert_array_equal(W, [[1.0, -0.5], [-1.0, 0.25], [0.5, 1.0]])
    alpha = np.abs(W).mean(axis=0)  # from the clipped weights
    np.testing.assert_allclose(y, pm1(x) @ pm1(W) * alpha + layer.params["b"], rtol=1e-6)
    # an optimizer step past the bound is undone by the next forward
    opt = cdl.optim.SGD(lr=10.0)
    layer.backward(np.ones_like(y))
    opt.update(layer.params, layer.grads)
    layer.forward(x, train=False)
    assert np.abs(layer.params["W"]).max() <= 1.0


@pytest.mark.parametrize("conv", [False, True])
def test_reused_workspaces_change_no_result(rng, conv):
    """sign(W) goes into the last training forward's array and dW into the array grads["W"]
    already is (in a Sequential, the flat gradient buffer's view): an inference forward
    between forward and backward, and a second step, give what fresh layers give."""
    if conv:
        def make():
            return L.BinaryConv2D(2, 3, 3, pad=1, scale=True, rng=0).astype(np.float64)
        x1, x2 = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 5, 5))
        d1, d2 = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((3, 3, 5, 5))
    else:
        def make():
            return L.BinaryAffine(7, 4, scale=True, rng=0).astype(np.float64)
        x1, x2 = rng.standard_normal((5, 7)), rng.standard_normal((3, 7))
        d1, d2 = rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    layer = make()
    layer.forward(x1)
    layer.forward(x2, train=False)
    dx1 = layer.backward(d1)
    grad1 = layer.grads["W"]
    want = make()
    want.forward(x1)
    np.testing.assert_array_equal(dx1, want.backward(d1))
    np.testing.assert_array_equal(grad1, want.grads["W"])
    kept = grad1.copy()
    layer.forward(x2)
    dx2 = layer.backward(d2)
    assert layer.grads["W"] is grad1  # written in place, as the doc says
    want2 = make()
    want2.forward(x2)
    np.testing.assert_array_equal(dx2, want2.backward(d2))
    np.testing.assert_array_equal(layer.grads["W"], want2.grads["W"])
    assert not np.array_equal(kept, layer.grads["W"])

def test_new_layers_start_inside_the_clip_range():
    layer = L.BinaryAffine(4, 3, init=cdl.init.normal(std=5.0), rng=0)
    assert np.abs(layer.params["W"]).max() <= 1.0


def test_binary_affine_float64_and_bad_input(rng):
    layer = L.BinaryAffine(4, 2).astype(np.float64)
    assert layer.forward(rng.standard_normal((3, 4))).dtype == np.float64
    with pytest.raises(ValueError, match=r"BinaryAffine\(4, 2\).*5 features"):
        layer.forward(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="in_features"):
        L.BinaryAffine(0, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        L.BinaryAffine(4, 2).backward(np.zeros((3, 2)))


# -- BinaryConv2D ---------------------------------------------------------------------

CONV_CASES = [((2, 3, 5, 5), 4, 3, 1, 1), ((1, 2, 6, 5), 3, (2, 3), (2, 1), (1, 0)),
              ((2, 2, 4, 4), 2, 1, 2, 0)]


@pytest.mark.parametrize("x_shape, F, k, s, p", CONV_CASES)
@pytest.mark.parametrize("scale", [False, True])
def test_binary_conv2d_forward_is_float_pm1_math(rng, x_shape, F, k, s, p, scale):
    layer = L.BinaryConv2D(x_shape[1], F, k, stride=s, pad=p, scale=scale)
    W = layer.params["W"]
    W[...] = latent(W.shape, rng)
    layer.params["b"][...] = rng.standard_normal(F)
    x = rng.standard_normal(x_shape).astype(np.float32)
    want = ref.binary_conv2d(x, W, *layer.stride, *layer.pad).astype(np.float64)
    if scale:
        want *= np.abs(W.astype(np.float64)).mean(axis=(1, 2, 3))[None, :, None, None]
    want += layer.params["b"][None, :, None, None]
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-5, atol=1e-5)


def test_binary_conv2d_gradients(rng):
    """STE rule for dx and dW against the reference conv backward of the +-1 tensors."""
    for (x_shape, F, k, s, p), scale in zip(CONV_CASES, (True, False, True)):
        layer = L.BinaryConv2D(x_shape[1], F, k, stride=s, pad=p, scale=scale).astype(np.float64)
        W = layer.params["W"]
        W[...] = latent(W.shape, rng)
        x = rng.uniform(-1.6, 1.6, x_shape)
        y = layer.forward(x)
        dout = rng.standard_normal(y.shape)
        dx = layer.backward(dout)
        alpha = np.abs(W).mean(axis=(1, 2, 3)) if scale else np.ones(F)
        g = dout * alpha[None, :, None, None]
        rdx, rdW, rdb = ref.conv2d_backward(g, pm1(x), pm1(W), *layer.stride, *layer.pad)
        np.testing.assert_allclose(dx, rdx * inside(x), rtol=1e-10, atol=1e-10)
        ste_W = rdW * inside(W)
        scale_path = np.zeros_like(W)
        if scale:
            dots = ref.binary_conv2d(x, W, *layer.stride, *layer.pad)
            dalpha = (dout * dots).sum(axis=(0, 2, 3))
            scale_path = dalpha[:, None, None, None] * np.sign(W) / W[0].size
        np.testing.assert_allclose(layer.grads["W"], ste_W + scale_path, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=(0, 2, 3)), rtol=1e-12)

        def loss():
            return float((layer.forward(x) * dout).sum())
        np.testing.assert_allclose(layer.grads["W"] - ste_W, numerical_gradient(loss, W),
                                   atol=1e-7)

    first = L.BinaryConv2D(2, 3, 3, pad=1, scale=True, binarize_input=False).astype(np.float64)
    first.params["W"][...] = latent(first.params["W"].shape, rng)
    check_layer(first, rng.standard_normal((2, 2, 4, 4)), wrt=["x", "b"])


def test_binary_conv2d_bad_input():
    layer = L.BinaryConv2D(2, 3, 3)
    with pytest.raises(ValueError, match="BinaryConv2D.*1 channels, expected 2"):
        layer.forward(np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        layer.forward(np.zeros((1, 2, 2, 2), np.float32))


@pytest.mark.parametrize("kwargs, match", [
    ({"stride": 2**31}, r"BinaryConv2D: stride = 2147483648 is too large"),
    ({"pad": (0, 2**31)}, r"BinaryConv2D: pad = 2147483648 is too large"),
    ({"stride": 1.0}, r"BinaryConv2D: stride must be a positive int, got 1\.0"),
])
def test_binary_conv2d_geometry_is_a_value_error(kwargs, match):
    """Issue 17: a stride of 2^31 raised OverflowError in the compiled call."""
    with pytest.raises(ValueError, match=match):
        L.BinaryConv2D(1, 1, 3, **kwargs).forward(np.zeros((1, 1, 4, 4), np.float32))


def test_binary_model_saves_and_loads(tmp_path, rng):
    net = cdl.Sequential([L.BinaryConv2D(1, 2, 3, pad=1, scale=True, binarize_input=False),
                          L.BatchNorm(2), L.Binarize("stochastic"), L.Flatten(),
                          L.BinaryAffine(2 * 4 * 4, 3, bias=False)],
                         loss=L.SoftmaxCrossEntropy())
    x = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)
    net.loss(x, np.array([0, 1, 2]))
    net.save(tmp_path / "bnn.npz")
    back = cdl.load(tmp_path / "bnn.npz")
    assert repr(back) == repr(net)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


# -- on the GPU (the CUDA simulator without one) ------------------------------------------

def _same_on(device, make, x, dout, train=True):
    """(y, dx, grads) of a fresh layer on the CPU and of its copy on device, as NumPy."""
    from ..conftest import host, on
    results = []
    for where in ("cpu", device):
        layer = make()
        if where == "cuda":
            layer.to_device()
        xd, dd = on(where, x, dout)
        y = layer.forward(xd, train=train)
        dx = layer.backward(dd)
        results.append((host(y), host(dx), {k: host(v) for k, v in layer.grads.items()},
                        {k: host(v) for k, v in layer.params.items()}))
    return results


def _assert_same(cpu, gpu, tol):
    for a, b in zip(cpu[:2], gpu[:2]):
        np.testing.assert_allclose(b, a, **tol)
    for store in (2, 3):
        assert cpu[store].keys() == gpu[store].keys()
        for k in cpu[store]:
            np.testing.assert_allclose(gpu[store][k], cpu[store][k], **tol, err_msg=k)


@pytest.mark.slow  # the simulator runs each GPU thread in Python
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale, binarize_input", [(False, True), (True, True), (True, False)])
def test_binary_affine_on_device_matches_cpu(device, dtype, scale, binarize_input):
    rng = np.random.default_rng(0)
    W = np.array(latent((6, 3), rng), dtype)
    W[0, 0] = 1.5  # clipped by the forward, on both sides
    b = rng.standard_normal(3).astype(dtype)

    def make():
        layer = L.BinaryAffine(6, 3, scale=scale, binarize_input=binarize_input, dtype=dtype)
        layer.params["W"][...], layer.params["b"][...] = W, b
        return layer
    x = rng.uniform(-1.6, 1.6, (4, 2, 3)).astype(dtype)
    dout = rng.standard_normal((4, 3)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    _assert_same(*_same_on(device, make, x, dout), tol)


@pytest.mark.slow  # the simulator runs each GPU thread in Python
@pytest.mark.parametrize("scale, binarize_input", [(True, True), (False, False)])
def test_binary_conv2d_on_device_matches_cpu(device, scale, binarize_input):
    rng = np.random.default_rng(1)
    W = latent((2, 2, 3, 3), rng).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)

    def make():
        layer = L.BinaryConv2D(2, 2, 3, pad=1, scale=scale, binarize_input=binarize_input)
        layer.params["W"][...], layer.params["b"][...] = W, b
        return layer
    x = rng.uniform(-1.6, 1.6, (2, 2, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    _assert_same(*_same_on(device, make, x, dout), dict(rtol=1e-5, atol=1e-5))


@pytest.mark.slow  # the simulator runs each GPU thread in Python
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_on_device_matches_cpu(device, dtype):
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, (3, 5)).astype(dtype)
    x[0, :3] = [0.0, 1.0, -1.0]
    dout = rng.standard_normal((3, 5)).astype(dtype)
    cpu, gpu = _same_on(device, L.Binarize, x, dout)
    _assert_same(cpu, gpu, dict(rtol=0, atol=0))
    # stochastic: signs differ between the generators, but they are +-1, certain where
    # hard_sigmoid is 0 or 1, and the gradient is the same STE
    s_cpu, s_gpu = _same_on(device, lambda: L.Binarize("stochastic", rng=3), x, dout)
    sure = np.abs(x) >= 1
    assert set(np.unique(s_gpu[0])) <= {-1.0, 1.0}
    np.testing.assert_array_equal(s_gpu[0][sure], s_cpu[0][sure])
    np.testing.assert_array_equal(s_gpu[1], s_cpu[1])


def test_stochastic_binarize_replays_its_draw_while_noise_is_held():
    x = np.zeros((4, 50))
    layer = L.Binarize("stochastic", rng=0)
    first = layer.forward(x)
    with layer.hold_noise():
        np.testing.assert_array_equal(layer.forward(x), first)
        np.testing.assert_array_equal(layer.forward(x), first)
    assert (layer.forward(x) != first).any()  # a fresh draw once released


@pytest.mark.slow  # the simulator runs each GPU thread in Python
def test_binary_training_step_on_device_copies_nothing_to_the_host(device):
    """Forward, backward and grads of the binary layers stay on the GPU (no NumPy on the way)."""
    if device == "cpu":
        pytest.skip("a GPU property")
    from numba import cuda

    from cdl.backend import is_device_array

    from ..conftest import on
    layers = [L.BinaryConv2D(1, 2, 3, pad=1, scale=True, binarize_input=False, rng=0),
              L.Binarize("stochastic", rng=1), L.BinaryConv2D(2, 2, 3, pad=1, rng=2),
              L.Binarize(), L.Flatten(), L.BinaryAffine(2 * 3 * 3, 3, scale=True, rng=3)]
    for layer in layers:
        layer.to_device()
    x, dout = on(device, np.random.default_rng(0).standard_normal((2, 1, 3, 3), np.float32),
                 np.ones((2, 3), np.float32))
    cls = type(cuda.device_array(1, np.float32))
    copies, originals = [], {n: getattr(cls, n) for n in ("copy_to_host", "__array__")
                             if hasattr(cls, n)}

    def watch(name):
        def wrapper(self, *args, **kwargs):
            copies.append((name, self.shape))
            return originals[name](self, *args, **kwargs)
        return wrapper
    for name in originals:
        setattr(cls, name, watch(name))
    try:
        for layer in layers:
            x = layer.forward(x)
            assert is_device_array(x), layer
        for layer in reversed(layers):
            dout = layer.backward(dout)
            assert is_device_array(dout), layer
            assert all(is_device_array(g) for g in layer.grads.values()), layer
    finally:
        for name, fn in originals.items():
            setattr(cls, name, fn)
    # the simulator's arrays also pass NumPy calls to their host buffer without a copy; the
    # checks above catch those by the host arrays they return
    assert copies == [], f"copied to the host: {copies}"
