"""Damaged copies of a file's bytes for the fuzz tests of model files and checkpoints."""
from hypothesis import strategies as st


def damaged(data, raw):
    """raw (bytes) truncated, or with 1 to 8 bytes overwritten, as ``data`` (st.data()) draws."""
    out = bytearray(raw)
    if data.draw(st.booleans(), label="truncate"):
        return bytes(out[:data.draw(st.integers(0, len(raw) - 1), label="length")])
    for _ in range(data.draw(st.integers(1, 8), label="bytes")):
        i = data.draw(st.integers(0, len(raw) - 1), label="at")
        out[i] = data.draw(st.integers(0, 255), label="to")
    return bytes(out)
