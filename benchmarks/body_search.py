"""Peak memory and time of the search for cell bodies on coarse grids of growing size, with the
distance transforms in slabs (``BODY_SLAB_BINS``) and, for the figure before, in one piece
(docs/scale.md, "Cell bodies in volumes up to 2^28 coarse bins").

    python benchmarks/body_search.py                     # the table: 2^25, 2^27, 2^28 bins, slabs and whole

Each row runs in a fresh process (``OMP_NUM_THREADS=1``): a uint16 coarse grid (planes x
rows x columns of 0.376 µm bins, 0.5 µm planes: the bins of a 0.094 µm stack) of noise with
three bright balls of 6 µm radius (cell bodies), a sample of 2^20 values with their bins, then
:func:`~spinequant.segment.neural.bodies.levels_outside_bodies`,
:meth:`~spinequant.segment.neural.bodies.CellBodies.from_cores` and its summary, as a run
does once the grid is read. Printed: the time of the search, the peak resident memory above
the grid itself (``ru_maxrss`` after the grid was made, and at the end), and the bodies found.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

SPACING = (0.5, 0.376, 0.376)
SHAPES = {25: (32, 1024, 1024), 27: (32, 2048, 2048), 28: (64, 2048, 2048)}


def one(log2_bins: int, whole: bool) -> dict:
    import numpy as np

    from spinequant.segment.neural import bodies as search
    from spinequant.segment.neural.normalise import NormaliseConfig

    if whole:
        search.BODY_SLAB_BINS = 2 ** 40
    shape = SHAPES[log2_bins]
    rng = np.random.default_rng(0)
    coarse = np.empty(shape, np.uint16)
    for z in range(shape[0]):
        coarse[z] = rng.integers(100, 400, shape[1:], dtype=np.uint16)
    for centre in [(0.5, 0.25, 0.25), (0.5, 0.5, 0.75), (0.3, 0.8, 0.4)]:
        c = [f * n * s for f, n, s in zip(centre, shape, SPACING)]
        box = tuple(slice(max(0, int((ci - 6.0) / s)), min(n, int((ci + 6.0) / s) + 2))
                    for ci, s, n in zip(c, SPACING, shape))
        z, y, x = (np.arange(b.start, b.stop) * s - ci for b, s, ci in zip(box, SPACING, c))
        ball = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2 <= 36.0
        coarse[box][ball] = 3000
    cell = tuple(rng.integers(0, n, 2 ** 20) for n in shape)
    values = coarse[cell].astype(np.float32)
    grid_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    config = NormaliseConfig(body_radius_um=4.0)
    levels, cores = search.levels_outside_bodies(values, cell, coarse, SPACING, config)
    found = search.CellBodies.from_cores(cores, SPACING, config.body_radius_um, 4).summary((0.5, 0.094, 0.094))
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"bins": int(np.prod(shape)), "shape": shape, "distance transforms": "whole" if whole else "slabs",
            "seconds": round(seconds, 1), "grid_and_imports_mb": round(grid_mb), "peak_mb": round(peak),
            "search_mb": round(peak - grid_mb), "bodies": found["found"]}


def main() -> None:
    if len(sys.argv) == 3:
        print(json.dumps(one(int(sys.argv[1]), sys.argv[2] == "whole")))
        return
    rows = []
    for log2, whole in [(25, True), (25, False), (27, True), (27, False), (28, False)]:
        out = subprocess.run([sys.executable, __file__, str(log2), "whole" if whole else "slabs"], check=True,
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| bins | distance transforms | search s | grid and imports MB | peak MB | search MB above the grid | bodies |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| 2^{r['bins'].bit_length() - 1} | {r['distance transforms']} | {r['seconds']} | "
              f"{r['grid_and_imports_mb']:,} | {r['peak_mb']:,} | {r['search_mb']:,} | {r['bodies']} |")


if __name__ == "__main__":
    main()
