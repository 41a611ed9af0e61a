"""Weight initializers and the package's default random generator.

Fans follow the book's shapes: an Affine weight (in, out) has fan-in m = in
and fan-out n = out; a Conv2D weight (F, C, KH, KW) has m = C*KH*KW and
n = F*KH*KW.

    name              distribution
    constant(value)   every weight equal (shows the symmetry problem)
    zeros, ones       constant 0 / 1
    normal(std)       N(0, std^2), std 0.01 by default
    uniform           U(-sqrt(1/m), sqrt(1/m))
    xavier_normal     N(0, 2/(m+n))            Glorot & Bengio 2010
    xavier_book       N(0, 1/m)                the book's "Xavier" (std 1/sqrt(m))
    xavier_uniform    U(-sqrt(6/(m+n)), +)     Glorot & Bengio 2010
    he_normal         N(0, 2/m)                He et al. 2015
    he_uniform        U(-sqrt(6/m), +)         He et al. 2015
    orthogonal(gain)  gain * a (semi-)orthogonal matrix, Saxe et al. 2014
    sparse(k, std)    k non-zeros N(0, std^2) per output unit, Martens 2010

Use by name (``init="he_normal"``) or pass a callable ``f(shape, rng, dtype)``,
e.g. ``init=cdl.init.normal(std=1.0)``. Everything draws from a
``numpy.random.Generator``: the layer's ``rng`` or, by default, the package
generator that ``cdl.seed(s)`` resets.
"""
import abc
import contextlib
import contextvars
import math

import numpy as np

_rng = np.random.default_rng()
# The generator that rng=None means inside ``rng_scope`` (per thread and per asyncio task):
# a Trainer draws its Dropout masks from its own seed, whatever other threads do meanwhile.
_scoped = contextvars.ContextVar("cdl_rng", default=None)


def seed(s):
    """Reset the package's default generator (layer init, dropout masks, shuffles)."""
    global _rng
    try:
        _rng = np.random.default_rng(s)
    except (TypeError, ValueError) as e:  # NumPy's message does not say who asked
        raise ValueError(f"cdl.seed: s must be a non-negative int (or None), got {s!r} "
                         f"({e})") from None


@contextlib.contextmanager
def rng_scope(rng):
    """Within the block, in this thread, rng=None means ``rng`` (None: no change)."""
    if rng is None:
        yield
        return
    token = _scoped.set(get_rng(rng))
    try:
        yield
    finally:
        _scoped.reset(token)


def get_rng(rng=None):
    """rng itself, a new Generator from an int seed, the generator of the enclosing
    ``rng_scope``, or the package default."""
    if rng is None:
        scoped = _scoped.get()
        return _rng if scoped is None else scoped
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def fans(shape):
    """(fan_in, fan_out) of a weight of the given shape: (in, out) for 2-D, (F, C, KH, KW)
    for 4-D."""
    shape = tuple(shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) >= 3:
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    raise ValueError(f"init: cannot compute fans of a weight of shape {shape}")


def _finite(who, name, v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"init.{who}: {name} must be a number, got {v!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"init.{who}: {name} must be finite, got {v}")
    return v


def _positive(who, name, v):
    v = _finite(who, name, v)
    if not v > 0:
        raise ValueError(f"init.{who}: {name} must be > 0, got {v}")
    return v


class Initializer(abc.ABC):
    """Base: ``init(shape, rng=None, dtype=np.float32)`` returns a new array."""

    def __call__(self, shape, rng=None, dtype=np.float32):
        out = self.sample(tuple(shape), get_rng(rng))
        return np.ascontiguousarray(out, dtype=dtype)

    @abc.abstractmethod
    def sample(self, shape, rng):
        """Draw float64 values of the given shape."""

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class constant(Initializer):
    """Every weight equal to value.

    With equal weights every unit of a layer computes the same output and
    receives the same gradient, so they stay equal however long they train:
    the symmetry problem that random initialisation breaks.
    """

    def __init__(self, value=0.0):
        self.value = _finite("constant", "value", value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)


class normal(Initializer):
    """N(0, std^2)."""

    def __init__(self, std=0.01):
        self.std = _positive("normal", "std", std)

    def sample(self, shape, rng):
        return rng.normal(0.0, self.std, shape)


class _scaled_normal(Initializer):
    """N(0, std_for(m, n)^2)."""

    def sample(self, shape, rng):
        return rng.normal(0.0, self.std_for(*fans(shape)), shape)


class _scaled_uniform(Initializer):
    """U(-limit_for(m, n), limit_for(m, n))."""

    def sample(self, shape, rng):
        limit = self.limit_for(*fans(shape))
        return rng.uniform(-limit, limit, shape)


class uniform(_scaled_uniform):
    """U(-sqrt(1/m), sqrt(1/m))."""

    def limit_for(self, m, n):
        """The bound sqrt(1/m) for fan-in m (fan-out n unused)."""
        return math.sqrt(1.0 / m)


class xavier_normal(_scaled_normal):
    """N(0, 2/(m+n))."""

    def std_for(self, m, n):
        """The std sqrt(2/(m+n)) for fan-in m and fan-out n."""
        return math.sqrt(2.0 / (m + n))


class xavier_book(_scaled_normal):
    """N(0, 1/m): the book's Xavier variant, std 1/sqrt(fan-in)."""

    def std_for(self, m, n):
        """The std sqrt(1/m) for fan-in m (fan-out n unused)."""
        return math.sqrt(1.0 / m)


class xavier_uniform(_scaled_uniform):
    """U(-sqrt(6/(m+n)), sqrt(6/(m+n)))."""

    def limit_for(self, m, n):
        """The bound sqrt(6/(m+n)) for fan-in m and fan-out n."""
        return math.sqrt(6.0 / (m + n))


class he_normal(_scaled_normal):
    """N(0, 2/m)."""

    def std_for(self, m, n):
        """The std sqrt(2/m) for fan-in m (fan-out n unused)."""
        return math.sqrt(2.0 / m)


class he_uniform(_scaled_uniform):
    """U(-sqrt(6/m), sqrt(6/m))."""

    def limit_for(self, m, n):
        """The bound sqrt(6/m) for fan-in m (fan-out n unused)."""
        return math.sqrt(6.0 / m)


class orthogonal(Initializer):
    """gain * Q, Q with orthonormal rows or columns (whichever is fewer)."""

    def __init__(self, gain=1.0):
        self.gain = _positive("orthogonal", "gain", gain)

    def sample(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"init.orthogonal: needs a 2-D or 4-D weight, got shape {shape}")
        # Book Affine (in, out): units are columns. Conv (F, ...): units are rows.
        rows, cols = (shape[0], math.prod(shape[1:])) if len(shape) > 2 else shape
        a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # make the decomposition unique (Mezzadri 2007)
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


class sparse(Initializer):
    """k non-zero N(0, std^2) incoming weights per output unit, the rest 0."""

    def __init__(self, k=15, std=1.0):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"init.sparse: k must be an int >= 1, got {k!r}")
        self.k, self.std = int(k), _positive("sparse", "std", std)

    def sample(self, shape, rng):
        m = fans(shape)[0]
        if self.k > m:
            raise ValueError(f"init.sparse: k={self.k} exceeds the fan-in {m} of shape {shape}")
        units = shape[1] if len(shape) == 2 else shape[0]  # Affine (in, out); Conv (F, ...)
        w = np.zeros((m, units))
        for unit in range(units):
            rows = rng.choice(m, self.k, replace=False)
            w[rows, unit] = rng.normal(0.0, self.std, self.k)
        return w if len(shape) == 2 else w.T.reshape(shape)


_BY_NAME = {
    "zeros": lambda: constant(0.0),
    "ones": lambda: constant(1.0),
    "constant": constant,
    "normal": normal,
    "uniform": uniform,
    "xavier": xavier_normal,
    "xavier_normal": xavier_normal,
    "xavier_book": xavier_book,
    "xavier_uniform": xavier_uniform,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "orthogonal": orthogonal,
    "sparse": sparse,
}


def get(init):
    """An initializer from init: a name, an Initializer (class or instance) or any
    callable f(shape, rng, dtype)."""
    if isinstance(init, type) and issubclass(init, Initializer):
        return init()
    if isinstance(init, str):
        try:
            return _BY_NAME[init]()
        except KeyError:
            raise ValueError(f"unknown initializer {init!r}; choose from {sorted(_BY_NAME)}") from None
    if callable(init):
        return init
    raise ValueError(f"init must be a name or a callable, got {init!r}")


def names():
    """The initializer names accepted by ``get`` and by ``init=``."""
    return sorted(_BY_NAME)
