"""Registration of imaging sessions days apart: rigid, then affine, then an optional smooth
residual, all in µm, applicable to points (spines, centrelines) as well as to images.

1. **Rigid**: phase cross-correlation of the two stacks, downsampled to about
   ``downsample_um`` per voxel (a whole-stack drift of several µm), sub-voxel.
2. **Affine**: the reference is cut into overlapping blocks of ``block_um``; in each block
   with structure the shift of the (affinely resampled) moving stack is measured by phase
   correlation (sub-voxel, with the refinement of :mod:`.registration`), and an affine map is
   fitted to these point pairs by least squares (blocks with residuals far above the others
   are dropped; a small ridge towards no stretch/shear keeps a thin stack's z column sane).
   Repeated ``iterations`` times.
3. **Residual** (``deformable=True``): what is left at the blocks is smoothed into a field
   (thin-plate spline, :class:`scipy.interpolate.RBFInterpolator`) that bends the map.

Convention: a :class:`SessionTransform` takes a point of the *moving* session's frame (µm,
z y x from the stack's first voxel) to the *reference* session's frame:
``q = A p + a`` then ``q + r(q)``; :meth:`SessionTransform.inverse` goes back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..config import check_fields
from ..errors import InputError
from .registration import _shift_to, _smoothed, _window


@dataclass(frozen=True)
class AlignConfig:
    """Settings of :func:`align_sessions` (lengths in µm)."""

    downsample_um: float = 0.4
    block_um: float = 8.0
    smooth_um: float = 0.2
    iterations: int = 2
    deformable: bool = False
    upsample_factor: int = 10
    #: blocks whose intensity spread is below this fraction of the best block's are not used
    min_block_contrast: float = 0.25
    #: ridge weight (µm² per block) pulling the affine's matrix towards the identity
    ridge_um2: float = 4.0
    #: smoothing of the residual field (thin-plate spline), µm²
    residual_smoothing: float = 1.0

    def __post_init__(self):
        check_fields(self, ranges={"downsample_um": (0, None, True, False), "block_um": (0, None, True, False),
                                   "upsample_factor": (1, None, False, False),
                                   "min_block_contrast": (0, 1, False, False)})


@dataclass(frozen=True)
class SessionTransform:
    """A map from a moving session's frame to the reference's (µm; see the module docstring)."""

    affine: np.ndarray                       #: 4 x 4, homogeneous, z y x µm
    control_points_um: np.ndarray | None = None   #: (n, 3) where the residual was measured
    residual_um: np.ndarray | None = None         #: (n, 3) residual there
    residual_smoothing: float = 1.0

    @staticmethod
    def identity() -> "SessionTransform":
        return SessionTransform(np.eye(4))

    def _field(self):
        if self.control_points_um is None or len(self.control_points_um) < 5:
            return None
        from scipy.interpolate import RBFInterpolator

        return RBFInterpolator(self.control_points_um, self.residual_um, kernel="thin_plate_spline",
                               smoothing=self.residual_smoothing, degree=1)

    def apply(self, points_um) -> np.ndarray:
        """Points (n, 3) of the moving frame in the reference frame."""
        p = np.asarray(points_um, float).reshape(-1, 3)
        q = p @ self.affine[:3, :3].T + self.affine[:3, 3]
        field = self._field()
        return q if field is None or not len(q) else q + field(q)

    def inverse(self, points_um) -> np.ndarray:
        """Points (n, 3) of the reference frame in the moving frame."""
        q = np.asarray(points_um, float).reshape(-1, 3)
        field = self._field()
        w = q.copy()
        if field is not None and len(q):
            for _ in range(5):   # w + r(w) = q, r small and smooth
                w = q - field(w)
        inv = np.linalg.inv(self.affine)
        return w @ inv[:3, :3].T + inv[:3, 3]

    def to_dict(self) -> dict:
        out = {"affine_um": np.asarray(self.affine).tolist(),
               "convention": "moving-session point p (z, y, x µm) -> reference q = A p + a, then q + r(q)"}
        if self.control_points_um is not None:
            out["residual"] = {"control_points_um": np.asarray(self.control_points_um).tolist(),
                               "residual_um": np.asarray(self.residual_um).tolist(),
                               "kernel": "thin_plate_spline", "smoothing": self.residual_smoothing}
        return out

    @staticmethod
    def from_dict(d: dict) -> "SessionTransform":
        res = d.get("residual")
        if res is None:
            return SessionTransform(np.asarray(d["affine_um"], float))
        return SessionTransform(np.asarray(d["affine_um"], float), np.asarray(res["control_points_um"], float),
                                np.asarray(res["residual_um"], float), float(res["smoothing"]))


def _factors(spacing, target_um: float) -> tuple[int, ...]:
    return tuple(max(1, int(round(target_um / s))) for s in spacing)


def _downsample(image: np.ndarray, factors) -> np.ndarray:
    from skimage.transform import downscale_local_mean

    return downscale_local_mean(np.asarray(image, np.float32), factors).astype(np.float32)


def _fit_shape(image: np.ndarray, shape) -> np.ndarray:
    """``image`` cropped or padded (with its edge values) at the far end to ``shape``; voxel
    coordinates are unchanged."""
    image = image[tuple(slice(0, n) for n in shape)]
    pad = [(0, n - m) for n, m in zip(shape, image.shape)]
    return np.pad(image, pad, mode="edge") if any(p[1] for p in pad) else image


def rigid_shift(reference, moving, spacing, *, downsample_um: float = 0.4, upsample_factor: int = 10,
                smooth_um: float = 0.2) -> np.ndarray:
    """Displacement (µm, z y x) of ``moving``'s content against ``reference``'s: a structure
    at ``x`` in the reference is at ``x + shift`` in ``moving``. Downsampled first, then
    refined at full resolution around it."""
    spacing = np.asarray(spacing, float)
    moving = _fit_shape(np.asarray(moving), np.shape(reference))
    f = _factors(spacing, downsample_um)
    coarse_sp = spacing * np.asarray(f)
    ref_c, mov_c = _downsample(reference, f), _downsample(moving, f)
    win = _window(ref_c.shape)
    s_c = _shift_to(_smoothed(ref_c, 1.0), _smoothed(mov_c, 1.0), win, upsample_factor, 2) * coarse_sp
    # at full resolution: the moving stack moved back by the coarse estimate, the rest measured
    sigma = smooth_um / spacing
    ref_f = _smoothed(ndi.gaussian_filter(np.asarray(reference, np.float32), sigma), 0)
    mov_f = ndi.shift(np.asarray(moving, np.float32), -s_c / spacing, order=1, mode="nearest")
    mov_f = _smoothed(ndi.gaussian_filter(mov_f, sigma), 0)
    rest = _shift_to(ref_f, mov_f, _window(ref_f.shape), upsample_factor, 1) * spacing
    return s_c + rest


def warp_to_reference(moving, transform: SessionTransform, spacing, shape, *, order: int = 1) -> np.ndarray:
    """``moving`` resampled on the reference's voxel grid (``shape``) through the affine part
    of ``transform`` (float32; outside the moving stack: its nearest edge value)."""
    spacing = np.asarray(spacing, float)
    inv = np.linalg.inv(transform.affine)
    s = np.diag(spacing)
    matrix = np.diag(1 / spacing) @ inv[:3, :3] @ s
    offset = inv[:3, 3] / spacing
    return ndi.affine_transform(np.asarray(moving, np.float32), matrix, offset=offset, output_shape=tuple(shape),
                                order=order, mode="nearest")


def _block_starts(n: int, size: int) -> list[int]:
    if size >= n:
        return [0]
    step = max(1, size // 2)
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def block_shifts(reference, warped, spacing, *, block_um: float, smooth_um: float, upsample_factor: int,
                 min_block_contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """Block centres (n, 3) µm in the reference and the shift (n, 3) µm of ``warped``'s content
    there, for the blocks with structure (see :class:`AlignConfig`)."""
    spacing = np.asarray(spacing, float)
    sigma = smooth_um / spacing
    ref = ndi.gaussian_filter(np.asarray(reference, np.float32), sigma)
    mov = ndi.gaussian_filter(np.asarray(warped, np.float32), sigma)
    size = [max(4, int(round(block_um / s))) for s in spacing]
    size = [min(sz, n) for sz, n in zip(size, ref.shape)]
    blocks = [(z, y, x) for z in _block_starts(ref.shape[0], size[0])
              for y in _block_starts(ref.shape[1], size[1]) for x in _block_starts(ref.shape[2], size[2])]
    contrast = []
    for z, y, x in blocks:
        b = ref[z:z + size[0], y:y + size[1], x:x + size[2]]
        contrast.append(float(np.percentile(b, 99) - np.median(b)))
    contrast = np.asarray(contrast)
    keep = contrast >= min_block_contrast * contrast.max() if len(contrast) and contrast.max() > 0 else []
    window = _window(tuple(size))
    centres, shifts = [], []
    for (z, y, x), ok in zip(blocks, keep):
        if not ok:
            continue
        sl = (slice(z, z + size[0]), slice(y, y + size[1]), slice(x, x + size[2]))
        s = _shift_to(ref[sl] - ref[sl].mean(), mov[sl] - mov[sl].mean(), window, upsample_factor, 2, order=1)
        if np.any(np.abs(s) > np.asarray(size) / 4):   # beyond a quarter block: not a match
            continue
        centres.append((np.array([z, y, x]) + (np.asarray(size) - 1) / 2) * spacing)
        shifts.append(s * spacing)
    return np.asarray(centres).reshape(-1, 3), np.asarray(shifts).reshape(-1, 3)


def fit_affine(moving_pts, reference_pts, *, ridge_um2: float = 4.0, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """4 x 4 affine taking ``moving_pts`` (n, 3) µm onto ``reference_pts``, least squares with a
    ridge towards the identity matrix and pairs far off the fit dropped; also the kept mask."""
    p, q = np.asarray(moving_pts, float), np.asarray(reference_pts, float)
    keep = np.ones(len(p), bool)
    affine = np.eye(4)
    for _ in range(rounds):
        if keep.sum() < 4:
            break
        pc = p[keep].mean(axis=0)
        design = np.hstack([p[keep] - pc, np.ones((keep.sum(), 1))])
        lam = np.sqrt(ridge_um2 * keep.sum())
        reg = np.hstack([lam * np.eye(3), np.zeros((3, 1))])
        a = np.vstack([design, reg])
        rhs = np.vstack([q[keep], lam * np.eye(3)])
        sol, *_ = np.linalg.lstsq(a, rhs, rcond=None)
        m = sol[:3].T
        t = sol[3] - m @ pc
        affine = np.eye(4)
        affine[:3, :3], affine[:3, 3] = m, t
        resid = np.linalg.norm(p @ m.T + t - q, axis=1)
        limit = max(3.0 * float(np.median(resid[keep])), 0.3)
        new = resid <= limit
        if np.array_equal(new, keep):
            break
        keep = new
    return affine, keep


def align_sessions(reference, moving, spacing, *, config: AlignConfig = AlignConfig()) -> tuple[SessionTransform, dict]:
    """The transform from ``moving``'s frame to ``reference``'s (see the module docstring).

    Both are (Z, Y, X) stacks with the voxel size ``spacing`` (z, y, x) µm (the same in
    both; their shapes may differ), or both 2D images (Y, X) with ``spacing`` (y, x): planes or
    projections, registered in the plane (the transform stays 4 x 4 with z untouched, for
    points with z = 0: see :func:`~spinequant.timelapse.tracking.as_3d`). Returns the transform and diagnostics (rigid shift, blocks used, residual RMS at
    the blocks, µm).
    """
    reference, moving = np.asarray(reference), np.asarray(moving)
    if reference.ndim == moving.ndim == 2 and len(spacing) == 2:
        return _align_planes(reference, moving, spacing, config)
    if reference.ndim != 3 or moving.ndim != 3:
        raise InputError(f"Session registration needs two 3D stacks (Z, Y, X) or two 2D images (Y, X); got "
                         f"shapes {reference.shape} and {moving.shape} (voxel size {tuple(spacing)}).")
    spacing = np.asarray(spacing, float)
    shift = rigid_shift(reference, moving, spacing, downsample_um=config.downsample_um,
                        upsample_factor=config.upsample_factor, smooth_um=config.smooth_um)
    affine = np.eye(4)
    affine[:3, 3] = -shift
    transform = SessionTransform(affine)
    info = {"rigid_shift_um": shift.tolist()}
    ref32 = np.asarray(reference, np.float32)
    for it in range(config.iterations + (1 if config.deformable else 0)):
        warped = warp_to_reference(moving, transform, spacing, reference.shape)
        centres, shifts = block_shifts(ref32, warped, spacing, block_um=config.block_um,
                                       smooth_um=config.smooth_um, upsample_factor=config.upsample_factor,
                                       min_block_contrast=config.min_block_contrast)
        info[f"blocks_{it}"] = int(len(centres))
        info[f"block_rms_um_{it}"] = float(np.sqrt(np.mean(np.sum(shifts**2, axis=1)))) if len(shifts) else None
        if len(centres) < 4:
            break
        if it == config.iterations:   # the residual field, measured after the last affine fit
            w = centres + shifts
            transform = SessionTransform(transform.affine, w, -shifts, config.residual_smoothing)
            break
        moving_pts = transform.inverse(centres + shifts)
        affine, kept = fit_affine(moving_pts, centres, ridge_um2=config.ridge_um2)
        info[f"blocks_kept_{it}"] = int(kept.sum())
        transform = SessionTransform(affine)
    return transform, info


def _align_planes(reference, moving, spacing, config: AlignConfig) -> tuple[SessionTransform, dict]:
    """:func:`align_sessions` for two 2D images: as one-plane stacks (a nominal 1 µm z voxel),
    with the z row and column of the affine kept at the identity."""
    transform, info = align_sessions(reference[None], moving[None], (1.0, *(float(s) for s in spacing)),
                                     config=config)
    affine = np.array(transform.affine)
    affine[0, :], affine[:, 0] = 0.0, 0.0
    affine[0, 0] = 1.0
    residual = transform.residual_um
    if residual is not None:
        residual = np.array(residual)
        residual[:, 0] = 0.0
    info["rigid_shift_um"] = [0.0, *info["rigid_shift_um"][1:]]
    return SessionTransform(affine, transform.control_points_um, residual, transform.residual_smoothing), info
