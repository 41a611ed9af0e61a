"""Convolution on the CPU: conv2d_forward / conv2d_backward and the choice of algorithm.

Four algorithms compute the same thing (x (N, C, H, W), W (F, C, KH, KW)):

"gemm"       im2col + BLAS, a chunk of samples at a time. For samples n0..n1
             col_t = im2col_t(x[n0:n1])                 (C*KH*KW, nb*OH*OW)
             forward:  y   = Wm @ col_t (+ b), or (col_t.T @ Wm.T) for few
                       filters, reordered to NCHW (cdl/kernels/conv_gemm.py)
             backward: dy  = dout[n0:n1] as (F, nb*OH*OW)
                       dW += (col_t @ dy.T).T,  dx[n0:n1] = col2im_t(Wm.T @ dy)
             with Wm = W.reshape(F, C*KH*KW). col_t is the transpose of the
             book's col (index map in csrc/im2col.pyx): each of its rows is a
             run of whole output rows, so im2col is mostly a copy, and col2im
             gathers per (sample, channel) plane. A chunk's col_t is about
             conv_gemm.CHUNK_BYTES, so it is still in cache when the GEMM reads
             it, and the workspace stays small whatever the batch.

"pointwise"  1x1 kernel, stride 1, no padding: x[n] (C, H*W) already is col_t,
             so no im2col and no reordering: y[n] = Wm @ x[n] + b,
             dx[n] = Wm.T @ dy[n], dW = sum_n dy[n] @ x[n].T.

"direct"     any kernel, stride and padding, no im2col and no BLAS: each
             kernel tap is one pass of a vectorized loop over whole output
             planes laid out as "wide rows" (cdl/kernels/conv_direct.py). It
             pays off on wide output rows, and on first layers (few input
             channels), where im2col's copy outweighs the few multiply-adds.

"winograd"   3x3 kernel, stride 1, any padding: F(2x2, 3x3) Winograd, 16
             batched GEMMs on transformed 4x4 tiles, 2.25x fewer multiply-adds
             than "gemm" (cdl/kernels/conv_winograd.py); the transforms cost
             more than they save with few input channels.

applicable() lists which of them can compute a geometry. Which one runs is
chosen per call geometry (input and weight shapes, stride, padding, dtype,
thread count) and direction (forward; backward with or without dx), by
measurement: with the policy "measure" (the default, see cdl.kernels.tuner)
the first call of a geometry times the applicable algorithms whose kernels
are compiled on the caller's arrays (backward into scratch outputs) and
keeps the fastest, cached in memory and on disk. choose_algorithm() is the
heuristic behind it, its thresholds defaults rather than truths: it stays
the choice under set_policy("heuristic"), for tiny calls (under _TINY_FLOP,
where timing costs more than it can save), and while the other algorithms
are not compiled yet (tuning never compiles what the heuristic would not
run). Direct's and Winograd's kernels are slow to compile (seconds): where a
call needs one of them uncompiled, cdl.kernels.ahead compiles them all in a
second process, and until it is done each call runs the heuristic's pick if
compiled, else "gemm", and nothing is decided; then the tuner times them all
(all of this with the policy "measure" only: under "heuristic" its pick runs
from the first call, compiled in place, so that a run repeats bit for bit
whatever the state of the cache). decision() says what a
geometry got and why; bench/conv.py --algos times every algorithm wherever
it applies, which is where the evidence for the heuristic's thresholds is
kept. The choice is CPU-only, so it is no
argument of the kernels (their signatures are shared with the CUDA twins):
tests and benchmarks force one with ``with forced_algorithm("winograd"):
...``, which holds for conv2d_forward/backward called from that thread
inside the block.

All four run on cdl.kernels.parallel: the batch is cut into one slice per
thread, each slice computed by serial code in its own thread with BLAS on
one thread. Geometry (stride, pad, fit of the kernel) is validated by the caller.
"""
import numpy as np
from cdl.kernels import conv_direct as _direct
from cdl.kernels import conv_gemm as _gemm
from cdl.kernels import conv_winograd as _wino
from cdl.kernels import tuner
from cdl.kernels.parallel import num_threads, run_slices

ALGORITHMS = ("gemm", "pointwise", "direct", "winograd")

# "measure" (the default) or "heuristic": how the algorithm is chosen (the tuner's switch,
# shared with the binary GEMM variants).
set_policy, get_policy = tuner.set_policy, tuner.get_policy

# Calls under this many FLOP (2 per multiply-add; a backward with dx counts both its
# products) keep the heuristic's pick: at a few GFLOP/s they take well under 0.1 ms, and
# timing them would cost more than a better pick could save.
_TINY_FLOP = 2e6

# Bytes of V plus M (or Z) per chunk of "winograd": small enough to stay in cache between
# the transforms and the GEMMs (see cdl.kernels.conv_gemm.sample_chunks).
_WINOGRAD_CHUNK_BYTES = 1 << 20

# The heuristic's thresholds (choose_algorithm); defaults measured on one CPU with
# bench/conv.py --algos, which the tuner replaces by measurement on the user's.
# "winograd" needs at least _WINOGRAD_MIN_C input channels, the inner dimension of its
# forward GEMMs: with fewer, the tile transforms cost more than the multiply-adds saved.
_WINOGRAD_MIN_C = 32

# "direct" replaces "gemm" for output rows of at least _DIRECT_MIN_OW pixels, or of at
# least _DIRECT_FEW_MIN_OW with at most _DIRECT_MAX_C input channels (first layers).
# Direct computes (KW - 1) // SW wasted columns per row and makes one short pass per
# plane: both cost more on small planes, where the GEMMs are long enough. (Small planes
# also spare cdl train on 8x8 digits the direct kernels' first compilation.)
_DIRECT_MAX_C = 3
_DIRECT_FEW_MIN_OW = 14
_DIRECT_MIN_OW = 28

def _pointwise_applies(w_shape, stride, pad):
    """A 1x1 kernel, stride 1, no padding: the input is its own im2col."""
    return tuple(w_shape[2:]) == (1, 1) and tuple(stride) == (1, 1) and tuple(pad) == (0, 0)


def winograd_applies(w_shape, stride):
    """F(2x2, 3x3) Winograd: a 3x3 kernel with stride 1 (any padding)."""
    return tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)


def applicable(x_shape, w_shape, stride, pad):
    """The algorithms that can compute this geometry: gemm and direct always, pointwise for
    a 1x1 kernel with stride 1 and no padding, winograd for 3x3 with stride 1."""
    return [a for a in ALGORITHMS
            if (a != "pointwise" or _pointwise_applies(w_shape, stride, pad))
            and (a != "winograd" or winograd_applies(w_shape, stride))]


def choose_algorithm(x_shape, w_shape, stride, pad):
    """The algorithm conv2d_forward/backward use: "pointwise" for a 1x1 kernel with
    stride 1 and no padding (the input is its own im2col); else "winograd" for a 3x3
    kernel with stride 1 and at least _WINOGRAD_MIN_C input channels; else "direct"
    for output rows of _DIRECT_MIN_OW pixels or more, or of _DIRECT_FEW_MIN_OW with at
    most _DIRECT_MAX_C input channels; else "gemm"."""
    if _pointwise_applies(w_shape, stride, pad):
        return "pointwise"
    if winograd_applies(w_shape, stride) and x_shape[1] >= _WINOGRAD_MIN_C:
        return "winograd"
    ow = _geometry(x_shape, w_shape, stride, pad)[-1]
    if ow >= _DIRECT_MIN_OW or (x_shape[1] <= _DIRECT_MAX_C and ow >= _DIRECT_FEW_MIN_OW):
        return "direct"
    return "gemm"


def _geometry(x_shape, w_shape, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    kh, kw = w_shape[2:]
    oh = (x_shape[2] + 2 * ph - kh) // sh + 1
    ow = (x_shape[3] + 2 * pw - kw) // sw + 1
    return kh, kw, sh, sw, ph, pw, oh, ow


# The algorithm forced by forced_algorithm() in this thread (None: the tuner decides).
_forced = tuner.Forced()


def _check_known(algo):
    if algo not in ALGORITHMS:
        raise ValueError(f"conv2d: unknown algorithm {algo!r}, expected one of {ALGORITHMS}")


def forced_algorithm(algo):
    """Within the block, conv2d_forward/backward called from this thread use algo (one of
    ALGORITHMS) instead of the measured or heuristic pick; None restores that. A call
    whose geometry the algorithm cannot compute raises ValueError. Blocks nest."""
    if algo is not None:
        _check_known(algo)
    return _forced.holding(algo)


# The three directions, as the tuner's keys name them: the backward computes dx or not
# (a first layer's), which changes its cost and so maybe its best algorithm.
OPS = ("conv2d_forward", "conv2d_backward", "conv2d_backward_params")


def _flop(op, x_shape, w_shape, stride, pad):
    oh, ow = _geometry(x_shape, w_shape, stride, pad)[-2:]
    f = 2 * x_shape[0] * oh * ow * w_shape[0] * w_shape[1] * w_shape[2] * w_shape[3]
    return 2 * f if op == "conv2d_backward" else f


def _tiny(op, x_shape, w_shape, stride, pad):
    """Why the call is too small to time ("tiny layer ..."), or None."""
    f = _flop(op, x_shape, w_shape, stride, pad)
    return f"tiny layer ({f / 1e6:.2g} MFLOP)" if f < _TINY_FLOP else None


def _key(op, x_shape, w_shape, stride, pad, dtype, threads=None):
    # the dtype itself (str() gives its name on disk): dtype.name costs 4 us a call
    return (op, dtype, tuple(x_shape), tuple(w_shape), tuple(stride), tuple(pad),
            num_threads() if threads is None else threads)


def _kernels(algo, op, F):
    """The Numba dispatchers that algo calls from Python in op (none for pointwise)."""
    if algo == "gemm":
        if op != "conv2d_forward":
            return [_gemm.nchw_to_cols]
        return [_gemm.cols_to_nchw if F >= _gemm.FORWARD_COLUMNS_MIN_F else _gemm.rows_to_nchw]
    if algo == "direct":
        return [_direct.forward_slice if op == "conv2d_forward" else _direct.backward_slice]
    if algo == "winograd":
        return {"conv2d_forward": [_wino.input_tiles, _wino.output_tiles],
                "conv2d_backward": [_wino.input_tiles, _wino.dout_tiles, _wino.input_grads],
                "conv2d_backward_params": [_wino.input_tiles, _wino.dout_tiles]}[op]
    return []


def _algorithm(op, x, W, stride, pad, make_run):
    """The algorithm of this call: forced, else the heuristic's (policy "heuristic", tiny
    calls), else the tuner's (measured on the first call of the geometry by make_run()(a),
    which computes the call with algorithm a). While kernels compile in a second process
    (cdl.kernels.ahead), the heuristic's pick if compiled, else "gemm", and no decision."""
    algo = _forced.value
    if algo is None:
        heuristic = choose_algorithm(x.shape, W.shape, stride, pad)
        measuring = get_policy() == "measure"
        measured = measuring and not _tiny(op, x.shape, W.shape, stride, pad)
        if measured:
            key = _key(op, x.shape, W.shape, stride, pad, x.dtype)
            d = tuner.cached(key)
            if d is not None:
                return d.choice
        F = W.shape[0]
        if measuring and _compiling_ahead(op, heuristic, measured, x, W, stride, pad):
            return heuristic if _compiled(heuristic, op, F, x.dtype) else "gemm"
        if not measured:
            return heuristic
        return tuner.decide(key, applicable(x.shape, W.shape, stride, pad), heuristic,
                            make_run(), ready=lambda a: _compiled(a, op, F, x.dtype)).choice
    if algo not in applicable(x.shape, W.shape, stride, pad):
        need = ("a 1x1 kernel, stride 1 and no padding" if algo == "pointwise"
                else "a 3x3 kernel and stride 1")
        raise ValueError(f"conv2d: {algo!r} needs {need}; got kernel {tuple(W.shape[2:])}, "
                         f"stride {tuple(stride)}, pad {tuple(pad)}")
    return algo


# The algorithms whose kernels compile in a second process (cdl.kernels.ahead).
_AHEAD = ("direct", "winograd")


def _compiled(algo, op, F, dtype):
    """Whether algo's kernels for op are compiled for dtype (here or in Numba's cache)."""
    return tuner.compiled(_kernels(algo, op, F), dtype)


_known_compiled = set()  # (algo, op, F, dtype) found compiled: compiled code stays so


def _compiled_known(algo, op, F, dtype):
    """_compiled, remembered once true (a set lookup on later calls, instead of ~7 us)."""
    k = (algo, op, F, dtype)
    if k in _known_compiled:
        return True
    if _compiled(algo, op, F, dtype):
        _known_compiled.add(k)
        return True
    return False


def _compiling_ahead(op, heuristic, measured, x, W, stride, pad):
    """True while the slow kernels compile in a second process; starts it (once per dtype)
    where the call needs one of them uncompiled: the heuristic's pick, or with measuring,
    any applicable algorithm (so that the tuner can time them all)."""
    if not measured and heuristic not in _AHEAD:
        return False  # the call runs its pick (nothing slow to compile) either way
    # imported here, not with this module: `python -m cdl.kernels.ahead` (the second
    # process) must find it not imported yet when the package cdl.kernels loads
    from cdl.kernels import ahead
    if ahead.running(x.dtype):
        return True
    if not ahead.enabled():
        return False
    wanted = applicable(x.shape, W.shape, stride, pad) if measured else [heuristic]
    return (any(a in _AHEAD and not _compiled_known(a, op, W.shape[0], x.dtype)
                for a in wanted)
            and ahead.start(x.dtype))


def decision(x_shape, w_shape, stride, pad, dtype="float32", op="conv2d_forward",
             threads=None):
    """What conv2d_forward (op "conv2d_forward") or conv2d_backward (with dx:
    "conv2d_backward", without: "conv2d_backward_params") runs for this geometry in this
    process (the calling thread's thread count unless threads), as a tuner.Decision
    (.choice, .why); None while no call of it has been measured yet. Forcing is ignored."""
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    heuristic = choose_algorithm(x_shape, w_shape, stride, pad)
    if get_policy() == "heuristic":
        return tuner.Decision(heuristic, "policy", note="policy 'heuristic'")
    tiny = _tiny(op, x_shape, w_shape, stride, pad)
    if tiny:
        return tuner.Decision(heuristic, "tiny", note=tiny)
    return tuner.cached(_key(op, x_shape, w_shape, stride, pad, np.dtype(dtype), threads))


def _direct_geometry(w_shape, stride, pad, out_hw):
    """The geometry arguments of conv_direct's slice kernels after the kernel and bias."""
    hq, wq, _ = _direct.phase_geometry(w_shape, stride, out_hw)
    planes, offs = _direct.taps(w_shape[1], *w_shape[2:], *stride, wq)
    return planes, offs, *stride, *pad, hq, wq


def _winograd_forward_slice(x, U, bias, pad, y, a, z):
    """y[a:z] by F(2x2, 3x3) Winograd, chunk by chunk, in the calling thread."""
    (C, F), (th, tw) = (x.shape[1], y.shape[1]), _wino.tiles_hw(y.shape[2:])
    nb, chunks = _gemm.sample_chunks(a, z, 16 * (C + F) * th * tw * x.itemsize,
                                     _WINOGRAD_CHUNK_BYTES)
    v_buf = np.empty(16 * C * nb * th * tw, dtype=x.dtype)
    m_buf = np.empty(16 * F * nb * th * tw, dtype=x.dtype)
    for n0, n1 in chunks:
        T = (n1 - n0) * th * tw
        V = v_buf[:16 * C * T].reshape(16, C, T)
        _wino.input_tiles(x, n0, n1, *pad, th, tw, V)
        M = np.matmul(U, V, out=m_buf[:16 * F * T].reshape(16, F, T))
        _wino.output_tiles(M, bias, n0, n1, th, tw, y)


def _winograd_backward_slice(dout, x, Ut, pad, dx, a, z):
    """dx[a:z] (unless dx is None); returns this slice's dU (16, F, C) and db (F,).
    Ut (16, C, F): the transformed weights, transposed for dV = Ut @ Z (None without dx)."""
    (C, F), (th, tw) = (x.shape[1], dout.shape[1]), _wino.tiles_hw(dout.shape[2:])
    nb, chunks = _gemm.sample_chunks(a, z, 16 * (C + F) * th * tw * x.itemsize,
                                     _WINOGRAD_CHUNK_BYTES)
    v_buf = np.empty(16 * C * nb * th * tw, dtype=x.dtype)
    z_buf = np.empty(16 * F * nb * th * tw, dtype=x.dtype)
    dv_buf = np.empty(16 * C * nb * th * tw if dx is not None else 0, dtype=x.dtype)
    dU, part = np.zeros((16, F, C), dtype=x.dtype), np.empty((16, F, C), dtype=x.dtype)
    for n0, n1 in chunks:
        T = (n1 - n0) * th * tw
        V = v_buf[:16 * C * T].reshape(16, C, T)
        Z = z_buf[:16 * F * T].reshape(16, F, T)
        _wino.input_tiles(x, n0, n1, *pad, th, tw, V)
        _wino.dout_tiles(dout, n0, n1, th, tw, Z)
        dU += np.matmul(Z, V.transpose(0, 2, 1), out=part)
        if dx is not None:
            dV = np.matmul(Ut, Z, out=dv_buf[:16 * C * T].reshape(16, C, T))
            _wino.input_grads(dV, n0, n1, *pad, th, tw, dx)
    return dU, dout[a:z].sum(axis=(0, 2, 3))


def conv2d_forward(x, W, b, stride, pad, y):
    """y (N, F, OH, OW) = conv(x (N, C, H, W), W (F, C, KH, KW)) + b (F,) or None; returns y.

    stride and pad are (h, w) pairs; y is C-contiguous, in x's dtype (overwritten). The
    algorithm is the tuner's (or the heuristic's, see the module docstring), or the one
    forced_algorithm() holds.
    """
    def make_run():  # tuning times the candidates into y itself: the chosen one rewrites it
        return lambda a: _forward(a, x, W, b, stride, pad, y)
    algo = _algorithm("conv2d_forward", x, W, stride, pad, make_run)
    return _forward(algo, x, W, b, stride, pad, y)


def _forward(algo, x, W, b, stride, pad, y):
    g = _geometry(x.shape, W.shape, stride, pad)
    N, F, oh, ow = x.shape[0], W.shape[0], g[-2], g[-1]
    Wm = W.reshape(F, -1)
    y3 = y.reshape(N, F, oh * ow)
    if algo == "pointwise":
        x3 = x.reshape(N, -1, oh * ow)
        run_slices(lambda a, z: _gemm.pointwise_forward_slice(x3, Wm, b, y3, a, z), N)
    elif algo == "direct":
        bias = b if b is not None else np.zeros(F, dtype=x.dtype)
        d = _direct_geometry(W.shape, stride, pad, (oh, ow))
        run_slices(lambda a, z: _direct.forward_slice(x, Wm, bias, *d, y, a, z), N)
    elif algo == "winograd":
        bias = b if b is not None else np.zeros(F, dtype=x.dtype)
        U = _wino.weights(W)
        run_slices(lambda a, z: _winograd_forward_slice(x, U, bias, pad, y, a, z), N)
    else:
        bias = b if b is not None else np.zeros(F, dtype=x.dtype)
        run_slices(lambda a, z: _gemm.forward_slice(x, Wm, bias, g, y3, a, z), N)
    return y


def conv2d_backward(dout, x, W, stride, pad, dx, dW, db):
    """dx (N, C, H, W), dW (F, C, KH, KW), db (F,) for dout (N, F, OH, OW), written into the
    outputs (overwritten); returns (dx, dW, db).

    dx None: the input gradient is not computed (a first layer: nothing reads it, so
    col2im or its gather is skipped). db None: no bias. All in x's dtype, C-contiguous.
    """
    def make_run():  # tuning writes scratch outputs: the caller's may alias its inputs
        s = [None if a is None else np.empty_like(a) for a in (dx, dW, db)]
        return lambda a: _backward(a, dout, x, W, stride, pad, *s)
    op = "conv2d_backward" if dx is not None else "conv2d_backward_params"
    algo = _algorithm(op, x, W, stride, pad, make_run)
    return _backward(algo, dout, x, W, stride, pad, dx, dW, db)


def _backward(algo, dout, x, W, stride, pad, dx, dW, db):
    g = _geometry(x.shape, W.shape, stride, pad)
    N, F, oh, ow = x.shape[0], W.shape[0], g[-2], g[-1]
    Wm, d3 = W.reshape(F, -1), dout.reshape(N, F, oh * ow)
    dWm = dW.reshape(F, -1)
    with_dx = dx is not None
    if algo == "pointwise":
        x3, dx3 = x.reshape(N, -1, oh * ow), dx.reshape(N, -1, oh * ow) if with_dx else None
        parts = run_slices(lambda a, z: _gemm.pointwise_backward_slice(d3, x3, Wm, dx3, a, z), N)
        np.sum([p[0] for p in parts], axis=0, dtype=x.dtype, out=dWm)
    elif algo == "direct":
        d = _direct_geometry(W.shape, stride, pad, (oh, ow))
        lists = _direct.gather_lists(W, stride, d[-1])
        dx_or_empty = dx if with_dx else np.empty((0, 0, 0, 0), dtype=x.dtype)

        def direct_slice(a, z):
            dWt, db = np.zeros(Wm.shape, dtype=x.dtype), np.zeros(F, dtype=x.dtype)
            _direct.backward_slice(dout, x, Wm, *d[:2], *lists, *d[2:], dx_or_empty,
                                   with_dx, dWt, db, a, z)
            return dWt, db
        parts = run_slices(direct_slice, N)
        np.sum([p[0] for p in parts], axis=0, dtype=x.dtype, out=dWm)
    elif algo == "winograd":
        Ut = np.ascontiguousarray(_wino.weights(W).transpose(0, 2, 1)) if with_dx else None
        parts = run_slices(lambda a, z: _winograd_backward_slice(dout, x, Ut, pad, dx, a, z), N)
        dW[...] = _wino.weight_grads(np.sum([p[0] for p in parts], axis=0, dtype=x.dtype))
    else:
        parts = run_slices(lambda a, z: _gemm.backward_slice(d3, x, Wm, g, dx, a, z), N)
        dWm[...] = np.sum([p[0] for p in parts], axis=0, dtype=x.dtype).T
    if db is not None:
        np.sum([p[1] for p in parts], axis=0, dtype=x.dtype, out=db)
    return dx, dW, db


__all__ = ["conv2d_forward", "conv2d_backward"]
