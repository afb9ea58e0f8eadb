"""64-bit DCT perceptual hash of the output image, for near-duplicate search.

The exact variant (anyone recomputing it must follow these steps):

1. Greyscale with ITU-R 601-2 luma, L = R * 299/1000 + G * 587/1000 + B * 114/1000 (PIL's
   `convert("L")`), computed on the output pixels before lossy encoding.
2. Resize to 32x32 with PIL's BOX filter (an area average; no aliasing from large sources).
3. 2-D DCT-II, orthonormal (scipy's `dct(type=2, norm="ortho")` on rows, then columns), computed as
   D @ X @ D.T with a precomputed 32x32 float64 matrix D.
4. Keep the top-left 8x8 block, DC coefficient included (64 values).
5. Threshold against the median of those 64 values (numpy's median: the mean of the two middle
   values): bit i is 1 when coefficient i > median, coefficients taken row-major (u, then v).
6. Bit 0 is the most significant bit of the uint64.

Distances are Hamming distances between hashes (`hamming`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 32
BLOCK = 8


def dct_matrix(n: int = HASH_SIZE) -> np.ndarray:
    """The orthonormal DCT-II matrix: D[k, i] = s_k cos(pi (2i + 1) k / 2n)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0, :] = np.sqrt(1.0 / n)
    return matrix


_D = dct_matrix()
_WEIGHTS = (np.uint64(1) << np.arange(BLOCK * BLOCK - 1, -1, -1, dtype=np.uint64)).astype(np.uint64)


def grey32(image: Image.Image) -> np.ndarray:
    """Steps 1-2: the 32x32 uint8 luma thumbnail a hash is computed from."""
    return np.asarray(image.convert("L").resize((HASH_SIZE, HASH_SIZE), Image.Resampling.BOX))


def phash_batch(grey: np.ndarray) -> np.ndarray:
    """Steps 3-6 for N thumbnails at once: [N, 32, 32] (any real dtype) -> [N] uint64."""
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 3 or grey.shape[1:] != (HASH_SIZE, HASH_SIZE):
        raise ValueError(f"expected [N, {HASH_SIZE}, {HASH_SIZE}], got {grey.shape}")
    coeffs = _D @ grey @ _D.T
    block = coeffs[:, :BLOCK, :BLOCK].reshape(len(grey), BLOCK * BLOCK)
    bits = block > np.median(block, axis=1, keepdims=True)
    return (bits.astype(np.uint64) * _WEIGHTS).sum(axis=1, dtype=np.uint64)


def phash_image(image: Image.Image) -> int:
    """The hash of one PIL image, as a Python int in [0, 2**64)."""
    return int(phash_batch(grey32(image)[None])[0])


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bitwise Hamming distance of uint64 hashes (broadcasting), as int64."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return _popcount64(x)


def _popcount64(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(x.shape + (8,))
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1).astype(np.int64)
