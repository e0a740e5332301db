"""The random affine distortions of the 1998 paper (section III.C), drawn from (seed, epoch)
alone, and the NumPy warp both frameworks' augmentation must match."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Distortion:
    """Ranges of the random affine distortions (1998 paper, section III.C: translation,
    scaling, squeezing, horizontal shearing); every draw is uniform in +-range."""

    translate: float = 2.0  # pixels, each axis
    scale: float = 0.1  # size factor 1 +- scale, both axes
    squeeze: float = 0.1  # x *= 1 + s, y /= 1 + s
    shear: float = 0.2  # x += shear * y


DISTORTION = Distortion()


def affine_thetas(count: int, seed: int, epoch: int, size: int = 28, d: Distortion = DISTORTION) -> np.ndarray:
    """(count, 2, 3) float64 matrices for affine_grid (align_corners=False): output pixel
    coordinates in [-1, 1] -> where to sample the input. Drawn from (seed, epoch) alone."""
    rng = np.random.default_rng([seed, epoch, 1])
    u = rng.uniform(-1.0, 1.0, size=(count, 5))
    s = 1.0 + d.scale * u[:, 0]
    q = 1.0 + d.squeeze * u[:, 1]
    sx, sy = s * q, s / q  # forward scaling of the digit
    shear = d.shear * u[:, 2]
    tx, ty = (d.translate * u[:, 3:5] * 2.0 / size).T  # pixels -> normalised units
    # forward map A = [[sx, shear*sy], [0, sy]] plus t; the grid needs its inverse
    theta = np.zeros((count, 2, 3))
    theta[:, 0, 0] = 1.0 / sx
    theta[:, 0, 1] = -shear / sx
    theta[:, 1, 1] = 1.0 / sy
    theta[:, 0, 2] = -(theta[:, 0, 0] * tx + theta[:, 0, 1] * ty)
    theta[:, 1, 2] = -theta[:, 1, 1] * ty
    return theta


def warp_reference(images: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """NumPy affine_grid + bilinear grid_sample (zeros padding, align_corners=False), the
    computation both frameworks' augmentation must match. images (N, C, H, W)."""
    n, c, h, w = images.shape
    xs = (2 * np.arange(w) + 1) / w - 1
    ys = (2 * np.arange(h) + 1) / h - 1
    gx, gy = np.meshgrid(xs, ys)  # (H, W)
    base = np.stack([gx, gy, np.ones_like(gx)], -1)  # (H, W, 3)
    grid = np.einsum("hwk,njk->nhwj", base, theta)  # (N, H, W, 2): x, y in [-1, 1]
    px = ((grid[..., 0] + 1) * w - 1) / 2
    py = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    out = np.zeros((n, c, h, w), dtype=np.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = images[np.arange(n)[:, None, None], :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, H, W, C)
            out += np.moveaxis(vals * (weight * inside)[..., None], -1, 1)
    return out
