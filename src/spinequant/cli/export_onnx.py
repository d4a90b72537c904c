"""``spinequant export-onnx MODEL``: write a model's ONNX export beside its card."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "export-onnx", help="export a model to ONNX (faster CPU inference with onnxruntime)",
        description="Export a model (shipped name, or a folder / model.json written by 'spinequant "
                    "train') to ONNX beside its card and record the file and its sha256 in the "
                    "card. 'analyze' then runs it with ONNX Runtime when that is installed "
                    "(pip install 'spinequant[onnx]'). Needs the onnx package.")
    p.add_argument("model", help="shipped model name or model folder / .json card")
    p.add_argument("--no-check", action="store_true",
                   help="skip comparing ONNX Runtime's output with PyTorch's")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..segment.neural.onnx_runtime import export_onnx

    import json

    path = export_onnx(args.model, check=not args.no_check)
    difference = json.loads(path.with_suffix(".json").read_text())["onnx"].get("max_difference_vs_torch")
    if difference is None:
        print("not checked against PyTorch (--no-check, or onnxruntime is not installed)")
    else:
        print(f"checked: ONNX Runtime's output differs from PyTorch's by at most {difference:.1e} "
              f"on a test tile (limit 1e-3)")
    print(f"written {path}")
    return 0
