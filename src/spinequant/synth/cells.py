"""Phantoms of neuronal nuclei / somata in 3D with exact truth (instance labels and a table).

Cells are ellipsoids of varying size, shape and orientation, placed at a density per mm³;
a fraction of them touch a neighbour (clusters that a segmentation must split). The image is
made by the spine phantoms' imaging model (:func:`spinequant.synth.imaging.render`:
anisotropic Gaussian PSF, Poisson shot noise and Gaussian read noise at a target SNR) after
three light-sheet effects on the fluorophore: uneven illumination (a fall-off along the
light-sheet's path in x times a smooth random field), stripes (shadows cast along x, so
constant along x and varying in y and z) and an unlabelled autofluorescence haze.

>>> from spinequant.synth.cells import make_cell_phantom
>>> ph = make_cell_phantom("nuclei_confocal", seed=0, shape=(16, 48, 48))
>>> int(ph.labels.max()) == len(ph.cells)
True
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .. import __version__
from .._atomic import atomic_path
from .._json import to_json
from ..config import check_fields, config_to_dict
from ..errors import InputError
from ..validate import check_spacing
from .config import ImagingConfig
from .distractors import haze
from .imaging import render

TRUTH_COLUMNS = ["id", "centroid_z_um", "centroid_y_um", "centroid_x_um", "centre_z_um", "centre_y_um",
                 "centre_x_um", "semi_axes_um", "volume_um3", "volume_analytic_um3",
                 "equivalent_diameter_um", "n_voxels", "cluster", "truncated"]


@dataclass(frozen=True)
class CellPhantomConfig:
    """Everything :func:`make_cell_phantom` needs besides the seed (lengths in µm)."""

    name: str = "custom"
    spacing: tuple[float, float, float] = (1.0, 0.4, 0.4)  #: voxel size (z, y, x)
    shape: tuple[int, int, int] = (48, 160, 160)
    density_per_mm3: float = 150_000.0  #: cells per mm³ of the imaged volume (before overlaps are refused)
    diameter_um: tuple[float, float] = (6.0, 11.0)  #: range of the equivalent diameter
    elongation: tuple[float, float] = (1.0, 1.5)  #: longest / shortest semi-axis
    touching_fraction: float = 0.25  #: fraction of cells placed touching a neighbour
    gap_um: float = 1.0  #: smallest gap between the bounding spheres of cells that do not touch
    brightness: tuple[float, float] = (0.6, 1.4)  #: relative fluorophore fill per cell
    illumination_falloff: float = 0.0  #: fraction of light lost across the volume in x (light-sheet path)
    illumination_variation: float = 0.1  #: relative amplitude of the smooth random illumination field
    illumination_scale_um: float = 60.0  #: spatial scale of that field
    stripe_amplitude: float = 0.0  #: deepest stripe shadow (fraction of light lost), 0 = none
    stripe_scale_um: float = 8.0  #: width of the stripes in y
    haze: float = 0.05  #: autofluorescence haze, relative to the mean cell signal
    supersample_um: float = 0.25  #: sample step inside boundary voxels
    imaging: ImagingConfig = field(default_factory=ImagingConfig)

    def __post_init__(self):
        check_fields(self, ranges={
            "density_per_mm3": (0, None, True, False), "diameter_um": (0, None, True, False),
            "elongation": (1, None, False, False), "touching_fraction": (0, 1, False, False),
            "illumination_falloff": (0, 1, False, True), "illumination_variation": (0, 1, False, False),
            "illumination_scale_um": (0, None, True, False), "stripe_amplitude": (0, 1, False, True),
            "stripe_scale_um": (0, None, True, False), "supersample_um": (0, None, True, False),
            "spacing": (0, None, True, False), "shape": (4, None, False, False)})
        for name in ("diameter_um", "elongation", "brightness"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise InputError(f"The setting CellPhantomConfig.{name}={(lo, hi)} must be a range (low, high).")


#: mesoSPIM-like cleared-tissue light sheet (CellSeg3D's data were imaged at 5.26 µm in x/y and
#: 5 µm in z with ~15 µm somata; this preset samples twice as finely so that the truth is
#: resolved): 2 µm pixels, 4 µm steps, a sheet far thicker than the lateral resolution, stripes
#: and a fall-off of the light along x.
NUCLEI_LIGHTSHEET = CellPhantomConfig(
    name="nuclei_lightsheet", spacing=(4.0, 2.0, 2.0), shape=(40, 128, 128), density_per_mm3=25_000.0,
    diameter_um=(11.0, 19.0), elongation=(1.0, 1.4), touching_fraction=0.25, gap_um=2.0,
    illumination_falloff=0.35, illumination_variation=0.15, illumination_scale_um=150.0,
    stripe_amplitude=0.35, stripe_scale_um=12.0, haze=0.08, supersample_um=0.5,
    imaging=ImagingConfig(psf_fwhm_um=(6.0, 3.0), attenuation_length_um=2000.0, snr=8.0, signal_adu=600.0,
                          offset_adu=100.0, dark_fraction=0.05, read_noise_fraction=0.03, dtype="uint16"))

#: Confocal nuclei (e.g. a DAPI/Hoechst or NeuN stain through a 1.4 NA objective): 0.4 µm pixels,
#: 1 µm steps, densely packed nuclei of 6-11 µm.
NUCLEI_CONFOCAL = CellPhantomConfig(
    name="nuclei_confocal",
    imaging=ImagingConfig(psf_fwhm_um=(1.0, 0.3), attenuation_length_um=300.0, snr=15.0, signal_adu=1200.0,
                          offset_adu=100.0, dark_fraction=0.02, read_noise_fraction=0.01, dtype="uint16"))

CELL_PRESETS: dict[str, CellPhantomConfig] = {c.name: c for c in (NUCLEI_LIGHTSHEET, NUCLEI_CONFOCAL)}


@dataclass(frozen=True)
class CellPhantom:
    """A synthetic volume of cells with its exact truth.

    ``labels`` (int32) holds cell ``i`` as label ``i`` (row ``id == i`` of ``cells``); a voxel is
    a cell's when at least half of it is inside the ellipsoid (where two overlap, the one that
    fills more of it). ``cells`` has :data:`TRUTH_COLUMNS`: centroids of the labelled voxels and
    the model centres (µm, voxel (i, j, k) centred at (i dz, j dy, k dx)), the labelled volume
    (voxels x voxel volume) and the ellipsoid's, ``cluster`` (cells that touch share it; 0 =
    alone) and ``truncated`` (the cell reaches outside the volume).
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    labels: np.ndarray
    cells: pd.DataFrame
    params: dict


def cell_preset(name: str | CellPhantomConfig) -> CellPhantomConfig:
    if isinstance(name, CellPhantomConfig):
        return name
    if name not in CELL_PRESETS:
        raise InputError(f"There is no cell phantom preset '{name}'. Choose one of: {', '.join(CELL_PRESETS)}.")
    return CELL_PRESETS[name]


def make_cell_phantom(preset: str | CellPhantomConfig = "nuclei_confocal", *, seed: int = 0, shape=None,
                      **overrides) -> CellPhantom:
    """A cell phantom of ``preset`` (a name of :data:`CELL_PRESETS` or a config); any field of
    :class:`CellPhantomConfig` or of its ``imaging`` part (e.g. ``snr=5``) can be overridden."""
    cfg = _with_overrides(cell_preset(preset), shape=shape, **overrides)
    rng_place, rng_fill, rng_light, rng_noise = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))
    spacing = np.asarray(cfg.spacing, float)
    box = np.asarray(cfg.shape) * spacing
    cells = _place(rng_place, cfg, box)
    labels, fill = _rasterise(cells, cfg)
    labels, table = _truth_table(labels, cells, cfg)
    brightness = np.r_[0.0, rng_fill.uniform(*cfg.brightness, len(cells))]
    density = fill * brightness[labels].astype(np.float32)
    del fill
    light = _illumination(rng_light, cfg)
    density *= light
    haze_field = None
    if cfg.haze > 0:   # autofluorescence: excited by the same sheet
        haze_field = haze(rng_light, cfg.shape, cfg.spacing, scale_um=4 * cfg.diameter_um[1])
        haze_field *= light
    del light
    image, info = render(density, haze_field, labels > 0, cfg.spacing, cfg.imaging, rng_noise,
                         haze_amplitude=cfg.haze)
    params = {"config": config_to_dict(cfg), "seed": int(seed), "spinequant": __version__,
              "n_cells": len(table), "n_touching": int((table["cluster"] > 0).sum()), "imaging": info}
    return CellPhantom(image=image, spacing=tuple(float(s) for s in spacing), labels=labels, cells=table,
                       params=params)


def write_cell_phantom(phantom: CellPhantom, out_dir: str | os.PathLike) -> Path:
    """Write image.tif, labels_cells.tif (ImageJ TIFFs with the voxel size), truth_cells.csv and
    params.json into ``out_dir`` (replaced atomically if it exists)."""
    from ..io import write_tiff

    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True) as tmp:
        tmp = Path(tmp)
        tmp.mkdir()
        write_tiff(tmp / "image.tif", phantom.image, phantom.spacing)
        write_tiff(tmp / "labels_cells.tif", phantom.labels, phantom.spacing)
        phantom.cells.to_csv(tmp / "truth_cells.csv", index=False, float_format="%.4f")
        (tmp / "params.json").write_text(json.dumps(to_json(phantom.params), indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
    return out_dir


def _with_overrides(cfg: CellPhantomConfig, *, shape=None, **overrides) -> CellPhantomConfig:
    if shape is not None:
        overrides["shape"] = shape
    if "spacing" in overrides:
        overrides["spacing"] = check_spacing(overrides["spacing"], where="the phantom")
    if "shape" in overrides:
        overrides["shape"] = tuple(int(v) for v in overrides["shape"])
    names = {f.name for f in dataclasses.fields(CellPhantomConfig)}
    imaging_names = {f.name for f in dataclasses.fields(ImagingConfig)}
    top = {k: v for k, v in overrides.items() if k in names}
    imaging = {k: v for k, v in overrides.items() if k in imaging_names and k not in names}
    unknown = sorted(set(overrides) - set(top) - set(imaging))
    if unknown:
        raise InputError(f"{unknown} are not cell phantom parameters. Use fields of CellPhantomConfig "
                         f"({', '.join(sorted(names))}) or of ImagingConfig (e.g. snr).")
    if imaging:
        top["imaging"] = dataclasses.replace(cfg.imaging, **imaging)
    return dataclasses.replace(cfg, **top)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _place(rng: np.random.Generator, cfg: CellPhantomConfig, box: np.ndarray) -> list[dict]:
    """Ellipsoids (centre, rotation, semi-axes, cluster) that do not overlap unless they touch on purpose."""
    n = int(round(cfg.density_per_mm3 * float(np.prod(box)) * 1e-9))
    cells: list[dict] = []
    n_clusters = 0
    for _ in range(30 * n):
        if len(cells) >= n:
            break
        diameter = rng.uniform(*cfg.diameter_um)
        elongation = rng.uniform(*cfg.elongation)
        middle = rng.uniform(1.0, elongation)
        # semi-axes in the ratio elongation : middle : 1 whose product is the sphere's radius³
        axes = diameter / 2 * np.array([elongation, middle, 1.0]) / np.cbrt(elongation * middle)
        rot = _random_rotation(rng)
        touching = cells and rng.random() < cfg.touching_fraction
        if touching:
            parent = cells[int(rng.integers(len(cells)))]
            towards = rng.standard_normal(3)
            towards /= np.linalg.norm(towards)
            reach = _reach(parent, towards) + _reach({"rot": rot, "axes": axes}, -towards)
            centre = parent["centre"] + towards * reach * rng.uniform(0.92, 1.0)
        else:
            centre = rng.uniform(0, 1, 3) * box
        if not np.all((centre > 0) & (centre < box)):
            continue
        others = [c for c in cells if not (touching and c is parent)]
        if any(np.linalg.norm(c["centre"] - centre) < c["axes"].max() + axes.max() + cfg.gap_um for c in others):
            continue
        cell = {"centre": centre, "rot": rot, "axes": axes, "cluster": 0}
        if touching:
            if parent["cluster"] == 0:
                n_clusters += 1
                parent["cluster"] = n_clusters
            cell["cluster"] = parent["cluster"]
        cells.append(cell)
    return cells


def _reach(cell: dict, u: np.ndarray) -> float:
    """Distance from the centre of an ellipsoid to its surface along the unit vector ``u``."""
    local = cell["rot"].T @ u
    return float(1.0 / np.sqrt(np.sum((local / cell["axes"]) ** 2)))


def _rasterise(cells: list[dict], cfg: CellPhantomConfig) -> tuple[np.ndarray, np.ndarray]:
    """Labels (a voxel at least half inside; the cell filling more of it wins) and the filled
    fraction of every voxel (the largest over the cells)."""
    spacing = np.asarray(cfg.spacing, float)
    shape = np.asarray(cfg.shape)
    labels = np.zeros(cfg.shape, np.int32)
    fill = np.zeros(cfg.shape, np.float32)
    n_sub = np.clip(np.ceil(spacing / cfg.supersample_um).astype(int), 1, 6)
    offsets = np.stack(np.meshgrid(*[((np.arange(k) + 0.5) / k - 0.5) * s for k, s in zip(n_sub, spacing)],
                                   indexing="ij"), -1).reshape(-1, 3)
    for i, cell in enumerate(cells, start=1):
        reach = cell["axes"].max()
        lo = np.maximum(np.floor((cell["centre"] - reach) / spacing).astype(int) - 1, 0)
        hi = np.minimum(np.ceil((cell["centre"] + reach) / spacing).astype(int) + 2, shape)
        if np.any(hi <= lo):
            continue
        grid = np.stack(np.meshgrid(*[np.arange(a, b) * s for a, b, s in zip(lo, hi, spacing)],
                                    indexing="ij"), -1)
        # inside test in the ellipsoid's own frame, for every sub-sample of every voxel
        local = ((grid[..., None, :] + offsets - cell["centre"]) @ cell["rot"]) / cell["axes"]
        frac = (np.sum(local**2, axis=-1) <= 1.0).mean(axis=-1).astype(np.float32)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        wins = (frac >= 0.5) & (frac > fill[sl])
        labels[sl][wins] = i
        np.maximum(fill[sl], frac, out=fill[sl])
    return labels, fill


def _truth_table(labels: np.ndarray, cells: list[dict], cfg: CellPhantomConfig) -> tuple[np.ndarray, pd.DataFrame]:
    """Renumber the cells that got voxels 1..N and tabulate them."""
    spacing = np.asarray(cfg.spacing, float)
    counts = np.bincount(labels.ravel(), minlength=len(cells) + 1)
    keep = np.flatnonzero(counts[1:]) + 1
    lut = np.zeros(len(cells) + 1, np.int32)
    lut[keep] = np.arange(1, keep.size + 1)
    labels = lut[labels]
    index = np.arange(1, keep.size + 1)
    centroids = np.array(ndi.center_of_mass(np.ones(labels.shape, np.uint8), labels, index)).reshape(-1, 3) * spacing
    border = np.zeros(keep.size + 1, bool)
    for face in (labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
        border[np.unique(face)] = True
    voxel = float(np.prod(spacing))
    rows = []
    for new, old in enumerate(keep, start=1):
        c = cells[old - 1]
        n = int(counts[old])
        rows.append({"id": new, **{f"centroid_{a}_um": centroids[new - 1, k] for k, a in enumerate("zyx")},
                     **{f"centre_{a}_um": c["centre"][k] for k, a in enumerate("zyx")},
                     "semi_axes_um": " ".join(f"{v:.3f}" for v in np.sort(c["axes"])[::-1]),
                     "volume_um3": n * voxel, "volume_analytic_um3": 4 / 3 * np.pi * float(np.prod(c["axes"])),
                     "equivalent_diameter_um": float(np.cbrt(6 * n * voxel / np.pi)), "n_voxels": n,
                     "cluster": int(c["cluster"]), "truncated": bool(border[new])})
    table = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    # a cluster whose partner was dropped or lost is no longer a cluster
    sizes = table["cluster"].map(table["cluster"].value_counts())
    table.loc[(table["cluster"] > 0) & (sizes < 2), "cluster"] = 0
    return labels, table


def _illumination(rng: np.random.Generator, cfg: CellPhantomConfig) -> np.ndarray:
    """Relative excitation per voxel: fall-off along x, a smooth random field and stripes."""
    nz, ny, nx = cfg.shape
    dz, dy, dx = cfg.spacing
    x = np.arange(nx) / max(nx - 1, 1)
    light = np.broadcast_to((1 - cfg.illumination_falloff * x).astype(np.float32), cfg.shape).copy()
    if cfg.illumination_variation > 0:
        smooth = haze(rng, cfg.shape, cfg.spacing, scale_um=cfg.illumination_scale_um)
        light *= 1 + cfg.illumination_variation * (smooth - smooth.mean()) / (smooth.std() + 1e-12) / 2
    if cfg.stripe_amplitude > 0:
        # shadows cast along the sheet's path: constant in x, narrow in y, long in z
        field = ndi.gaussian_filter(rng.standard_normal((nz, ny)),
                                    (cfg.stripe_scale_um * 4 / dz, cfg.stripe_scale_um / 2 / dy))
        shadow = np.clip(field / (2 * field.std() + 1e-12), 0, 1).astype(np.float32)
        light *= (1 - cfg.stripe_amplitude * shadow)[:, :, None]
    return np.clip(light, 0.05, None)
