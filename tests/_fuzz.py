"""Hypothesis strategies shared by several test files: damaged copies of a file's bytes
(the fuzz tests of model files and checkpoints) and convolution geometries."""
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


@st.composite
def conv_cases(draw):
    """(x shape, w shape, stride, pad) of a small convolution whose kernel fits the padded
    input: kernels 1 to 4, strides 1 to 3 (larger than the kernel too), padding 0 to 2."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), 8))
    W = draw(st.integers(max(1, kw - 2 * pw), 8))
    N, C, F = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 11))
    return (N, C, H, W), (F, C, kh, kw), (sh, sw), (ph, pw)
