"""Search spaces: dicts of name -> list of choices, ``Uniform(lo, hi)`` or ``LogUniform``.

    space = {"lr": LogUniform(1e-4, 1e-1), "weight_decay": LogUniform(1e-8, 1e-4),
             "hidden": [50, 100, 200]}

Grid search takes lists only (``LogUniform(1e-4, 1e-1).grid(4)`` makes one
from a range); random search draws each name independently, a choice
uniformly, ``LogUniform`` uniformly in log space, as the book does in
chapter 6 (lr = 10 ** uniform(-6, -2)).
"""
import itertools
import math
import numbers

import numpy as np


class Uniform:
    """A float drawn uniformly in [lo, hi]."""

    log = False

    def __init__(self, lo, hi):
        self.lo, self.hi = _bounds(type(self).__name__, lo, hi)

    def draw(self, rng):
        """One value, a Python float, from the Generator ``rng``."""
        return float(rng.uniform(self.lo, self.hi))

    def grid(self, k):
        """k evenly spaced values from lo to hi (both included), for grid search."""
        if _count(k) == 1:
            return [(self.lo + self.hi) / 2]
        return [float(v) for v in np.linspace(self.lo, self.hi, k)]

    def __contains__(self, v):
        return self.lo <= v <= self.hi

    def __eq__(self, other):
        return type(other) is type(self) and (other.lo, other.hi) == (self.lo, self.hi)

    def __hash__(self):
        return hash((type(self).__name__, self.lo, self.hi))

    def __repr__(self):
        return f"{type(self).__name__}({self.lo!r}, {self.hi!r})"


class LogUniform(Uniform):
    """A float whose logarithm is uniform in [log lo, log hi] (0 < lo < hi): every decade
    between lo and hi is as likely, the usual law for learning rates and weight decay."""

    log = True

    def __init__(self, lo, hi):
        super().__init__(lo, hi)
        if self.lo <= 0:
            raise ValueError(f"LogUniform: lo must be > 0, got {lo!r}")

    def draw(self, rng):
        v = math.exp(rng.uniform(math.log(self.lo), math.log(self.hi)))
        return min(max(v, self.lo), self.hi)  # exp(log(hi)) may round a hair above hi

    def grid(self, k):
        """k values evenly spaced in log space from lo to hi (both included)."""
        if _count(k) == 1:
            return [math.sqrt(self.lo * self.hi)]
        return [min(max(float(v), self.lo), self.hi) for v in np.geomspace(self.lo, self.hi, k)]


def _bounds(who, lo, hi):
    for name, v in (("lo", lo), ("hi", hi)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{who}: {name} must be a finite number, got {v!r}")
    if not lo < hi:
        raise ValueError(f"{who}: needs lo < hi, got {lo!r}, {hi!r}")
    return float(lo), float(hi)


def _count(k):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"grid: k must be a positive int, got {k!r}")
    return int(k)


def check_space(space):
    """space as a dict of name -> list of choices or Uniform/LogUniform, or ValueError."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"cdl.tune: space must be a non-empty dict of name -> choices, "
                         f"got {space!r}")
    checked = {}
    for name, dim in space.items():
        if not isinstance(name, str):
            raise ValueError(f"cdl.tune: space names must be strings, got {name!r}")
        if isinstance(dim, Uniform):
            checked[name] = dim
        elif isinstance(dim, (list, tuple)) and len(dim) > 0:
            checked[name] = list(dim)
        else:
            raise ValueError(f"cdl.tune: space[{name!r}] must be a non-empty list of choices, "
                             f"Uniform(lo, hi) or LogUniform(lo, hi); got {dim!r}")
    return checked


def grid_points(space):
    """Every combination of the choices of space ({name: list}), as dicts, the last name
    varying fastest (itertools.product)."""
    ranges = [name for name, dim in space.items() if isinstance(dim, Uniform)]
    if ranges:
        name = ranges[0]
        raise ValueError(f"cdl.tune: grid search needs lists of choices; space[{name!r}] is "
                         f"{space[name]!r} (use {space[name]!r}.grid(k) for k points of it)")
    names = list(space)
    return [dict(zip(names, values)) for values in itertools.product(*space.values())]


def random_points(space, n, seed):
    """n parameter dicts drawn independently from the space, reproducible by seed."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for name, dim in space.items():
            # a choice is returned as given (an int stays an int, a tuple a tuple)
            point[name] = dim.draw(rng) if isinstance(dim, Uniform) else dim[rng.integers(len(dim))]
        points.append(point)
    return points
