"""Data sets shipped with cdl."""
from cdl.data.digits import load_digits

__all__ = ["load_digits"]
