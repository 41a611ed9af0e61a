"""Fuzz harness: the IDX and CIFAR-10 readers, cdl.load, and the im2col/col2im entry points.

Each ``one_*`` body takes arbitrary bytes and either gets a ValueError (or a
FileNotFoundError where a file vanished) or a result it checks against a plain
reference; anything else (another exception, a wrong result, a crash, a hang)
is a finding. The same bodies run three ways:

    python tests/fuzz/fuzz_readers.py -atheris_runs=20000        # atheris (libFuzzer), or
    python tests/fuzz/fuzz_readers.py -max_total_time=60 idx     # one target, for a minute
    pytest tests/fuzz                                           # bounded, hypothesis-driven

Bytes are turned into sizes by ``Draw`` (the same decoding under atheris and
hypothesis). Geometries that cdl must accept are kept small (at most
``MAX_ELEMENTS`` output values); absurd ones are drawn too, but only where the
call has to refuse them before allocating (kernel larger than the padded
image, sizes past 2^31, inconsistent buffers).
"""
import gzip
import io
import os
import struct
import sys
import tempfile

import numpy as np

MAX_ELEMENTS = 1 << 16
_DIR = tempfile.mkdtemp(prefix="cdl-fuzz-")


class Draw:
    """Numbers from a byte string, front to back; zeros once it runs out."""

    def __init__(self, data):
        self.data, self.i = bytes(data), 0

    def byte(self):
        b = self.data[self.i] if self.i < len(self.data) else 0
        self.i += 1
        return b

    def int(self, lo, hi):
        """An int in [lo, hi] from as many bytes as the span needs."""
        span = hi - lo + 1
        v, m = 0, 1
        while m < span:
            v, m = v * 256 + self.byte(), m * 256
        return lo + v % span

    def size(self, lo, hi, absurd=(2**31 - 1, 2**31, 2**32 + 1, -1, 0, 7, 40)):
        """Mostly an int in [lo, hi]; one draw in 8 an absurd value."""
        if self.int(0, 7) == 0:
            return absurd[self.int(0, len(absurd) - 1)]
        return self.int(lo, hi)

    def rest(self):
        out, self.i = self.data[self.i:], len(self.data)
        return out


def _write(name, blob):
    path = os.path.join(_DIR, name)
    with open(path, "wb") as f:
        f.write(blob)
    return path


# -- IDX -------------------------------------------------------------------------------
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_blob(d):
    """A well-formed IDX file of a drawn type and shape, then damaged by the rest of the bytes."""
    code = list(_IDX_TYPES)[d.int(0, len(_IDX_TYPES) - 1)]
    shape = tuple(d.int(0, 5) for _ in range(d.int(1, 4)))
    data = np.frombuffer(bytes(d.int(0, 255) for _ in range(
        int(np.prod(shape)) * np.dtype(_IDX_TYPES[code]).itemsize)), np.uint8)
    blob = bytearray(b"\0\0" + bytes([code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
                     + data.tobytes())
    for _ in range(d.int(0, 3)):  # damage: overwrite, cut, or append
        how = d.int(0, 2)
        at = d.int(0, max(len(blob) - 1, 0))
        if how == 0 and blob:
            blob[at] = d.byte()
        elif how == 1:
            del blob[at:]
        else:
            blob += bytes([d.byte()])
    return bytes(blob), code, shape


def one_idx(data):
    """read_idx on a damaged IDX file (or raw bytes), plain or gzipped."""
    from cdl.data import read_idx
    d = Draw(data)
    raw = d.int(0, 3) == 0
    gz = d.int(0, 1) == 1
    blob, code, shape = (d.rest(), None, None) if raw else _idx_blob(d)
    if gz and d.int(0, 3):
        blob = gzip.compress(blob, mtime=0)
    path = _write("f.gz" if gz else "f", blob)
    try:
        a = read_idx(path)
    except ValueError:
        return
    # accepted: the header's shape and type, and the data bytes exactly as stored
    with (gzip.open if gz else open)(path, "rb") as f:
        stored = f.read()
    ndim = stored[3]
    want = np.frombuffer(stored[4 + 4 * ndim:], np.dtype(_IDX_TYPES[stored[2]]))
    assert a.shape == struct.unpack(f">{ndim}I", stored[4:4 + 4 * ndim]), a.shape
    assert a.dtype.isnative and a.dtype == want.dtype.newbyteorder("=")
    np.testing.assert_array_equal(a.ravel(), want)


# -- CIFAR-10 --------------------------------------------------------------------------
_RECORD = 3073


def one_cifar(data):
    """read_cifar_batch on a file of whole, cut or padded records with drawn labels."""
    from cdl.data import read_cifar_batch
    d = Draw(data)
    n = d.int(0, 3)
    labels = bytes(d.int(0, 12) for _ in range(n))
    rows = bytearray()
    for k in range(n):
        fill = d.byte()
        rows += bytes([labels[k]]) + bytes([fill]) * (_RECORD - 1)
    cut = d.int(-2, 2) if d.int(0, 3) == 0 else 0
    blob = bytes(rows[:len(rows) + cut] if cut < 0 else rows + bytes(cut))
    path = _write("data_batch_1.bin", blob)
    try:
        images, t = read_cifar_batch(path)
    except ValueError:
        assert n == 0 or cut or max(labels) > 9
        return
    assert cut == 0 and n > 0 and max(labels) <= 9
    assert images.shape == (n, 3, 32, 32) and t.tolist() == list(labels)
    for k in range(n):
        assert (images[k] == blob[k * _RECORD + 1]).all()


# -- cdl.load --------------------------------------------------------------------------
_MODEL = None


def _model_file():
    global _MODEL
    if _MODEL is None:
        from cdl import Sequential
        from cdl import layers as L
        net = Sequential([L.Conv2D(1, 2, 3, rng=0), L.BatchNorm(2), L.ReLU(), L.Flatten(),
                          L.Affine(8, 3, rng=1)], loss=L.SoftmaxCrossEntropy())
        buf = io.BytesIO()
        path = _write("model.npz", b"")
        net.save(path)
        with open(path, "rb") as f:
            buf.write(f.read())
        _MODEL = (buf.getvalue(), net.state())
    return _MODEL


def one_model_file(data):
    """cdl.load on a saved model with drawn bytes overwritten (or cut): refused or identical."""
    raw, state = _model_file()
    d = Draw(data)
    blob = bytearray(raw)
    if d.int(0, 3) == 0:
        del blob[d.int(0, len(blob) - 1):]
    for _ in range(d.int(1, 8)):
        if blob:
            blob[d.int(0, len(blob) - 1)] = d.byte()
    refused_or_identical(_write("fuzzed.npz", bytes(blob)), state)


def refused_or_identical(path, state):
    """cdl.load(path) raises ValueError, or gives a model whose state() is exactly state."""
    import cdl
    try:
        net = cdl.load(path)
    except ValueError:
        return
    back = net.state()
    assert set(back) == set(state)
    for k, v in back.items():
        np.testing.assert_array_equal(v, state[k])


# -- im2col / col2im -------------------------------------------------------------------
def _taps(i, sh, ph, oh_n, H):
    """Input rows oh*SH - PH + i of the outputs oh < oh_n (clipped) and which are inside."""
    y = np.arange(oh_n, dtype=np.int64) * sh - ph + i
    inside = (y >= 0) & (y < H)
    return np.where(inside, y, 0), inside


def ref_im2col_t(x, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """col_t[(c*KH + i)*KW + j, (m*OH + oh)*OW + ow] = x[n0 + m, c, oh*SH - PH + i,
    ow*SW - PW + j], 0 outside: the documented mapping, for any oh_n, ow_n (no padded
    copy, so strides near 2^31 cost nothing)."""
    C, H, W = x.shape[1:]
    col = np.empty((C, kh, kw, n1 - n0, oh_n, ow_n), x.dtype)
    xs = x[n0:n1].transpose(1, 0, 2, 3)  # (C, nb, H, W)
    for i in range(kh):
        y, yin = _taps(i, sh, ph, oh_n, H)
        for j in range(kw):
            xx, xin = _taps(j, sw, pw, ow_n, W)
            col[:, i, j] = xs[:, :, y[:, None], xx[None, :]] * (yin[:, None] & xin[None, :])
    return col.reshape(C * kh * kw, -1)


def ref_col2im_t(col, x_shape, n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n):
    """The adjoint of ref_im2col_t: dx[n0:n1], in float64."""
    N, C, H, W = x_shape
    c6 = col.reshape(C, kh, kw, n1 - n0, oh_n, ow_n).astype(np.float64)
    dx = np.zeros((C, n1 - n0, H, W))
    for i in range(kh):
        y, yin = _taps(i, sh, ph, oh_n, H)
        for j in range(kw):
            xx, xin = _taps(j, sw, pw, ow_n, W)
            keep = yin[:, None] & xin[None, :]
            yy, xxx = np.broadcast_to(y[:, None], keep.shape), np.broadcast_to(xx[None, :],
                                                                             keep.shape)
            np.add.at(dx, (slice(None), slice(None), yy[keep], xxx[keep]), c6[:, i, j][..., keep])
    return dx.transpose(1, 0, 2, 3)


def _guarded(shape, dtype, fill=0.0, guard=16):
    """(buffer, a): a C-contiguous array of shape inside buffer, with ``guard`` sentinels on
    each side, so that a write outside a shows up without AddressSanitizer."""
    n = int(np.prod(shape))
    buf = np.full(n + 2 * guard, fill, dtype)
    buf[:guard] = buf[guard + n:] = -12345.0
    return buf, buf[guard:guard + n].reshape(shape)


def _guards_intact(buf, guard=16):
    return (buf[:guard] == -12345.0).all() and (buf[len(buf) - guard:] == -12345.0).all()


def _layout(d, a):
    """a as drawn: C order, Fortran order, a strided view, or read-only."""
    how = d.int(0, 4)
    if how == 1:
        return np.asfortranarray(a)
    if how == 2:
        wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
        wide[..., 1::2] = a
        return wide[..., 1::2]
    if how == 3:
        a = a.copy()
        a.flags.writeable = False
    return a


def one_im2col(data):
    """cdl.ops.im2col and col2im on drawn shapes, strides, pads, dtypes and layouts."""
    from cdl import ops
    d = Draw(data)
    shape = tuple(d.int(0, 4) for _ in range(4))  # 0: an empty batch or plane
    kh, kw = d.size(1, 5), d.size(1, 5)
    sh, sw = d.size(1, 4), d.size(1, 4)
    ph, pw = d.size(0, 3), d.size(0, 3)
    dtype = (np.float32, np.float64)[d.int(0, 1)]
    ok = (min(shape) >= 1 and min(kh, kw, sh, sw) >= 1 and min(ph, pw) >= 0
          and max(kh, kw, sh, sw, ph, pw) < 2**31
          and kh <= shape[2] + 2 * ph and kw <= shape[3] + 2 * pw)
    if ok:
        oh, ow = ((shape[2] + 2 * ph - kh) // sh + 1, (shape[3] + 2 * pw - kw) // sw + 1)
        if shape[0] * oh * ow * shape[1] * kh * kw > MAX_ELEMENTS:
            return  # valid but big: out of this harness's memory budget
    x = np.random.default_rng(d.int(0, 255)).standard_normal(shape).astype(dtype)
    try:
        col = ops.im2col(_layout(d, x), kh, kw, (sh, sw), (ph, pw))
    except ValueError:
        assert not ok, (shape, kh, kw, sh, sw, ph, pw)
        return
    assert ok, ("accepted", shape, kh, kw, sh, sw, ph, pw)
    geometry = (kh, kw, sh, sw, ph, pw, oh, ow)
    np.testing.assert_array_equal(col, ref_im2col_t(x, 0, shape[0], *geometry).T)
    c = np.random.default_rng(1).standard_normal(col.shape).astype(dtype)
    got = ops.col2im(_layout(d, c), shape, kh, kw, (sh, sw), (ph, pw))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, ref_col2im_t(c.T, shape, 0, shape[0], *geometry),
                               rtol=tol, atol=tol)


def one_im2col_kernels(data):
    """The kernel entry points (cdl.kernels.im2col: im2col_t, col2im_t, im2col_rows,
    col2im_rows) with drawn geometry, OH/OW not necessarily those of the image, sample
    ranges and buffers of drawn shapes: a ValueError exactly when something does not fit
    (OH, OW other than the image's included), else the documented mapping exactly.
    These wrappers are the only door to the compiled loops, which index unchecked."""
    from cdl.kernels import im2col as K
    d = Draw(data)
    N, C, H, W = (d.int(1, 3), d.int(1, 3), d.int(1, 6), d.int(1, 6))
    kh, kw, sh, sw = d.size(1, 4), d.size(1, 4), d.size(1, 3), d.size(1, 3)
    ph, pw, oh_n, ow_n = d.size(0, 3), d.size(0, 3), d.size(1, 6), d.size(1, 6)
    n0 = d.int(-1, N)
    n1 = d.int(n0, N + 1)
    dtype = (np.float32, np.float64)[d.int(0, 1)]
    geometry_ok = (min(kh, kw, sh, sw, oh_n, ow_n) >= 1 and min(ph, pw) >= 0
                   and max(kh, kw, sh, sw, ph, pw, oh_n, ow_n) < 2**31)
    # OH, OW must be the image's own (the compiled loops trust them to stay in col)
    fits = geometry_ok and kh <= H + 2 * ph and kw <= W + 2 * pw
    ok = (fits and 0 <= n0 < n1 <= N
          and (oh_n, ow_n) == ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1))
    nb = max(n1 - n0, 1)
    want_shape = ((C * kh * kw, nb * oh_n * ow_n) if geometry_ok else (1, 1))
    if geometry_ok and want_shape[0] * want_shape[1] > MAX_ELEMENTS:
        return
    bad_buffer = d.int(0, 7) == 0  # a col of the wrong shape, dtype or layout
    rng = np.random.default_rng(d.int(0, 255))
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    buf, col = _guarded(want_shape, dtype)
    if bad_buffer:
        col = [np.zeros((want_shape[0], want_shape[1] + 1), dtype),
               np.zeros(want_shape, np.float32 if dtype == np.float64 else np.float64),
               np.asfortranarray(np.zeros(want_shape, dtype)),
               np.zeros((want_shape[0] + 1, want_shape[1]), dtype)][d.int(0, 3)]
        bad_buffer = col.shape != want_shape or col.dtype != dtype or not col.flags.c_contiguous
    args = (n0, n1, kh, kw, sh, sw, ph, pw, oh_n, ow_n)
    try:
        got = K.im2col_t(x, col, *args)
    except ValueError:
        assert not ok or bad_buffer, args
        return
    assert ok and not bad_buffer, ("accepted", args, col.shape)
    assert _guards_intact(buf), ("im2col_t wrote outside col", args)
    np.testing.assert_array_equal(got, ref_im2col_t(x, *args))
    # the adjoint, onto a dx whose other samples must stay untouched
    c = rng.standard_normal(want_shape).astype(dtype)
    buf, dx = _guarded((N, C, H, W), dtype, 7.0)
    K.col2im_t(c, dx, *args)
    assert _guards_intact(buf), ("col2im_t wrote outside dx", args)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx[n0:n1], ref_col2im_t(c, x.shape, *args), rtol=tol, atol=tol)
    assert (dx[:n0] == 7).all() and (dx[n1:] == 7).all()
    # the book's layout: rows (n*OH + oh)*OW + ow = the transposed mapping over the batch
    buf, rows = _guarded((N * oh_n * ow_n, C * kh * kw), dtype)
    K.im2col_rows(x, kh, kw, sh, sw, ph, pw, oh_n, ow_n, rows)
    assert _guards_intact(buf), ("im2col_rows wrote outside out", args)
    np.testing.assert_array_equal(rows, ref_im2col_t(x, 0, N, *args[2:]).T)
    buf, back = _guarded(x.shape, dtype, 7.0)
    K.col2im_rows(np.ascontiguousarray(rows), kh, kw, sh, sw, ph, pw, oh_n, ow_n, back)
    assert _guards_intact(buf), ("col2im_rows wrote outside out", args)
    np.testing.assert_allclose(back, ref_col2im_t(rows.T, x.shape, 0, N, *args[2:]),
                               rtol=tol, atol=tol)


TARGETS = {"idx": one_idx, "cifar": one_cifar, "load": one_model_file, "im2col": one_im2col,
           "kernels": one_im2col_kernels}


def one_any(data):
    """The first byte picks the target (atheris fuzzes all of them in one run)."""
    if not data:
        return
    fns = list(TARGETS.values())
    fns[data[0] % len(fns)](data[1:])


def main(argv):
    import atheris
    names = [a for a in argv[1:] if a in TARGETS]
    flags = [a for a in argv if a not in TARGETS]
    body = TARGETS[names[0]] if names else one_any
    import importlib
    for module in ("cdl.data", "cdl.kernels.im2col", "cdl.ops", "cdl.model"):
        importlib.import_module(module)  # loaded before instrument_all, so instrumented too
    _model_file()
    atheris.instrument_all()  # cdl and these bodies: coverage of both guides the fuzzer
    atheris.Setup(flags, body)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
