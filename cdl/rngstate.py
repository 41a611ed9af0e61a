"""numpy Generators as JSON and back: the generator states a checkpoint holds.

``rng_state(rng)`` is the JSON form of ``rng.bit_generator.state``;
``generator(state)`` rebuilds a Generator from it, checked against the layout
of its bit generator (a forged state is a ValueError, never a crash or a
silently different stream); ``set_generator(current, new)`` moves new's
state into current so that whoever holds current follows.
"""
import numpy as np

# the bit generators numpy ships; a state names one of them
_BIT_GENERATORS = {name: getattr(np.random, name)
                   for name in ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")}


def rng_state(rng):
    """The JSON form of the Generator rng's ``bit_generator.state`` (arrays as lists)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return v.tolist()
        return v.item() if isinstance(v, np.generic) else v
    return plain(rng.bit_generator.state)


def generator(state):
    """A new Generator in the state ``rng_state`` gave, checked against the layout of its
    bit generator (ValueError for anything else)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    cls = _BIT_GENERATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"generator state of unknown bit generator {name!r:.40}")
    bit = cls()
    value = _like(bit.state, state, "state")
    try:
        bit.state = value
    except Exception as e:  # numpy's own checks: ValueError, TypeError, KeyError, ...
        raise ValueError(f"{name} refuses the state ({type(e).__name__}: {e})") from None
    return np.random.Generator(bit)


def _like(template, value, where):
    """value with template's structure: the same keys, ints in range, arrays' lengths."""
    if isinstance(template, dict):
        if not isinstance(value, dict) or set(value) != set(template):
            raise ValueError(f"generator {where}: expected keys {sorted(template)}")
        return {k: _like(t, value[k], f"{where}.{k}") for k, t in template.items()}
    if isinstance(template, np.ndarray):
        bound = 1 << (8 * template.dtype.itemsize)
        if not isinstance(value, list) or len(value) != template.size or \
                not all(_int_below(v, bound) for v in value):
            raise ValueError(f"generator {where}: expected {template.size} ints in "
                             f"[0, 2^{8 * template.dtype.itemsize})")
        return np.array(value, dtype=template.dtype).reshape(template.shape)
    if isinstance(template, str):
        if value != template:
            raise ValueError(f"generator {where}: expected {template!r}")
        return value
    if not _int_below(value, 1 << 128):
        raise ValueError(f"generator {where}: expected an int in [0, 2^128), got "
                         f"{value!r:.40}")
    return value


def _int_below(v, bound):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < bound


def set_generator(current, new):
    """The generator to use from now on: current, given new's state in place (so that
    holders of current follow), when their bit generators are of one type; else new."""
    if current is None or type(current.bit_generator) is not type(new.bit_generator):
        return new
    current.bit_generator.state = new.bit_generator.state
    return current


__all__ = ["rng_state", "generator", "set_generator"]
