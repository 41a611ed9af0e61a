"""Winograd convolution F(2x2, 3x3) for 3x3 kernels with stride 1 (Lavin and Gray, 2016).

A 2x2 block of outputs of a 3x3 correlation reads a 4x4 tile d of the
(padded) input. With the transforms

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

the block is Y = A^T [(G g G^T) * (B^T d B)] A, * elementwise: 16
multiplications instead of 36. Over channels the elementwise products become
16 independent GEMMs, one per position xi of the 4x4 transformed tile:

    V[xi] (C, T) = B^T d B over the T tiles of a chunk of samples
    U[xi] (F, C) = G W G^T                           (once per call)
    M[xi] (F, T) = U[xi] @ V[xi],  y = A^T M A per tile (+ b)

which is 2.25x fewer multiply-adds than im2col + GEMM. Backward, with
Z = A dY A^T the transformed output gradient of each tile (dY = 0 past the
last row or column of an odd output):

    dU[xi] += Z[xi] @ V[xi].T,  dW = G^T dU G         (the chain rule through U)
    dV[xi]  = U[xi].T @ Z[xi],  dx += B dV B^T        per tile, overlapping tiles add

The transforms run in Numba on whole planes (see the note above
_row_phases), a chunk of samples at a time (so that V and M or Z stay in
cache for the GEMMs); the GEMMs are BLAS calls, batched over xi by
np.matmul. F(2x2, 3x3) keeps float32 errors at the size of the direct sum's
(its transforms only add, subtract and halve).
"""
import numpy as np
from numba import njit

# G of the module doc: U = G W G^T (weights), dW = G^T dU G.
G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def tiles_hw(out_hw):
    """Tile rows and columns covering an output plane: ceil(OH / 2), ceil(OW / 2)."""
    return (out_hw[0] + 1) // 2, (out_hw[1] + 1) // 2


def weights(W):
    """U (16, F, C) = G W G^T for W (F, C, 3, 3), in W's dtype."""
    U = np.einsum("ai,fcij,bj->abfc", G, W, G, optimize=True)
    return np.ascontiguousarray(U.reshape(16, W.shape[0], W.shape[1]), dtype=W.dtype)


def weight_grads(dU):
    """dW (F, C, 3, 3) = G^T dU G for dU (16, F, C)."""
    F, C = dU.shape[1:]
    dW = np.einsum("ai,abfc,bj->fcij", G, dU.reshape(4, 4, F, C), G, optimize=True)
    return dW.astype(dU.dtype, copy=False)


# The transforms work on whole planes at a time, so that their loops are long and LLVM
# vectorizes them: a plane split into its four (row, column) parity phases, each laid out
# in "wide" rows of R = TW + 1 entries (as in conv_direct), puts the 16 values of every
# tile at 16 fixed offsets of one running index m = ty*R + tx: value (i, j) of tile
# (ty, tx) sits in phase (i % 2, j % 2) at m + (i // 2)*R + j // 2. The tile streams are
# then copied to (or from) the compact tile order t = ty*TW + tx the GEMMs use. Computed
# tile by tile instead, the transforms took 2.5 times as long as the GEMMs.

@njit(nogil=True, cache=True, inline="always")
def _row_phases(W, pw, q):
    """For column phase q: the first image column in it, its phase column, and how many."""
    first = (q - pw) % 2                   # (first + PW) % 2 == q
    return first, (first + pw) // 2, (W - first + 1) // 2


@njit(nogil=True, cache=True)
def _to_phases(img, ph, pw, R, P, base):
    """P[2*p + q, base + Y*R + X] = img[2*Y + p - PH, 2*X + q - PW] for every pixel of
    img; entries no pixel maps to (the padding) are left alone."""
    H, W = img.shape
    for r in range(H):
        p, Y = (r + ph) % 2, (r + ph) // 2
        row = img[r]
        for q in range(2):
            first, X0, count = _row_phases(W, pw, q)
            dst = P[2 * p + q, base + Y * R + X0:base + Y * R + X0 + count]
            for i in range(count):
                dst[i] = row[first + 2 * i]


@njit(nogil=True, cache=True)
def _from_phases(P, ph, pw, R, base, img):
    """img[r, col] = P[2*p + q, base + Y*R + X] for r = 2*Y + p - PH, col = 2*X + q - PW:
    the pixels of the phase layout written back to an image (the adjoint of _to_phases)."""
    H, W = img.shape
    for r in range(H):
        p, Y = (r + ph) % 2, (r + ph) // 2
        row = img[r]
        for q in range(2):
            first, X0, count = _row_phases(W, pw, q)
            src = P[2 * p + q, base + Y * R + X0:base + Y * R + X0 + count]
            for i in range(count):
                row[first + 2 * i] = src[i]


@njit(nogil=True, cache=True)
def input_tiles(x, n0, n1, ph, pw, th, tw, V):
    """V[xi, c, t] = (B^T d B)[xi] for the tile d at rows 2*ty - PH, columns 2*tx - PW
    of sample n, t = ((n - n0)*th + ty)*tw + tx.

    The phase planes of all C channels of a sample lie end to end (PL entries each), so
    each combination step is one loop over C*PL entries; what it computes at the wide
    columns and rows no tile starts at is never read.
    """
    C, R = x.shape[1], tw + 1
    PL = (th + 1) * R
    P = np.zeros((4, C * PL + R + 1), dtype=x.dtype)  # padding entries and the tail stay 0
    U = np.empty((8, C * PL + 1), dtype=x.dtype)
    for n in range(n0, n1):
        t0 = (n - n0) * th * tw
        for c in range(C):
            _to_phases(x[n, c], ph, pw, R, P, c * PL)
        for q in range(2):  # B^T d (rows): rows 0, 2 in phase p = 0, rows 1, 3 in p = 1
            e, o = P[q], P[2 + q]
            u0, u1, u2, u3 = U[q], U[2 + q], U[4 + q], U[6 + q]
            for m in range(C * PL + 1):
                d0, d2, d1, d3 = e[m], e[m + R], o[m], o[m + R]
                u0[m] = d0 - d2
                u1[m] = d1 + d2
                u2[m] = d2 - d1
                u3[m] = d1 - d3
        for k in range(4):  # (B^T d) B (columns: 0, 2 in q = 0, 1, 3 in q = 1), into V
            a, b = U[2 * k], U[2 * k + 1]
            for c in range(C):
                v0, v1, v2, v3 = V[4 * k, c], V[4 * k + 1, c], V[4 * k + 2, c], V[4 * k + 3, c]
                for ty in range(th):
                    m, t = c * PL + ty * R, t0 + ty * tw
                    for tx in range(tw):
                        c0, c2, c1, c3 = a[m + tx], a[m + tx + 1], b[m + tx], b[m + tx + 1]
                        v0[t + tx] = c0 - c2
                        v1[t + tx] = c1 + c2
                        v2[t + tx] = c2 - c1
                        v3[t + tx] = c1 - c3


@njit(nogil=True, cache=True)
def output_tiles(M, b, n0, n1, th, tw, y):
    """y[n, f, 2*ty + i, 2*tx + j] = (A^T m A)[i, j] + b[f] for the tiles m = M[:, f, t]
    of samples n0..n1-1; outputs past an odd last row or column are dropped.

    The combinations run over each M[xi] (F, T) as one long loop; then each output row
    interleaves two of the four results.
    """
    F, OH, OW = y.shape[1], y.shape[2], y.shape[3]
    L = M.shape[1] * M.shape[2]
    Mf = M.reshape(16, L)
    Srow = np.empty((8, L), dtype=M.dtype)
    Y4 = np.empty((4, L), dtype=M.dtype)
    for j in range(4):  # A^T m (rows)
        m0, m1, m2, m3 = Mf[j], Mf[4 + j], Mf[8 + j], Mf[12 + j]
        r0, r1 = Srow[j], Srow[4 + j]
        for t in range(L):
            r0[t] = m0[t] + m1[t] + m2[t]
            r1[t] = m1[t] - m2[t] - m3[t]
    for i in range(2):  # (A^T m) A (columns)
        s0, s1, s2, s3 = Srow[4 * i], Srow[4 * i + 1], Srow[4 * i + 2], Srow[4 * i + 3]
        ya, yb = Y4[2 * i], Y4[2 * i + 1]
        for t in range(L):
            ya[t] = s0[t] + s1[t] + s2[t]
            yb[t] = s1[t] - s2[t] - s3[t]
    T, half = M.shape[2], OW // 2
    for n in range(n0, n1):
        for f in range(F):
            bf, plane = b[f], y[n, f]
            for ty in range(th):
                t = f * T + ((n - n0) * th + ty) * tw
                for i in range(min(2, OH - 2 * ty)):
                    row, ya, yb = plane[2 * ty + i], Y4[2 * i], Y4[2 * i + 1]
                    for tx in range(half):
                        row[2 * tx] = ya[t + tx] + bf
                        row[2 * tx + 1] = yb[t + tx] + bf
                    if OW % 2:
                        row[OW - 1] = ya[t + tw - 1] + bf


@njit(nogil=True, cache=True)
def dout_tiles(dout, n0, n1, th, tw, Z):
    """Z[xi, f, t] = (A g A^T)[xi] for the 2x2 output-gradient tile g of tile t
    (0 past an odd last row or column): each output row split into even and odd
    columns first, then the combinations over each Z[xi] (F, T) as one long loop."""
    F, OH, OW = dout.shape[1], dout.shape[2], dout.shape[3]
    T, half = Z.shape[2], OW // 2
    L = F * T
    g = np.empty((4, L), dtype=dout.dtype)  # g[2*i + j, f*T + t]: the tile's value (i, j)
    for n in range(n0, n1):
        for f in range(F):
            plane = dout[n, f]
            for ty in range(th):
                t = f * T + ((n - n0) * th + ty) * tw
                for i in range(2):
                    ga, gb = g[2 * i], g[2 * i + 1]
                    if 2 * ty + i >= OH:
                        for tx in range(tw):
                            ga[t + tx] = 0
                            gb[t + tx] = 0
                        continue
                    row = plane[2 * ty + i]
                    for tx in range(half):
                        ga[t + tx] = row[2 * tx]
                        gb[t + tx] = row[2 * tx + 1]
                    if OW % 2:
                        ga[t + tw - 1] = row[OW - 1]
                        gb[t + tw - 1] = 0
    Zf = Z.reshape(16, L)
    g00, g01, g10, g11 = g[0], g[1], g[2], g[3]
    # A g: rows (g0, g0 + g1, g0 - g1, -g1); then the same on the columns
    z0, z1, z2, z3 = Zf[0], Zf[1], Zf[2], Zf[3]
    for t in range(L):
        a0, a1 = g00[t], g01[t]
        z0[t], z1[t], z2[t], z3[t] = a0, a0 + a1, a0 - a1, -a1
    z0, z1, z2, z3 = Zf[4], Zf[5], Zf[6], Zf[7]
    for t in range(L):
        a0, a1 = g00[t] + g10[t], g01[t] + g11[t]
        z0[t], z1[t], z2[t], z3[t] = a0, a0 + a1, a0 - a1, -a1
    z0, z1, z2, z3 = Zf[8], Zf[9], Zf[10], Zf[11]
    for t in range(L):
        a0, a1 = g00[t] - g10[t], g01[t] - g11[t]
        z0[t], z1[t], z2[t], z3[t] = a0, a0 + a1, a0 - a1, -a1
    z0, z1, z2, z3 = Zf[12], Zf[13], Zf[14], Zf[15]
    for t in range(L):
        a0, a1 = -g10[t], -g11[t]
        z0[t], z1[t], z2[t], z3[t] = a0, a0 + a1, a0 - a1, -a1


@njit(nogil=True, cache=True)
def input_grads(dV, n0, n1, ph, pw, th, tw, dx):
    """dx[n0:n1] = sum over tiles of B dV B^T added at the tile's place (the adjoint of
    input_tiles); the parts of tiles over the padding are dropped.

    In gather form, on the wide phase layout of input_tiles (all channels end to end,
    behind R zeros): a phase entry sums the tile values that land on it, from the tile at
    its own index and from the tile one column (then one row) before, so every entry is
    written once, by one vectorized loop per step.
    """
    C, R = dx.shape[1], tw + 1
    PL = (th + 1) * R
    end = R + C * PL
    E = np.zeros((8, end), dtype=dV.dtype)   # the lead and rows Y = th stay 0
    P = np.empty((4, end), dtype=dV.dtype)
    for n in range(n0, n1):
        t0 = (n - n0) * th * tw
        for k in range(4):  # dV B^T (columns): tile columns 0, 2 -> q = 0, columns 1, 3 -> q = 1
            e, o = E[2 * k], E[2 * k + 1]
            for c in range(C):
                s0, s1, s2, s3 = dV[4 * k, c], dV[4 * k + 1, c], dV[4 * k + 2, c], dV[4 * k + 3, c]
                for ty in range(th):
                    m, t = R + c * PL + ty * R, t0 + ty * tw
                    # entry X gets column 0 (or 1) of tile X and column 2 (or 3) of tile X - 1
                    e[m] = s0[t]
                    o[m] = s1[t] - s2[t] + s3[t]
                    for tx in range(1, tw):
                        e[m + tx] = s0[t + tx] - s0[t + tx - 1] + s1[t + tx - 1] + s2[t + tx - 1]
                        o[m + tx] = s1[t + tx] - s2[t + tx] + s3[t + tx] - s3[t + tx - 1]
                    last = t + tw - 1
                    e[m + tw] = -s0[last] + s1[last] + s2[last]
                    o[m + tw] = -s3[last]
        for q in range(2):  # B (dV B^T) (rows): the same down the rows, R entries apart
            e0, e1, e2, e3 = E[q], E[2 + q], E[4 + q], E[6 + q]
            pe, po = P[q], P[2 + q]
            for m in range(R, end):
                pe[m] = e0[m] - e0[m - R] + e1[m - R] + e2[m - R]
                po[m] = e1[m] - e2[m] + e3[m] - e3[m - R]
        for c in range(C):
            _from_phases(P, ph, pw, R, R + c * PL, dx[n, c])
