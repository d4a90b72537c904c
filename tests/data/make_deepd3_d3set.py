"""Writes ``deepd3_numpy1.d3set.gz``: a .d3set saved as DeepD3's own tooling saves one.

Run in an environment like DeepD3's (made for the fixture with numpy 1.26.4, pandas 2.2.3,
flammkuchen 1.0.3 and tables 3.11.1; no spinequant code involved), then gzip the file (-9 -n):

    python make_deepd3_d3set.py deepd3_numpy1.d3set && gzip -9 -n deepd3_numpy1.d3set

Two stacks, each a meta row built as a one-row DataFrame and concatenated as DeepD3 assembles a
set from its d3data files (so the index is 0, 0), saved with Blosc compression.
"""

import sys


def main(out):
    import flammkuchen as fl
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    data = {"stacks": {}, "dendrites": {}, "spines": {}}
    rows = []
    for i, (shape, xy, z) in enumerate([((3, 20, 24), 0.094, 0.5), ((2, 18, 30), 0.12, 1.0)]):
        image = rng.integers(0, 4000, shape).astype(np.uint16)
        data["stacks"][f"x{i}"] = image
        data["dendrites"][f"x{i}"] = image > 2500
        data["spines"][f"x{i}"] = image > 3500
        rows.append(pd.DataFrame({"Resolution_XY": xy, "Resolution_Z": z, "Timestamp": "20220101_120000",
                                  "Generated_from": f"stack{i}.tif", "crop": False, "X": 0, "Y": 0,
                                  "Width": shape[2], "Height": shape[1], "Depth": shape[0], "Z_begin": 0,
                                  "Z_end": shape[0]}, index=[0]))
    fl.save(out, {"data": data, "meta": pd.concat(rows)}, compression="blosc")


if __name__ == "__main__":
    main(sys.argv[1])
