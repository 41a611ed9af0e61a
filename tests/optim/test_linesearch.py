"""cdl.optim.linesearch: the strong Wolfe line search (Nocedal & Wright, algorithms 3.5-3.6)
and its cubic interpolation."""
import math

import pytest

from cdl.optim.linesearch import Point, _cubic_min, strong_wolfe


def _line(f, df):
    def phi(alpha):
        return Point(alpha, f(alpha), df(alpha), None)
    return phi


def test_line_search_exact_on_a_quadratic():
    # phi(a) = (a - 3)^2: from a1 = 1 it extrapolates, brackets, and interpolates exactly
    phi = _line(lambda a: (a - 3) ** 2, lambda a: 2 * (a - 3))
    p = strong_wolfe(phi, phi(0.0), alpha1=1.0, c2=0.01)
    assert p.alpha == pytest.approx(3.0, rel=1e-12)
    p = strong_wolfe(phi, phi(0.0), alpha1=10.0, c2=0.01)
    assert p.alpha == pytest.approx(3.0, rel=1e-12)


def test_line_search_backs_off_from_overflow_and_satisfies_wolfe():
    def f(a):
        return math.inf if a > 0.5 else -a + a * a

    def df(a):
        return math.nan if a > 0.5 else -1 + 2 * a

    start = Point(0.0, 0.0, -1.0, None)
    p = strong_wolfe(_line(f, df), start, alpha1=4.0, c1=1e-4, c2=0.9)
    assert 0 < p.alpha <= 0.5
    assert p.f <= 1e-4 * p.alpha * -1.0 and abs(p.slope) <= 0.9


def test_line_search_refuses_an_ascent_direction():
    phi = _line(lambda a: a, lambda a: 1.0)
    with pytest.raises(ValueError, match="descent"):
        strong_wolfe(phi, phi(0.0))


def test_cubic_interpolation_is_exact_on_a_cubic():
    # f(a) = a^3 - 6 a^2 + 9 a: local minimum at a = 3
    f = lambda a: a ** 3 - 6 * a ** 2 + 9 * a  # noqa: E731
    df = lambda a: 3 * a ** 2 - 12 * a + 9  # noqa: E731
    a, b = Point(2.0, f(2.0), df(2.0), None), Point(5.0, f(5.0), df(5.0), None)
    assert _cubic_min(a, b) == pytest.approx(3.0, rel=1e-12)
    assert _cubic_min(b, a) == pytest.approx(3.0, rel=1e-12)
    assert _cubic_min(a, a) is None
    # no real minimiser (the discriminant is negative): None, not NaN
    assert _cubic_min(Point(0.0, 0.0, -1.0, None), Point(1.0, -0.5, -1.0, None)) is None


@pytest.mark.parametrize("c1, c2", [(0.5, 0.5), (0.0, 0.9), (1e-4, 1.0), (0.9, 0.1)])
def test_wolfe_constants_are_checked(c1, c2):
    phi = _line(lambda a: (a - 1) ** 2, lambda a: 2 * (a - 1))
    with pytest.raises(ValueError, match="need 0 < c1 < c2 < 1"):
        strong_wolfe(phi, phi(0.0), c1=c1, c2=c2)


@pytest.mark.parametrize("c2", [0.9, 0.1, 0.01])
def test_the_returned_step_satisfies_the_strong_wolfe_conditions(c2):
    f = lambda a: math.exp(a - 2) - 2 * a + 0.1 * math.sin(5 * a)  # noqa: E731
    df = lambda a: math.exp(a - 2) - 2 + 0.5 * math.cos(5 * a)  # noqa: E731
    evals = []
    phi = _line(lambda a: evals.append(a) or f(a), df)
    start = phi(0.0)
    p = strong_wolfe(phi, start, alpha1=0.1, c1=1e-4, c2=c2)
    assert p.f <= start.f + 1e-4 * p.alpha * start.slope
    assert abs(p.slope) <= c2 * abs(start.slope)
    assert len(evals) <= 41


def test_out_of_evaluations_gives_the_best_sufficient_step_or_none():
    # a slope that never flattens: no step satisfies the curvature condition
    phi = _line(lambda a: -a, lambda a: -1.0)
    p = strong_wolfe(phi, phi(0.0), alpha1=1.0, alpha_max=8.0, max_evals=10)
    assert p.alpha == 8.0 and p.f == -8.0  # extrapolated to alpha_max, the best seen
    up = _line(lambda a: 0.0 if a == 0 else 1.0, lambda a: -1.0)  # nothing decreases
    assert strong_wolfe(up, up(0.0), max_evals=5) is None
