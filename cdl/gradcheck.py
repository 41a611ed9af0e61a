"""Numerical gradient checks for layers (central differences, float64).

    check_layer(layer, x)   # raises AssertionError with the worst entry on failure

The scalar checked is L = sum(forward(x) * dout) for a fixed random dout, so
dL/dx = backward(dout) and dL/dparam = layer.grads[param]. Stochastic layers
are checked as the deterministic function their held noise defines. Every entry of x
and of each parameter is perturbed by +-h, or, for large arrays, the
gradient is checked along ``directions`` random unit directions v
(dL/dx . v against (L(x + h v) - L(x - h v)) / 2h).
"""
import numpy as np


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient, step h, of the scalar function f() of the array x
    (float64; each entry of x is moved in place and restored). x must be a float array:
    an integer one cannot hold x +- h (it would give zeros), a ValueError."""
    x_dtype = getattr(x, "dtype", None)
    if not isinstance(x, np.ndarray) or x_dtype.kind != "f":
        raise ValueError(f"numerical_gradient: x must be a float NumPy array (moved by +-h in "
                         f"place), got {type(x).__name__}"
                         + (f" of {x_dtype}" if x_dtype is not None else ""))
    grad = np.zeros_like(x)
    flat, g = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        g[i] = (fp - fm) / (2 * h)
    return grad


def _directional(f, x, analytic, rng, directions, h):
    """Pairs (analytic . v, numeric) along random unit directions v."""
    got, want = [], []
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        old = x.copy()
        x += h * v
        fp = f()
        x[...] = old - h * v
        fm = f()
        x[...] = old
        got.append(float((analytic * v).sum()))
        want.append((fp - fm) / (2 * h))
    return np.array(got), np.array(want)


def _compare(name, got, want, atol, rtol):
    err = np.abs(got - want)
    bad = err > atol + rtol * np.abs(want)
    if bad.any():
        i = int(np.argmax(err - (atol + rtol * np.abs(want))))
        raise AssertionError(
            f"gradient check failed for {name}: {int(bad.sum())} of {bad.size} entries off; "
            f"worst at flat index {i}: analytic {got.reshape(-1)[i]:.8g}, "
            f"numeric {want.reshape(-1)[i]:.8g}")


def check_layer(layer, x, atol=1e-5, rtol=1e-4, h=1e-6, seed=0, directions=None,
                train=True, wrt=None):
    """Check dx and every parameter gradient of layer at x (both cast to float64).

    directions: None checks every entry; an int checks that many random
    directions per array instead (for large inputs). wrt: names to check
    ("x" and parameter names; default all). Returns the layer's float64 copy
    of the analytic gradients, {"x": dx, name: grad}. Stochastic layers
    (Dropout, ...) keep one noise draw for the whole check (``hold_noise``).
    The loss is sum(y * dout) for a random dout (of ``seed``), differentiated
    by central differences of step h; gradients must agree within atol + rtol
    * |numeric| (AssertionError otherwise). train is the mode of forward.
    """
    with layer.hold_noise():
        return _check_layer(layer, x, atol, rtol, h, seed, directions, train, wrt)


def _check_layer(layer, x, atol, rtol, h, seed, directions, train, wrt):
    rng = np.random.default_rng(seed)
    layer.astype(np.float64)
    x = np.array(x, dtype=np.float64)
    y = layer.forward(x, train=train)
    dout = rng.standard_normal(np.shape(y))

    def loss():
        return float((layer.forward(x, train=train) * dout).sum())

    layer.forward(x, train=train)
    analytic = {"x": layer.backward(dout.copy())}
    analytic.update({k: g.copy() for k, g in layer.grads.items()})
    targets = {"x": x, **layer.params}
    for name, arr in targets.items():
        if wrt is not None and name not in wrt:
            continue
        if directions is None:
            num = numerical_gradient(loss, arr, h)
            _compare(f"{layer.name}.{name}", analytic[name], num, atol, rtol)
        else:
            got, want = _directional(loss, arr, analytic[name], rng, directions, h)
            _compare(f"{layer.name}.{name} (random directions)", got, want, atol, rtol)
    return analytic
