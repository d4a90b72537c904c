"""Inference speed of the neural models on this machine's CPU.

    .venv/bin/python benchmarks/neural_speed.py [--threads 2] [--seconds 5] [--no-stack]

1. Tiles per second for 128 x 128 tiles (batch 16) through DeepD3's architectures (32, 16 and
   8 base filters, rebuilt in PyTorch) and ours (lean2d: depthwise-separable convolutions at
   half resolution, one neighbouring plane each side; lean2d_points_p4m: filters shared over the
   grid's eight orientations, four fields each). Each network, batch norm folded into its
   convolutions as ``predict`` runs it, is timed in PyTorch with
   and without channels_last (the better one is reported) and, when onnxruntime is
   installed, in ONNX Runtime; the median of repeated runs is reported.
2. End to end: ``predict`` on a 101 x 1024 x 1024 stack at the model's own voxel size
   (normalisation, tiling with overlap and blending), per engine, voxels per second and peak
   memory.

Reference (from the issue): DeepD3's own TensorFlow 32-filter model runs 12-20 tiles/s on
this machine at 2 threads, its 16-filter model about 49 and its 8-filter model about 95.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import numpy as np
import torch

from spinequant.segment.neural import ModelCard, available_models, build, predict, save_model
from spinequant.segment.neural.architectures import PRESETS, architecture, fuse_for_inference

NETS = ["deepd3_32", "deepd3_16", "deepd3_8", "lean2d", "lean2d_points", "lean2d_points_p4m"]


def tiles_per_second(name: str, *, seconds: float, batch: int = 16) -> tuple[float, bool]:
    spec = architecture(name)
    channels = 2 * spec.get("z_context", 0) + 1
    best = (0.0, False)
    for channels_last in (False, True):
        net = fuse_for_inference(build(spec))   # as predict runs it: batch norm folded, shared filters expanded
        x = torch.randn(batch, channels, 128, 128)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        rates = []
        with torch.inference_mode():
            net(x)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end or len(rates) < 3:
                t = time.perf_counter()
                net(x)
                rates.append(batch / (time.perf_counter() - t))
        best = max(best, (statistics.median(rates), channels_last))
    return best


def onnx_tiles_per_second(name: str, *, seconds: float, batch: int = 16) -> float:
    """The same timing through ONNX Runtime (untrained weights time the same)."""
    from spinequant.segment.neural.onnx_runtime import export_onnx, make_onnx_runner

    spec = architecture(name)
    x = np.random.default_rng(0).normal(size=(batch, 2 * spec.get("z_context", 0) + 1, 128, 128))
    x = x.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        save_model(build(spec).eval(), ModelCard(name, spec, (0.5, 0.094, 0.094)), f"{tmp}/m")
        run = make_onnx_runner(export_onnx(f"{tmp}/m.json", check=False), threads=torch.get_num_threads())
        run(x)
        rates = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(rates) < 3:
            t = time.perf_counter()
            run(x)
            rates.append(batch / (time.perf_counter() - t))
    return statistics.median(rates)


def end_to_end(model, engine: str, shape=(101, 1024, 1024)) -> dict:
    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, size=shape, dtype=np.uint16)
    t = time.perf_counter()
    dend, spine = predict(image, spacing=(0.5, 0.094, 0.094), model=model, engine=engine)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "voxels_per_s": image.size / seconds,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0, help="timing per network and layout")
    ap.add_argument("--nets", nargs="*", default=NETS, choices=sorted(PRESETS))
    ap.add_argument("--no-stack", action="store_true", help="skip the 101 x 1024 x 1024 run")
    args = ap.parse_args()
    from spinequant.segment.neural.onnx_runtime import onnxruntime_available

    torch.set_num_threads(args.threads)
    ort = onnxruntime_available()
    print(f"torch {torch.__version__}, {args.threads} threads, onnxruntime {'yes' if ort else 'not installed'}")
    for name in args.nets:
        n_params = sum(p.numel() for p in build(name).parameters())
        rate, cl = tiles_per_second(name, seconds=args.seconds)
        line = (f"{name:10s} {n_params / 1e6:6.3f} M parameters  PyTorch {rate:7.1f} tiles/s (128x128"
                f"{', channels_last' if cl else ''})")
        if ort:
            line += f"  ONNX Runtime {onnx_tiles_per_second(name, seconds=args.seconds):7.1f} tiles/s"
        print(line, flush=True)
    if not args.no_stack:
        model = "lean2d" if "lean2d" in available_models() else None
        with tempfile.TemporaryDirectory() as tmp:
            if model is None:   # untrained weights time the same
                spec = architecture("lean2d")
                save_model(build(spec).eval(), ModelCard("lean2d", spec, (0.5, 0.094, 0.094)), f"{tmp}/m")
                model = f"{tmp}/m.json"
            for engine in ("torch", "onnx") if ort and model == "lean2d" else ("torch",):
                r = end_to_end(model, engine)
                print(f"lean2d end to end ({engine}), 101x1024x1024 uint16: {r['seconds']:.1f} s, "
                      f"{r['voxels_per_s'] / 1e6:.2f} M voxels/s, peak memory {r['peak_rss_gb']:.2f} GB",
                      flush=True)


if __name__ == "__main__":
    main()
