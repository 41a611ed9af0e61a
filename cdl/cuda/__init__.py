"""numba.cuda twins of ``cdl.kernels``, name for name (see ``cdl.backend``).

This release ships the detection only; kernels are added module by module,
and ``cdl.backend`` names any kernel that has no CUDA twin yet.
"""


def is_available():
    """True when numba.cuda finds a usable GPU (or the CUDA simulator is on)."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install must read as "no GPU", not crash
        return False


__all__ = ["is_available"]
