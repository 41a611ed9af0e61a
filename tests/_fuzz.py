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
def conv_cases(draw, max_k=4, max_hw=8, max_c=9, max_f=11):
    """(x shape, w shape, stride, pad) of a small convolution whose kernel fits the padded
    input: kernels 1 to max_k, strides 1 to 3 (larger than the kernel too), padding 0 to
    2, batch 1 to 3, up to max_hw pixels a side, max_c input and max_f output channels."""
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), max_hw))
    W = draw(st.integers(max(1, kw - 2 * pw), max_hw))
    N = draw(st.integers(1, 3))
    C, F = draw(st.integers(1, max_c)), draw(st.integers(1, max_f))
    return (N, C, H, W), (F, C, kh, kw), (sh, sw), (ph, pw)
