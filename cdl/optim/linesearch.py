"""Line search along a descent direction: the strong Wolfe conditions.

Nocedal & Wright, Numerical Optimization (2nd ed.), Algorithm 3.5 (bracketing)
and 3.6 (zoom), with the safeguarded cubic interpolation of eq. (3.59). A
step alpha is accepted when

    f(x + alpha d) <= f(x) + c1 alpha g.d          (sufficient decrease)
    |g(x + alpha d).d| <= c2 |g.d|                 (curvature)

Small c2 (0.01..0.1) asks for a nearly exact minimiser along d (conjugate
gradients, coordinate descent); c2 = 0.9 accepts the first reasonable step
(quasi-Newton methods). Along a quadratic the cubic interpolation is exact.
"""
import math


class Point:
    """A trial step: alpha, f(x + alpha d), its slope g.d, and grad, the gradient g there."""

    __slots__ = ("alpha", "f", "slope", "grad")

    def __init__(self, alpha, f, slope, grad):
        self.alpha, self.f, self.slope, self.grad = alpha, f, slope, grad


def _cubic_min(a, b):
    """Minimiser of the cubic through (alpha, f, slope) of a and b, or None (N&W eq. 3.59)."""
    if a.alpha == b.alpha:
        return None
    d1 = a.slope + b.slope - 3.0 * (a.f - b.f) / (a.alpha - b.alpha)
    disc = d1 * d1 - a.slope * b.slope
    if not disc >= 0.0:
        return None
    d2 = math.copysign(math.sqrt(disc), b.alpha - a.alpha)
    denom = b.slope - a.slope + 2.0 * d2
    if denom == 0.0:
        return None
    alpha = b.alpha - (b.alpha - a.alpha) * (b.slope + d2 - d1) / denom
    return alpha if math.isfinite(alpha) else None


def strong_wolfe(phi, start, alpha1=1.0, c1=1e-4, c2=0.9, alpha_max=1e10, max_evals=40):
    """A Point satisfying the strong Wolfe conditions, or the best sufficient-decrease Point
    seen, or None.

    phi(alpha) -> Point evaluates the function along the direction; start is the
    Point at alpha = 0 (its slope must be negative). alpha1 is the first trial
    step; c1 (sufficient decrease) and c2 (curvature) are the Wolfe constants,
    0 < c1 < c2 < 1; steps are at most alpha_max, and the search gives up after
    max_evals evaluations of phi (N&W Algorithms 3.5 and 3.6). Non-finite
    values count as +inf, so a step into overflow is simply too long.
    """
    if not start.slope < 0:
        raise ValueError(f"line search: direction is not a descent direction "
                         f"(slope {start.slope:g})")
    if not 0 < c1 < c2 < 1:
        raise ValueError(f"line search: need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
    evals = [0]
    best = [None]

    def trial(alpha):
        evals[0] += 1
        p = phi(alpha)
        if not (math.isfinite(p.f) and math.isfinite(p.slope)):
            p.f, p.slope = math.inf, math.inf
        if sufficient(p) and (best[0] is None or p.f < best[0].f):
            best[0] = p
        return p

    def sufficient(p):
        return p.f <= start.f + c1 * p.alpha * start.slope

    def curvature(p):
        return abs(p.slope) <= -c2 * start.slope

    def zoom(lo, hi):
        # lo: sufficient decrease, lowest f so far; the minimiser lies between lo and hi.
        while evals[0] < max_evals:
            width = hi.alpha - lo.alpha
            if abs(width) <= 1e-16 * max(1.0, abs(lo.alpha)):
                break
            alpha = _cubic_min(lo, hi) if math.isfinite(hi.f) else None
            left, right = sorted((lo.alpha, hi.alpha))
            margin = 0.1 * (right - left)
            if alpha is None or not left + margin <= alpha <= right - margin:
                alpha = lo.alpha + 0.5 * width
            p = trial(alpha)
            if not sufficient(p) or p.f >= lo.f:
                hi = p
            else:
                if curvature(p):
                    return p
                if p.slope * (hi.alpha - lo.alpha) >= 0:
                    hi = lo
                lo = p
        return best[0]

    prev, alpha = start, float(alpha1)
    while evals[0] < max_evals:
        p = trial(alpha)
        if not sufficient(p) or (prev is not start and p.f >= prev.f):
            return zoom(prev, p)
        if curvature(p):
            return p
        if p.slope >= 0:
            return zoom(p, prev)
        if alpha >= alpha_max:
            break
        prev, alpha = p, min(2.0 * alpha, alpha_max)
    return best[0]
