"""Train the spine detector on real annotated images together with phantoms.

    .venv/bin/python scripts/train_real_models.py --minutes 45

Training data (see ../shared/data/real2d/README.md for sources and licences):

* ``dendritic2/train`` -- real two-photon projections, one point per spine head (CC BY 4.0);
* ``spine_types/train`` -- real spine outlines with types, dendrite blanked in (MIT);
* domain-randomised phantoms of every preset (``spinequant.synth``), whose exact 3D truth
  keeps teaching the dendrite and spine masks and z.

The network is ``lean2d`` with a point head (a map of spine-head centres), warm-started from
the shipped ``lean2d``. Validation loss (for the best epoch) is taken on ``dendritic2/valid``
images that are near-copies of training images (never the distinct ones the benchmark
reports) and on held-out phantoms. Writes ``work/models/<name>/`` and, unless
``--no-install``, the shipped ``src/spinequant/models/<name>.*``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_default_models import VAL_SEED, install_model, randomised_phantom  # noqa: E402

from spinequant.segment.neural import TrainConfig, load_model, save_model, train  # noqa: E402
from spinequant.segment.neural.architectures import architecture, build  # noqa: E402
from spinequant.segment.neural.augment import AugmentConfig  # noqa: E402
from spinequant.segment.neural.card import ModelCard  # noqa: E402
from spinequant.segment.neural.data import TrainingSample  # noqa: E402
from spinequant.segment.neural.yolo_data import yolo_training_sample  # noqa: E402
from spinequant.synth import PRESETS  # noqa: E402

REAL2D = Path(__file__).resolve().parents[2] / "shared" / "data" / "real2d"
#: Pixel sizes (µm) judged from the width of the shafts; the sets do not record them.
#: dendritic2: 0.09 (the README's 0.08-0.1); spine_types: 12 px shafts in the 1024 px images
#: (0.08 µm for a ~1 µm shaft), 8 px in the 512 px ones (so 1.5x coarser).
DENDRITIC2_UM = 0.09
#: dendritic2's ``spine_image*`` files (1,196 of its 1,740 training images) are not fields but
#: zoomed crops of a few spines, stretched to 416 px: their shafts are 2-4x wider in pixels.
#: The phantom-only ``lean2d`` (which never saw them) detects their annotated spines best at
#: 0.015-0.03 µm (F1 0.03 at 0.09 µm, 0.37 at 0.025; 69 validation crops, work/diag13), so they
#: are read at 0.025 µm. Until 2026-11-30 they were read at 0.09 µm, teaching the network that
#: blobs 3-4x a head's size are heads.
DENDRITIC2_CROP_UM = 0.025
SPINE_TYPES_UM = {1024: 0.08, 512: 0.12}
#: ``--intensity mild``: annotators of dendritic2 mark the spines of the bright dendrite in focus,
#: not those of dim neurites beside it; the default contrast/brightness/gamma ranges can make a
#: dim neurite as bright as a focused one, hiding that cue.
MILD_INTENSITY = dict(contrast=(0.9, 1.1), brightness=0.05, gamma=(0.9, 1.1))
#: ``--intensity off``: geometry only (rotation, flip, scale); no intensity, blur or noise changes.
INTENSITY = {"default": {}, "mild": MILD_INTENSITY,
             "off": dict(contrast=(1.0, 1.0), brightness=0.0, gamma=(1.0, 1.0), blur_sigma_px=0.0,
                         z_blur=0.0, noise_sigma=0.0)}


def set_dendritic2_um(um: float) -> None:
    """Read dendritic2's fields at ``um`` µm in this process (the scripts' ``--dendritic2-um``)."""
    global DENDRITIC2_UM
    DENDRITIC2_UM = float(um)


def dendritic2_pixel_um(name: str) -> float:
    """The pixel size (µm) a dendritic2 image is read at: fields 0.09, zoomed crops 0.025."""
    return DENDRITIC2_CROP_UM if Path(name).name.startswith("spine_image") else DENDRITIC2_UM


def read_grey(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    img = np.asarray(iio.imread(path))
    return img[..., 0] if img.ndim == 3 else img


def dendritic2(split: str, names=None, weight=1.0, crops_as_fields=False) -> list[TrainingSample]:
    folder = REAL2D / "dendritic2" / split
    out = []
    for img in sorted((folder / "images").glob("*.jpg")):
        label = folder / "labels" / (img.stem + ".txt")
        if (names is not None and img.name not in names) or not label.exists():
            continue   # one training image of the set has no label file of its name
        pixel_um = DENDRITIC2_UM if crops_as_fields else dendritic2_pixel_um(img.name)
        sample, _ = yolo_training_sample(read_grey(img), label, pixel_size_um=pixel_um,
                                         name=f"dendritic2/{split}/{img.stem}",
                                         outlines=False, weight=weight)
        out.append(sample)
    return out


def near_copy_groups(images: list[np.ndarray]) -> np.ndarray:
    """A group number per image: images of the same shape whose 48 x 48 thumbnails correlate
    above 0.8 (the rule behind ``valid_distinct.txt``) share a group, and so does everything
    linked to them that way (other frames of one field, crops of one field)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from skimage.transform import resize

    thumbs = []
    for image in images:
        t = resize(np.asarray(image, np.float32).reshape(image.shape[-2:]), (48, 48), anti_aliasing=True).ravel()
        thumbs.append((t - t.mean()) / (np.linalg.norm(t - t.mean()) + 1e-9))
    shapes = [image.shape for image in images]
    linked = (np.stack(thumbs) @ np.stack(thumbs).T > 0.8) & np.array([[a == b for b in shapes] for a in shapes])
    return connected_components(csr_matrix(linked), directed=False)[1]


def keep_fraction_of_fields(samples: list[TrainingSample], fraction: float, seed: int) -> list[TrainingSample]:
    """The samples of a random ``fraction`` of the near-copy groups (a learning curve: fewer
    distinct fields, each drawn more often, as the share per set is fixed)."""
    groups = near_copy_groups([s.image for s in samples])
    names = np.unique(groups)
    kept = np.random.default_rng(seed).permutation(names)[:max(int(round(fraction * len(names))), 1)]
    return [s for s, g in zip(samples, groups) if g in set(kept.tolist())]


def spine_types(split: str, weight=1.0) -> list[TrainingSample]:
    folder = REAL2D / "spine_types" / split
    out = []
    for img in sorted((folder / "images").glob("*.png")):
        grey = read_grey(img)
        sample, _ = yolo_training_sample(grey, folder / "labels" / (img.stem + ".txt"),
                                         pixel_size_um=SPINE_TYPES_UM.get(grey.shape[0], 0.08),
                                         name=f"spine_types/{split}/{img.stem}", outlines=True, weight=weight)
        out.append(sample)
    return out


def phantom_sample(preset: str, seed: int, weight=1.0, overrides=None) -> TrainingSample:
    return dataclasses.replace(randomised_phantom(preset, seed, overrides), weight=weight)


def parse_overrides(items) -> dict:
    """KEY=VALUE phantom settings; values are Python literals (numbers, tuples, booleans)."""
    import ast

    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        out[key] = ast.literal_eval(value)
    return out


def carries_lean2d(arch) -> bool:
    """Whether lean2d's weights fit a network of architecture ``arch``."""
    spec, base = architecture(arch), architecture("lean2d_points")
    return all(spec[k] == base[k] for k in ("base_filters", "depth", "symmetry"))


def warm_start(out: Path, arch, from_random: bool = False) -> Path:
    """A point-head model carrying the shipped lean2d's weights (its new head untrained); a
    network of another width starts from random weights, with lean2d's pixel size and
    normalisation (so does a network with filters shared over orientations, lean2d_points_p4m)."""
    base_net, base = load_model("lean2d")
    spec = architecture(arch)
    net = build(spec)
    if carries_lean2d(spec) and not from_random:
        missing, unexpected = net.load_state_dict(base_net.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("point_head") for k in missing), (missing, unexpected)
    else:
        print(f"{spec['base_filters']} base filters, symmetry {spec['symmetry']}: starting from random weights",
              flush=True)
    card = ModelCard(name="warm-start", architecture=spec, voxel_size_um=base.voxel_size_um,
                     normalisation=base.normalisation, tile_size=base.tile_size,
                     tile_overlap=base.tile_overlap)
    save_model(net, card, out / "model")
    return out / "model.json"


def grown_state(shallow: dict, depth: int) -> dict:
    """A depth+1 network's weights from a shallower one: its latent block becomes the new
    deepest encoder block (same shapes) and its decoder blocks move one level up; only the
    new latent and the new deepest decoder block start untrained."""
    grown = {}
    for key, value in shallow.items():
        if key.startswith("latent."):
            key = f"encoder.{depth}." + key[len("latent."):]
        elif key.startswith("decoders."):
            _, d, blocks, i, rest = key.split(".", 4)
            key = f"decoders.{d}.{blocks}.{int(i) + 1}.{rest}"
        grown[key] = value
    return grown


def grow(out: Path, arch: str, base_model: str) -> Path:
    """A model of architecture ``arch`` (one level deeper) carrying ``base_model``'s weights."""
    base_net, base = load_model(base_model)
    spec = architecture(arch)
    if spec["depth"] != base.architecture["depth"] + 1:
        raise SystemExit(f"--grow-from needs an architecture one level deeper than {base_model}'s")
    net = build(spec)
    state = grown_state(base_net.state_dict(), base.architecture["depth"])
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith(("latent.", f"decoders.0.blocks.0.", "decoders.1.blocks.0."))
               for k in missing), missing
    card = ModelCard(name="grown", architecture=spec, voxel_size_um=base.voxel_size_um,
                     normalisation=base.normalisation, tile_size=base.tile_size,
                     tile_overlap=base.tile_overlap)
    save_model(net, card, out / "model")
    return out / "model.json"


def widened_state(narrow: dict, wide_shapes: dict, *, noise: float, seed: int) -> dict:
    """A network's weights at twice the width that compute the same maps (Net2WiderNet, Chen
    et al. 2016): every channel is doubled in place (channel j of the wide network copies
    channel j // 2, which keeps concatenated skips in order), and a convolution reading doubled
    channels halves its weights. ``noise`` (relative to each tensor's spread) lets the two
    copies of a channel learn different things."""
    gen = torch.Generator().manual_seed(seed)
    wide = {}
    for key, value in narrow.items():
        shape = tuple(wide_shapes[key])
        for dim, (old, new) in enumerate(zip(value.shape, shape)):
            if new == 2 * old:
                value = value.repeat_interleave(2, dim=dim)
                if dim == 1 and value.ndim == 4:
                    value = value / 2
            elif new != old:
                raise SystemExit(f"--widen-from: {key} goes from {tuple(narrow[key].shape)} to {shape}, "
                                 f"not twice as wide")
        if noise and value.is_floating_point() and value.ndim == 4:
            value = value + noise * value.std() * torch.randn(value.shape, generator=gen)
        wide[key] = value
    return wide


def widen(out: Path, arch, base_model: str, *, seed: int) -> Path:
    """A model of architecture ``arch`` (twice ``base_model``'s width) carrying its function."""
    base_net, base = load_model(base_model)
    spec = architecture(arch)
    net = build(spec)
    target = {k: v.shape for k, v in net.state_dict().items()}
    exact = widened_state(base_net.state_dict(), target, noise=0.0, seed=seed)
    net.load_state_dict(exact)
    x = torch.rand(2, base_net.encoder[0].body[0][0].in_channels // base.architecture["space_to_depth"] ** 2,
                   64, 64)
    with torch.no_grad():
        base_net.eval(), net.eval()
        gap = max(float((a - b).abs().max()) for a, b in zip(base_net(x), net(x)))
    print(f"widened {base_model} to {spec['base_filters']} base filters: largest change of a logit {gap:.2e}",
          flush=True)
    assert gap < 1e-3, gap
    net.load_state_dict(widened_state(base_net.state_dict(), target, noise=1e-2, seed=seed))
    card = ModelCard(name="widened", architecture=spec, voxel_size_um=base.voxel_size_um,
                     normalisation=base.normalisation, tile_size=base.tile_size,
                     tile_overlap=base.tile_overlap)
    save_model(net, card, out / "model")
    return out / "model.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="lean2d_real")
    ap.add_argument("--architecture", default="lean2d_points")
    ap.add_argument("--base-filters", type=int, default=None,
                    help="width of the network's first level (the architecture's own by default; "
                         "another width starts from random weights)")
    ap.add_argument("--widen-from", default=None,
                    help="start from this model's function at twice its width (with --base-filters)")
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--steps", type=int, default=40, help="steps per epoch")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tile", type=int, default=128,
                    help="training patch size in pixels (with --batch 2, 256 px sees as many pixels per step as 8 x 128)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--per-preset", type=int, default=4, help="training phantoms per preset")
    ap.add_argument("--share", type=float, nargs=3, default=(0.45, 0.25, 0.30),
                    metavar=("DENDRITIC2", "SPINE_TYPES", "PHANTOMS"), help="share of patches per source")
    ap.add_argument("--scale-jitter", type=float, default=1.4,
                    help="pixel size x U(1/j, j): robustness to a misstated pixel size")
    ap.add_argument("--phantom-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="phantom settings for the training phantoms, e.g. varicosity_density_per_um=(0,0.25)")
    ap.add_argument("--init", default=None, help="start from this point-head model (default: lean2d's weights)")
    ap.add_argument("--grow-from", default=None,
                    help="start a one-level-deeper --architecture from this point-head model")
    ap.add_argument("--crops", choices=("scaled", "drop", "as-fields"), default="scaled",
                    help="dendritic2's zoomed spine_image crops: read at their own pixel size (0.025 µm), "
                         "left out, or read at the fields' 0.09 µm (how the shipped lean2d_real was trained)")
    ap.add_argument("--head-sigma", type=float, default=0.25,
                    help="xy sigma (µm) of the head-centre target Gaussian (z stays 0.75 µm)")
    ap.add_argument("--right-angles", action="store_true",
                    help="rotate training patches by multiples of 90° only, not by any angle")
    ap.add_argument("--consistency", type=float, default=0.0,
                    help="weight of the mirror-consistency term (each batch also seen flipped; "
                         "TrainConfig.consistency_weight); 0 = off")
    ap.add_argument("--intensity", choices=tuple(INTENSITY), default="default",
                    help="intensity augmentation: the default ranges, mild ones (contrast 0.9-1.1, "
                         "brightness 0.05, gamma 0.9-1.1) that keep a neurite's brightness relative to the "
                         "image, or off (no intensity, blur or noise changes)")
    ap.add_argument("--head-loss", choices=("bce", "focal"), default="bce",
                    help="head map: cross-entropy on the target Gaussians, or the penalty-reduced "
                         "focal loss of keypoint detectors (pushes every head's own peak to 1)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (the order of patches and their augmentation)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="work/models")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--from-random", action="store_true",
                    help="without --init: start from random weights even where lean2d's would fit (a control)")
    ap.add_argument("--dendritic2-um", type=float, default=DENDRITIC2_UM,
                    help="pixel size (µm) the dendritic2 fields are read at (default %(default)s, judged "
                         "from the shaft width; docs/real_data.md has the other estimates)")
    ap.add_argument("--dendritic2-fraction", type=float, default=1.0,
                    help="train on this fraction of dendritic2's training fields, near-copies kept "
                         "together, chosen by --seed (a learning curve; default all)")
    args = ap.parse_args()
    if not 0 < args.dendritic2_fraction <= 1:
        ap.error(f"--dendritic2-fraction {args.dendritic2_fraction}: give a fraction above 0 and at most 1")
    set_dendritic2_um(args.dendritic2_um)
    if args.base_filters:
        args.architecture = {**architecture(args.architecture), "base_filters": args.base_filters}
    torch.manual_seed(args.seed)
    out = Path(args.work) / args.name
    t = time.perf_counter()
    distinct = set((REAL2D / "dendritic2" / "valid_distinct.txt").read_text().split())
    d2 = dendritic2("train", crops_as_fields=args.crops == "as-fields")
    if args.crops == "drop":
        d2 = [s for s in d2 if dendritic2_pixel_um(s.name) == DENDRITIC2_UM]
    if args.dendritic2_fraction < 1:
        d2 = keep_fraction_of_fields(d2, args.dendritic2_fraction, args.seed)
    st = spine_types("train")
    overrides = parse_overrides(args.phantom_set)
    ph = [phantom_sample(p, seed, overrides=overrides) for p in PRESETS
          for seed in range(100, 100 + args.per_preset)]
    for group, share in zip((d2, st, ph), args.share):
        for s in group:
            s.weight = share / len(group)
    d2_val_names = sorted(n.name for n in (REAL2D / "dendritic2" / "valid" / "images").glob("*.jpg")
                          if n.name not in distinct)[::8]
    val = dendritic2("valid", names=set(d2_val_names)) + [phantom_sample(p, VAL_SEED, overrides=overrides)
                                                          for p in PRESETS]
    print(f"{len(d2)} dendritic2, {len(st)} spine_types, {len(ph)} phantoms; {len(val)} validation "
          f"samples; loaded in {time.perf_counter() - t:.0f} s", flush=True)
    if args.widen_from:
        args.init = widen(Path(args.work) / f"{args.name}-init", args.architecture, args.widen_from, seed=args.seed)
    if args.grow_from:
        args.init = grow(Path(args.work) / f"{args.name}-init", args.architecture, args.grow_from)
    init = args.init or warm_start(Path(args.work) / f"{args.name}-init", args.architecture, args.from_random)
    config = TrainConfig(architecture=args.architecture, tile_size=args.tile, batch_size=args.batch,
                         steps_per_epoch=args.steps, epochs=args.epochs, learning_rate=args.lr,
                         lr_constant_epochs=args.epochs // 2, lr_decay=0.05,
                         loss="points_focal" if args.head_loss == "focal" else "points",
                         patience=args.epochs, val_patches=64, num_threads=args.threads,
                         max_minutes=args.minutes, seed=args.seed,
                         head_sigma_um=(0.75, args.head_sigma, args.head_sigma),
                         consistency_weight=args.consistency,
                         augment=dataclasses.replace(AugmentConfig(), scale_jitter=args.scale_jitter,
                                                     right_angles=args.right_angles,
                                                     **INTENSITY[args.intensity]))
    crops_note = {"scaled": f"read at {DENDRITIC2_CROP_UM} µm", "drop": "left out",
                  "as-fields": f"read at {DENDRITIC2_UM} µm"}
    start = args.init or ("lean2d" if carries_lean2d(args.architecture) and not args.from_random
                          else "random weights")
    subset = f" (a fraction {args.dendritic2_fraction} of its fields)" if args.dendritic2_fraction < 1 else ""
    description = (f"warm-started from {start}; {len(d2)} real two-photon projections{subset} with spine-head points "
                   f"(fields read at {DENDRITIC2_UM} µm) "
                   f"(zoomed crops {crops_note[args.crops]}) "
                   f"(dendritic2/train, SpineDetector 'Dendritic2' v2, CC BY 4.0), {len(st)} real images with "
                   f"spine outlines (spine_types/train, Dendritic-Spine-Analyzer-YOLO11, MIT), {len(ph)} "
                   f"domain-randomised phantoms of presets {', '.join(PRESETS)}"
                   f"{' with ' + ', '.join(args.phantom_set) if args.phantom_set else ''}; patch shares "
                   f"{'/'.join(str(s) for s in args.share)} (scripts/train_real_models.py)")
    train(d2 + st + ph, out_dir=out, config=config, init=init, val_samples=val, description=description)
    net, card = load_model(out / "model.json")
    save_model(net, dataclasses.replace(card, name=args.name), out / "model")
    if not args.no_install:   # then: benchmarks/real2d.py --calibrate, spinequant export-onnx
        install_model(out, args.name)


if __name__ == "__main__":
    main()
