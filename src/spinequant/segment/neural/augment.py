"""Training patches with augmentation, drawn straight from the stacks.

One interpolation per patch does the geometry: it samples the stack on a rotated (any angle:
covers DeepD3's 90° turns and ±10° rotations), possibly flipped grid whose pixel size is the
model's voxel size times a random factor (resolution jitter: mixed-resolution training as in
DeepD3) and whose z step can be stretched (simulated anisotropy). Labels are sampled on the
same grid with nearest-neighbour interpolation. Then intensity changes: contrast, brightness,
gamma, blur (in-plane and across z), Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; ``AugmentConfig.off()`` disables all of them."""

    rotate: bool = True
    right_angles: bool = False       # rotate by multiples of 90° only (DeepD3's turns), not any angle
    flip: bool = True
    scale_jitter: float = 1.25       # pixel size x U(1/j, j) (log-uniform)
    z_stretch: float = 1.5           # z step x U(1, z_stretch) (thicker planes)
    contrast: tuple[float, float] = (0.6, 1.5)
    brightness: float = 0.2
    gamma: tuple[float, float] = (0.7, 1.5)
    blur_sigma_px: float = 1.0       # max in-plane Gaussian blur (probability 1/3)
    z_blur: float = 0.25             # max fraction of a neighbour plane mixed in (probability 1/3)
    noise_sigma: float = 0.15        # max Gaussian noise std (in normalised units)

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(rotate=False, flip=False, scale_jitter=1.0, z_stretch=1.0, contrast=(1.0, 1.0),
                   brightness=0.0, gamma=(1.0, 1.0), blur_sigma_px=0.0, z_blur=0.0, noise_sigma=0.0)


def sample_patch(image: np.ndarray, semantic: np.ndarray, spacing, target_spacing, *,
                 centre, size: int, image_planes, label_planes, rng: np.random.Generator,
                 config: AugmentConfig = AugmentConfig(), target_map: np.ndarray | None = None):
    """One (image, labels) patch centred at ``centre`` (voxel indices z, y, x).

    ``image_planes`` / ``label_planes`` are plane offsets (in units of the target z step) to
    sample: e.g. (-1, 0, 1) and (0,) for a 2D model with one neighbour plane each side.
    Returns float32 (len(image_planes), size, size) and uint8 (len(label_planes), size, size),
    and, when a continuous ``target_map`` (e.g. a head heatmap) is given, that map sampled
    linearly on the labels' grid as a third array.
    """
    sz, sy, sx = spacing
    tz, ty, tx = target_spacing
    scale = float(np.exp(rng.uniform(-1, 1) * np.log(config.scale_jitter))) if config.scale_jitter > 1 else 1.0
    zstep = (tz / sz) * (rng.uniform(1.0, config.z_stretch) if config.z_stretch > 1 else 1.0)
    if not config.rotate:
        angle = 0.0
    elif config.right_angles:
        angle = float(rng.integers(0, 4)) * (np.pi / 2)
    else:
        angle = rng.uniform(0, 2 * np.pi)
    flip = -1.0 if (config.flip and rng.random() < 0.5) else 1.0
    u = (np.arange(size) - (size - 1) / 2.0)
    vv, uu = np.meshgrid(u, u * flip, indexing="xy")     # uu: rows, vv: columns
    c, s = np.cos(angle), np.sin(angle)
    dy = (c * uu - s * vv) * (ty * scale / sy)
    dx = (s * uu + c * vv) * (tx * scale / sx)

    def grid(planes):
        z = centre[0] + np.asarray(planes, float)[:, None, None] * zstep
        return np.stack([np.broadcast_to(z, (len(planes), size, size)),
                         np.broadcast_to(centre[1] + dy, (len(planes), size, size)),
                         np.broadcast_to(centre[2] + dx, (len(planes), size, size))])

    img = ndi.map_coordinates(image, grid(image_planes), order=1, mode="mirror").astype(np.float32)
    lab_grid = grid(label_planes)
    lab = ndi.map_coordinates(semantic, lab_grid, order=0, mode="mirror").astype(np.uint8)
    img = intensity_augment(img, rng, config)
    if target_map is None:
        return img, lab
    return img, lab, ndi.map_coordinates(target_map, lab_grid, order=1, mode="mirror").astype(np.float32)


def intensity_augment(x: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Contrast, brightness, gamma, blur and noise on a normalised patch (values ~[-1, 1])."""
    if config.gamma != (1.0, 1.0):
        g = float(np.exp(rng.uniform(*np.log(config.gamma))))
        x = np.sign(x + 1) * np.abs((x + 1) / 2) ** g * 2 - 1
    x = x * rng.uniform(*config.contrast) + rng.uniform(-config.brightness, config.brightness + 1e-12)
    if config.blur_sigma_px > 0 and rng.random() < 1 / 3:
        x = ndi.gaussian_filter(x, (0, *(2 * [rng.uniform(0.3, config.blur_sigma_px)])))
    if config.z_blur > 0 and x.shape[0] > 1 and rng.random() < 1 / 3:
        a = rng.uniform(0, config.z_blur)
        x = ndi.convolve1d(x, [a, 1 - 2 * a, a], axis=0, mode="nearest")
    if config.noise_sigma > 0:
        x = x + rng.normal(0, rng.uniform(0, config.noise_sigma), x.shape)
    return x.astype(np.float32)
