"""Vectors to and from packed port values, with NumPy (no loops over bits): element 0 in the low bits."""

from __future__ import annotations

import numpy as np


def pack_rows(values: np.ndarray, width: int) -> list[int]:
    """Rows of raw integers (n, k) to one unsigned int per row, each element in ``width`` bits."""
    values = np.asarray(values, dtype=np.int64)
    n, k = values.shape
    if width > 63:
        return [sum((int(v) & ((1 << width) - 1)) << (i * width) for i, v in enumerate(row)) for row in values]
    u = (values & np.int64((1 << width) - 1)).astype(np.uint64)
    bits = ((u[:, :, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    packed = np.packbits(bits.reshape(n, k * width), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack_rows(words: list[int], k: int, width: int, signed: bool) -> np.ndarray:
    """Inverse of :func:`pack_rows`: (n, k) raw integers, sign-extended when ``signed``."""
    n = len(words)
    if not n:
        return np.zeros((0, k), dtype=np.int64)
    if width > 62:
        out = np.zeros((n, k), dtype=object)
        for r, w in enumerate(words):
            for i in range(k):
                v = (w >> (i * width)) & ((1 << width) - 1)
                out[r, i] = v - (1 << width) if signed and v >> (width - 1) else v
        return out
    nbytes = (k * width + 7) // 8
    raw = np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in words), dtype=np.uint8).reshape(n, nbytes)
    return unpack_bits(np.unpackbits(raw, axis=1, bitorder="little"), k, width, signed)


def unpack_bits(bits: np.ndarray, k: int, width: int, signed: bool) -> np.ndarray:
    """Rows of bits (n, >= k * width; bit 0 first) to (n, k) raw integers (width <= 62)."""
    vals = (bits[:, : k * width].reshape(len(bits), k, width).astype(np.int64) << np.arange(width)).sum(axis=2)
    if signed:
        vals = np.where(vals >= (1 << (width - 1)), vals - (1 << width), vals)
    return vals
