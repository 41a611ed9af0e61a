"""Shared by the cdl.viz tests: the entry points and the PNG checks."""
import struct

from cdl import viz

ENTRY_POINTS = ["learning_curves", "curves", "confusion_matrix", "misclassified", "filters",
                "activation_histograms", "optimizer_paths", "trials"]


def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def check_png(fig, path):
    """fig is a Figure and path its PNG, of the figure's size at viz.DPI."""
    from matplotlib.figure import Figure
    assert isinstance(fig, Figure)
    assert path.stat().st_size > 1000
    w, h = fig.get_size_inches() * viz.DPI
    assert png_size(path) == (round(w), round(h))
