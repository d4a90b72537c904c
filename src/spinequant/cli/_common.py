"""Arguments shared by subcommands that read a stack."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voxel-size", nargs="+", type=float, metavar="UM",
                        help="voxel size in µm, overriding the file's metadata: Z Y X for a stack, "
                             "Y X for a 2D image (PNG, JPEG, one plane) or a projection")
    parser.add_argument("--channel", type=int, default=None, metavar="C",
                        help="channel to analyse (0-based) when the stack has several")
    parser.add_argument("--time", type=int, default=None, metavar="T",
                        help="time point to analyse (0-based) when the stack has several")
    parser.add_argument("--image", default=None, metavar="N",
                        help="image to read when a CZI/LIF/ND2 file holds several (scene, series or "
                             "stage position): its index, or for LIF its name")
    parser.add_argument("--allow-incomplete", action="store_true",
                        help="read a truncated or incomplete file (missing planes, chunks or rows "
                             "become zeros) with a warning, instead of refusing it; recorded in run.json")


def add_block_arguments(parser: argparse.ArgumentParser, *, default_chunk_px: int, memory_model: str) -> None:
    """The options of a block-wise (``--chunked``) run: block size, memory budget, Dask."""
    parser.add_argument("--chunk-size", type=int, default=None, metavar="PX",
                        help=f"--chunked: edge of a block in y and x, in pixels (default {default_chunk_px})")
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="--chunked: choose the block size so that a worker's predicted peak memory "
                             f"stays under SIZE (e.g. 4GB; {memory_model}); not with --chunk-size")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="--chunked: run the blocks on a local Dask cluster of N processes (needs "
                             "the 'distributed' package: pip install 'spinequant[scale]')")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="--chunked: run the blocks on a running Dask cluster (tcp://HOST:PORT of its "
                             "scheduler; SLURM/PBS via dask-jobqueue, Kubernetes: docs/scale.md)")


def stack_path(name: str) -> Path:
    """The path a user named; the word ``sample`` means the bundled sample stack."""
    from ..data import SAMPLE_NAME, sample_path

    path = Path(name)
    if name == SAMPLE_NAME and not path.exists():
        return Path(str(sample_path()))
    return path


def image_choice(value):
    """``--image`` as an int when it is a number, else a (LIF image) name."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value
