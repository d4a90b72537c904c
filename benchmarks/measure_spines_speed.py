"""Time the spine and dendrite tables on a synthetic volume with many spines.

    .venv/bin/python benchmarks/measure_spines_speed.py [--spines 2000]

Builds parallel dendrites (cylinders along x, 0.094/0.094/0.5 µm voxels) carrying mushroom,
thin and stubby spines on both sides, then times each stage. Target: the spine table for
2,000 spines in under 20 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from spinequant.morphology import dendrite_skeleton, measure_dendrites, measure_spines

SPACING = (0.5, 0.094, 0.094)


def synthetic_volume(n_spines: int, *, seed: int = 0, per_um: float = 2.0, length_um: float = 100.0):
    """Spine labels, dendrite mask and image with ``n_spines`` spines."""
    rng = np.random.default_rng(seed)
    sp = np.array(SPACING)
    per_dendrite = int(per_um * length_um)
    n_dend = int(np.ceil(n_spines / per_dendrite))
    pitch = 7.0  # µm between dendrite axes in y
    shape = (24, int((n_dend * pitch + 2) / sp[1]), int((length_um + 4) / sp[2]))
    spines = np.zeros(shape, np.int32)
    dend = np.zeros(shape, bool)
    zc = 6.0
    yy = np.arange(shape[1]) * sp[1]
    zz = np.arange(shape[0]) * sp[0]
    for d in range(n_dend):
        yc = 4.5 + d * pitch
        cross = (zz[:, None] - zc) ** 2 + (yy[None, :] - yc) ** 2 <= 0.8 ** 2
        x0, x1 = int(2 / sp[2]), int((2 + length_um) / sp[2])
        dend[:, :, x0:x1] |= cross[:, :, None]
    label = 0
    for k in range(n_spines):
        d, j = divmod(k, per_dendrite)
        yc = 4.5 + d * pitch
        x = 2.5 + (j + rng.uniform(0.1, 0.9)) * (length_um - 1) / per_dendrite
        side = 1 if j % 2 else -1
        kind = rng.choice(["mushroom", "thin", "stubby"])
        neck, rn, rh = {"mushroom": (0.7, 0.15, 0.4), "thin": (1.2, 0.13, 0.22),
                        "stubby": (0.0, 0.35, 0.35)}[kind]
        direction = np.array([rng.uniform(-0.3, 0.3), side, rng.uniform(-0.3, 0.3)])
        direction /= np.linalg.norm(direction)
        base = np.array([zc, yc, x]) + 0.8 / np.linalg.norm(direction[:2]) * direction
        end = base + neck * direction
        head = end + rh * direction
        lo = np.maximum(((np.minimum(base, head) - rh - 0.6) / sp).astype(int), 0)
        hi = np.minimum(((np.maximum(base, head) + rh + 0.6) / sp).astype(int) + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        z, y, xg = np.meshgrid(*[np.arange(a, b) * s for a, b, s in zip(lo, hi, sp)], indexing="ij")
        p = np.stack([z, y, xg], -1)
        ab = end - (base - 0.8 * direction)
        t = np.clip(((p - (base - 0.8 * direction)) @ ab) / (ab @ ab), 0, 1)
        on_neck = np.linalg.norm(p - (base - 0.8 * direction + t[..., None] * ab), axis=-1) <= rn
        on_head = np.linalg.norm(p - head, axis=-1) <= rh
        shape_mask = (on_neck | on_head) & ~dend[box] & (spines[box] == 0)
        if shape_mask.any():
            label += 1
            spines[box][shape_mask] = label
    image = (dend * 120 + (spines > 0) * 200 + rng.normal(20, 5, shape)).clip(0, 255).astype(np.uint8)
    return spines, dend, image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spines", type=int, default=2000)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    spines, dend, image = synthetic_volume(args.spines)
    t_build = time.perf_counter() - t0
    n = int(spines.max())
    rows = []

    def timed(name, func):
        w0, c0 = time.perf_counter(), time.process_time()
        out = func()
        rows.append((name, time.perf_counter() - w0, time.process_time() - c0))
        return out

    skel = timed("dendrite skeleton", lambda: dendrite_skeleton(dend, SPACING))
    table = timed("measure_spines (skeleton given)",
                  lambda: measure_spines(spines, dend, SPACING, skeleton=skel))
    timed("measure_spines + intensities",
          lambda: measure_spines(spines, dend, SPACING, image=image, skeleton=skel))
    timed("measure_dendrites", lambda: measure_dendrites(dend, SPACING, table, skeleton=skel))
    rows.append(("spine table from labels (total)", rows[0][1] + rows[1][1], rows[0][2] + rows[1][2]))
    print(f"volume {spines.shape} voxels ({spines.size / 1e6:.1f} M), {n} spines, "
          f"voxel {SPACING} µm; built in {t_build:.1f} s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"{'stage':36s} {'wall s':>8s} {'CPU s':>8s} {'ms/spine':>9s}")
    for name, wall, cpu in rows:
        print(f"{name:36s} {wall:8.2f} {cpu:8.2f} {1000 * wall / n:9.2f}")
    total = rows[-1][1]
    print(f"target: spine table for 2000 spines < 20 s wall: {'PASS' if total < 20 else 'FAIL'}")
    print("types:", table["type"].value_counts().to_dict())


if __name__ == "__main__":
    main()
