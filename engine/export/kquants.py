"""llama.cpp's block quantizers that the `gguf` package lacks, in numpy, bit for bit.

Q4_K, Q5_K and Q6_K (with and without an importance matrix), and the importance-matrix variants of
Q4_0, Q5_0 and Q5_1 (the fallback types of the K-quant mixes). Each function is a port of the
same-named one in ggml's ggml-quants.c; tests compare the bytes with ggml's own output on stored
vectors. What makes it exact:
- every value is float32 and every operation is one IEEE float32 operation, in the C order
  (`a*b*c` is `(a*b)*c`; no fused multiply-add, as in a plain x86-64 build of ggml);
- every sum runs sequentially over the block, as the C loop does (`_seq_sum`), never pairwise;
- arrays hold one block per column: `x[i]` is element i of every block at once, so the loops over
  the 16/32 elements of a block are short Python loops over whole vectors.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
QK_K = 256
GROUP_MAX_EPS = F32(1e-15)


def _nearest_int(values: np.ndarray) -> np.ndarray:
    # ggml adds 1.5·2^23 and reads the mantissa: round half to even, like rint.
    return np.rint(values).astype(np.int32)


def _fp16(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16)


def _seq_sum(terms: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """Sum over axis 0 in order (float32), as `for (i...) s += t[i]` does; starts from 0 or `first`."""
    total = np.zeros(terms.shape[1:], dtype=F32) if first is None else first
    for term in terms:
        total = total + term
    return total


def _max_from_zero(values: np.ndarray) -> np.ndarray:
    """`m = 0; if (v > m) m = v` over axis 0: +0.0 when nothing is larger (never -0.0, whose sign
    would reach the stored fp16)."""
    return np.maximum(values.max(axis=0), F32(0)) + F32(0)


def _make_qkx(
    nmax: int, x: np.ndarray, weights: np.ndarray, rmin: float, rdelta: float, nstep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """make_qkx2_quants / make_qkx3_quants (use_mad false): scale, -min and levels of asymmetric
    blocks. x, weights: (n, blocks). Returns (scale, the_min, L) with L: (n, blocks) uint8."""
    lo = x.min(axis=0)
    hi = x.max(axis=0)
    sum_w = _seq_sum(weights[1:], weights[0])
    sum_x = _seq_sum(weights[1:] * x[1:], weights[0] * x[0])
    lo = np.where(lo > 0, F32(0), lo)
    flat = hi <= lo
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(nmax) / (hi - lo)
        scale = F32(1) / iscale
        levels = np.clip(_nearest_int(iscale * (x - lo)), 0, nmax)
        diff = scale * levels.astype(F32) + lo - x
        best = _seq_sum(weights * (diff * diff))
        for step in range(nstep + 1):
            # ggml moves `min` to each better candidate's, and later candidates start from it
            iscale = (F32(rmin) + F32(rdelta) * F32(step) + F32(nmax)) / (hi - lo)
            aux = np.clip(_nearest_int(iscale * (x - lo)), 0, nmax).astype(F32)
            wl = weights * aux
            sum_l = _seq_sum(wl)
            sum_l2 = _seq_sum(wl * aux)
            sum_xl = _seq_sum(wl * x)
            det = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
            positive = this_min > 0
            this_scale = np.where(positive, sum_xl / sum_l2, this_scale)
            this_min = np.where(positive, F32(0), this_min)
            diff = this_scale * aux + this_min - x
            error = _seq_sum(weights * (diff * diff))
            better = (det > 0) & (error < best)
            levels = np.where(better, aux.astype(np.int32), levels)
            best = np.where(better, error, best)
            scale = np.where(better, this_scale, scale)
            lo = np.where(better, this_min, lo)
    levels = np.where(flat, 0, levels)
    scale = np.where(flat, F32(0), scale)
    return scale.astype(F32), (-lo).astype(F32), levels.astype(np.uint8)


def _make_qx(nmax: int, x: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """make_qx_quants with rmse_type 1: symmetric blocks; weights None means x². Returns
    (scale, L) with L = level + nmax in [0, 2·nmax)."""
    pick = np.abs(x).argmax(axis=0)  # the first largest magnitude, as the strict `>` in C
    top = np.take_along_axis(x, pick[None, :], axis=0)[0]
    zero = np.abs(top) < GROUP_MAX_EPS
    w = x * x if weights is None else weights
    wx = w * x
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(-nmax) / top

        def sums(iscale):
            levels = np.clip(_nearest_int(iscale * x), -nmax, nmax - 1)
            lf = levels.astype(F32)
            return levels, _seq_sum(wx * lf), _seq_sum(w * lf * lf)

        levels, sumlx, suml2 = sums(iscale)
        scale = np.where(suml2 != 0, sumlx / suml2, F32(0))
        best = scale * sumlx
        for step in (*range(-9, 0), *range(1, 10)):
            iscale = -(F32(nmax) + F32(0.1) * F32(step)) / top
            new_levels, sumlx, suml2 = sums(iscale)
            better = (suml2 > 0) & (sumlx * sumlx > best * suml2)
            levels = np.where(better, new_levels, levels)
            scale = np.where(better, sumlx / suml2, scale)
            best = np.where(better, scale * sumlx, best)
    levels = np.where(zero, -nmax, levels)
    scale = np.where(zero, F32(0), scale)
    return scale.astype(F32), (levels + nmax).astype(np.uint8)


def _make_qp(nmax: int, x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """make_qp_quants: the 6-bit super-block scales of the importance-matrix K-quants. x, weights:
    (n, blocks), x >= 0. Returns (scale, L)."""
    top = _max_from_zero(x)
    zero = top < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(nmax) / top
        levels = _nearest_int(iscale * x)
        scale = F32(1) / iscale
        diff = x - scale * levels.astype(F32)
        best = _seq_sum(weights * diff * diff)
        for step in (-4, -3, -2, -1, 1, 2, 3, 4):
            iscale_is = (F32(0.1) * F32(step) + F32(nmax)) / top
            scale_is = F32(1) / iscale_is
            levels_is = np.minimum(nmax, _nearest_int(iscale_is * x)).astype(F32)
            diff = x - scale_is * levels_is
            mse = _seq_sum(weights * diff * diff)
            better = mse < best
            best = np.where(better, mse, best)
            iscale = np.where(better, iscale_is, iscale)
        levels = np.minimum(nmax, _nearest_int(iscale * x))
        wx = weights * x
        sumlx = _seq_sum(wx * levels.astype(F32))
        suml2 = _seq_sum(weights * levels.astype(F32) * levels.astype(F32))
        # Coordinate descent, element by element; a pass with no change would repeat itself,
        # so running all five passes equals the C loop's early exit.
        for _ in range(5):
            for i in range(x.shape[0]):
                li = levels[i].astype(F32)
                slx = sumlx - wx[i] * li
                sl2 = suml2 - weights[i] * li * li
                ok = (slx > 0) & (sl2 > 0)
                new = np.minimum(nmax, _nearest_int(x[i] * sl2 / slx))
                nf = new.astype(F32)
                slx2 = slx + wx[i] * nf
                sl22 = sl2 + weights[i] * nf * nf
                take = ok & (new != levels[i]) & (slx2 * slx2 * suml2 > sumlx * sumlx * sl22)
                levels[i] = np.where(take, new, levels[i])
                sumlx = np.where(take, slx2, sumlx)
                suml2 = np.where(take, sl22, suml2)
        scale = np.where(suml2 > 0, sumlx / suml2, F32(0))
    levels = np.where(zero, 0, levels)
    scale = np.where(zero, F32(0), scale)
    return scale.astype(F32), levels.astype(np.uint8)


# ---------------------------------------------------------------- Q4_K / Q5_K


def _pack_scale_min_k4(ls: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """The 12 bytes of 6-bit scales and mins of a Q4_K/Q5_K super-block; ls, lm: (8, blocks)."""
    out = np.zeros((12, ls.shape[1]), dtype=np.uint8)
    out[0:4] = ls[0:4]
    out[4:8] = lm[0:4]
    out[8:12] = (ls[4:8] & 0xF) | ((lm[4:8] & 0xF) << 4)
    out[0:4] |= (ls[4:8] >> 4) << 6
    out[4:8] |= (lm[4:8] >> 4) << 6
    return out


def _k_levels(x, levels, d16, dmin16, ls, lm, nmax):
    """The final levels from the rounded scales (as ggml re-derives them); a zero scale keeps the
    search's levels. x, levels: (32, 8, blocks)."""
    d = d16.astype(F32) * ls.astype(F32)  # (8, blocks)
    dm = dmin16.astype(F32) * lm.astype(F32)
    with np.errstate(divide="ignore", invalid="ignore"):
        fresh = np.clip(_nearest_int((x + dm) / d), 0, nmax)
    return np.where(d != 0, fresh, levels).astype(np.uint8)


def _k_scales(x: np.ndarray, nmax: int, rmin: float, imatrix: np.ndarray | None):
    """Scales, mins and levels of the eight 32-element sub-blocks of each super-block.
    x: (256, blocks). Returns (d16, dmin16, ls, lm, levels (32, 8, blocks))."""
    sub = x.reshape(8, 32, -1).transpose(1, 0, 2)  # (32, 8, blocks): element, sub-block, block
    if imatrix is None:  # quantize_row_qN_K_ref
        av_x = np.sqrt(_seq_sum(sub * sub) / F32(32))
        weights = av_x + np.abs(sub)
        flat = sub.reshape(32, -1)
        nstep = 20 if nmax == 15 else 15
        scales, mins, levels = _make_qkx(nmax, flat, weights.reshape(32, -1), rmin, 0.1, nstep)
        scales, mins = scales.reshape(8, -1), mins.reshape(8, -1)
        max_scale, max_min = _max_from_zero(scales), _max_from_zero(mins)
        with np.errstate(divide="ignore"):
            inv_scale = np.where(max_scale > 0, F32(63) / max_scale, F32(0))
            inv_min = np.where(max_min > 0, F32(63) / max_min, F32(0))
        ls = np.minimum(63, _nearest_int(inv_scale * scales).astype(np.uint8))
        lm = np.minimum(63, _nearest_int(inv_min * mins).astype(np.uint8))
        d16, dmin16 = _fp16(max_scale / F32(63)), _fp16(max_min / F32(63))
    else:  # quantize_row_qN_K_impl
        sigma2 = F32(2) * _seq_sum(x * x) / F32(QK_K)
        qw = imatrix.reshape(8, 32, -1).transpose(1, 0, 2)  # per column, broadcast over rows
        weights = qw * np.sqrt(sigma2 + sub * sub)
        sw = _seq_sum(weights)  # (8, blocks)
        scales, mins, levels = _make_qkx(nmax, sub.reshape(32, -1), weights.reshape(32, -1), -0.9, 0.05, 36)
        scales, mins = scales.reshape(8, -1), mins.reshape(8, -1)
        d_block, ls = _make_qp(63, scales, sw)
        m_block, lm = _make_qp(63, mins, sw)
        ls, lm = np.minimum(63, ls), np.minimum(63, lm)
        d16, dmin16 = _fp16(d_block), _fp16(m_block)
    levels = _k_levels(sub, levels.reshape(32, 8, -1), d16, dmin16, ls, lm, nmax)
    return d16, dmin16, ls, lm, levels


def _superblocks(rows: np.ndarray, imatrix: np.ndarray | None):
    """(rows, cols) -> x (256, blocks) with blocks in memory order, and the imatrix likewise."""
    n_rows, cols = rows.shape
    x = np.ascontiguousarray(rows.reshape(-1, QK_K).T)
    qw = None
    if imatrix is not None:
        qw = np.ascontiguousarray(np.tile(imatrix.astype(F32).reshape(-1, QK_K), (n_rows, 1)).T)
    return x, qw


def _interleave_halves(levels: np.ndarray) -> np.ndarray:
    """Levels (256, blocks) -> 128 bytes: byte l of each 64-group is L[l] | L[l+32] << 4."""
    groups = levels.reshape(4, 2, 32, -1)
    return ((groups[:, 0] & 0xF) | ((groups[:, 1] & 0xF) << 4)).reshape(128, -1)


def quantize_q4_k(rows: np.ndarray, imatrix: np.ndarray | None = None) -> np.ndarray:
    x, qw = _superblocks(rows, imatrix)
    d16, dmin16, ls, lm, levels = _k_scales(x, 15, -1.0, qw)
    levels = levels.transpose(1, 0, 2).reshape(QK_K, -1)
    parts = [_bytes(d16), _bytes(dmin16), _pack_scale_min_k4(ls, lm), _interleave_halves(levels)]
    return _rows_out(parts, rows.shape[0])


def quantize_q5_k(rows: np.ndarray, imatrix: np.ndarray | None = None) -> np.ndarray:
    x, qw = _superblocks(rows, imatrix)
    d16, dmin16, ls, lm, levels = _k_scales(x, 31, -0.5, qw)
    levels = levels.transpose(1, 0, 2).reshape(QK_K, -1)
    high = (levels >> 4).reshape(4, 2, 32, -1)  # bit 2g of qh[j] is L[64g+j]'s fifth bit, 2g+1 L[64g+32+j]'s
    qh = np.zeros((32, levels.shape[1]), dtype=np.uint8)
    for g in range(4):
        qh |= (high[g, 0] << (2 * g)) | (high[g, 1] << (2 * g + 1))
    parts = [_bytes(d16), _bytes(dmin16), _pack_scale_min_k4(ls, lm), qh, _interleave_halves(levels & 0xF)]
    return _rows_out(parts, rows.shape[0])


# ---------------------------------------------------------------- Q6_K


def quantize_q6_k(rows: np.ndarray, imatrix: np.ndarray | None = None) -> np.ndarray:
    x, qw = _superblocks(rows, imatrix)
    sub = x.reshape(16, 16, -1).transpose(1, 0, 2)  # (16, 16, blocks): element, sub-block, block
    weights = None if qw is None else qw.reshape(16, 16, -1).transpose(1, 0, 2).reshape(16, -1)
    scales, levels = _make_qx(32, sub.reshape(16, -1), weights)
    scales, levels = scales.reshape(16, -1), levels.reshape(16, 16, -1)
    pick = np.abs(scales).argmax(axis=0)  # first largest |scale|
    max_scale = np.take_along_axis(scales, pick[None, :], axis=0)[0]
    zero = np.abs(max_scale) < GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = F32(-128) / max_scale
        d16 = _fp16(F32(1) / iscale)
        sc = np.minimum(127, _nearest_int(iscale * scales)).astype(np.int8)  # (16, blocks)
        d = d16.astype(F32) * sc.astype(F32)
        fresh = np.clip(_nearest_int(sub / d), -32, 31) + 32
    levels = np.where(d != 0, fresh, levels).astype(np.uint8)
    levels = levels.transpose(1, 0, 2).reshape(QK_K, -1)
    halves = levels.reshape(2, 4, 32, -1)  # 128-element halves, four 32-groups each
    ql = np.concatenate([((h[k] & 0xF) | ((h[k + 2] & 0xF) << 4)) for h in halves for k in (0, 1)])
    qh = np.concatenate([sum((h[k] >> 4) << (2 * k) for k in range(4)).astype(np.uint8) for h in halves])
    d16 = np.where(zero, np.float16(0), d16)
    ql = np.where(zero, 0, ql).astype(np.uint8)
    qh = np.where(zero, 0, qh).astype(np.uint8)
    sc = np.where(zero, 0, sc).astype(np.int8)
    parts = [ql, qh, sc.view(np.uint8), _bytes(d16)]
    return _rows_out(parts, rows.shape[0])


# ---------------------------------------------------------------- 32-element types with an imatrix


def _row_sigma2(rows: np.ndarray) -> np.ndarray:
    """sum(x²)/n over each whole row, summed in column order; (rows,) float32."""
    return _seq_sum((rows * rows).T) / F32(rows.shape[1])


def _blocks32(rows: np.ndarray, imatrix: np.ndarray):
    """x and weights as (32, blocks) with weight = qw·sqrt(sigma2 + x²), sigma2 per row."""
    n_rows, cols = rows.shape
    sigma2 = np.repeat(_row_sigma2(rows), cols // 32)
    x = np.ascontiguousarray(rows.reshape(-1, 32).T)
    qw = np.tile(imatrix.astype(F32).reshape(-1, 32), (n_rows, 1)).T
    return x, qw * np.sqrt(sigma2 + x * x)


def _pack_q5_levels(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """levels (32, blocks) in 0..31 -> qh (4 bytes, little-endian bit j = fifth bit of L[j]), qs (16)."""
    qs = (levels[:16] & 0xF) | ((levels[16:] & 0xF) << 4)
    qh = np.packbits((levels >> 4).astype(np.uint8), axis=0, bitorder="little")
    return qh, qs


def quantize_q4_0_imatrix(rows: np.ndarray, imatrix: np.ndarray) -> np.ndarray:
    x, w = _blocks32(rows, imatrix)
    d, levels = _make_qx(8, x, w)
    qs = levels[:16] | (levels[16:] << 4)
    return _rows_out([_bytes(_fp16(d)), qs], rows.shape[0])


def quantize_q5_0_imatrix(rows: np.ndarray, imatrix: np.ndarray) -> np.ndarray:
    x, w = _blocks32(rows, imatrix)
    d, levels = _make_qx(16, x, w)
    qh, qs = _pack_q5_levels(levels)
    return _rows_out([_bytes(_fp16(d)), qh, qs], rows.shape[0])


def quantize_q5_1_imatrix(rows: np.ndarray, imatrix: np.ndarray) -> np.ndarray:
    x, w = _blocks32(rows, imatrix)
    d, the_min, levels = _make_qkx(31, x, w, -0.9, 0.05, 36)
    qh, qs = _pack_q5_levels(levels)
    return _rows_out([_bytes(_fp16(d)), _bytes(_fp16(-the_min)), qh, qs], rows.shape[0])


# ---------------------------------------------------------------- output


def _bytes(halfs: np.ndarray) -> np.ndarray:
    """(blocks,) float16 -> (2, blocks) little-endian bytes."""
    return np.ascontiguousarray(halfs.astype("<f2")).view(np.uint8).reshape(-1, 2).T


def _rows_out(parts: list[np.ndarray], n_rows: int) -> np.ndarray:
    """Byte planes (k_i, blocks) -> the blocks' bytes in order, as (rows, bytes per row)."""
    blocks = np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=0).T
    return np.ascontiguousarray(blocks).reshape(n_rows, -1)
