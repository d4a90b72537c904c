"""``report.html``: one self-contained page (figures embedded) that opens offline."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

from .._atomic import atomic_path
from .figures import TYPE_COLOURS, density_chart, histograms, overview

FIGURES = {"overview.png": "Spines and dendrites", "histograms.png": "Spine measurements",
           "density.png": "Spine density per dendrite"}


def _save_png(fig, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return data


def write_report(out_dir, result, *, source: dict | None = None) -> Path:
    """Write PNG figures and ``report.html`` for an :class:`AnalysisResult` into ``out_dir``."""
    from .. import __version__
    from ..config import config_to_dict

    out_dir = Path(out_dir)
    figs = {
        "overview.png": overview(result.image, result.spine_labels, result.dendrite_labels,
                                 result.spines, result.spacing),
        "histograms.png": histograms(result.spines),
        "density.png": density_chart(result.dendrites),
    }
    images = {name: _save_png(fig, out_dir / name) for name, fig in figs.items()}
    spines = result.spines
    counts = spines["type"].value_counts().to_dict() if len(spines) and "type" in spines else {}
    axes = "(z, y, x)" if result.image.ndim == 3 else "(y, x)"
    kind = "" if result.image.ndim == 3 else " a 2D image (no z),"
    legend = " ".join(
        f'<span style="color:{c}">&#9632;</span> {t} ({counts.get(t, 0)})'
        for t, c in TYPE_COLOURS.items() if t != "unknown")
    body = [
        "<h1>spinequant report</h1>",
        f"<p><b>Stack:</b> {html.escape(str((source or {}).get('path', 'array')))} &nbsp; "
        f"<b>shape</b>{kind} {result.image.shape} {axes} &nbsp; <b>voxel</b> "
        f"{' × '.join(f'{s:g}' for s in result.spacing)} µm {axes} &nbsp; "
        f"<b>method</b> {html.escape(result.config.method)}</p>",
        f"<p><b>{len(spines)} spines</b> on {len(result.dendrites)} dendrite(s). {legend}. "
        f"Dendrite outline in yellow; numbers are spine ids (rows of spines.csv).</p>",
    ]
    for warning in result.diagnostics.get("warnings", []):
        body.append(f'<p style="color:#b00"><b>Warning:</b> {html.escape(warning)}</p>')
    bodies = result.diagnostics.get("segment", {}).get("cell_bodies")
    if bodies:
        body.append(f"<p><b>Cell bodies:</b> {html.escape(bodies['note'])}.</p>")
    if result.config.min_confidence is not None:
        dropped = result.diagnostics.get("below_min_confidence")
        how = ("learnt from each candidate's measurements on annotated real images and phantoms"
               if dropped is not None else "calibrated on annotated real images")
        left_out = (f"{dropped} candidate spine{'s' if dropped != 1 else ''} below "
                    f"{result.config.min_confidence:g} were left out" if dropped is not None
                    else f"spines below {result.config.min_confidence:g} were left out")
        body.append(
            f"<p><b>Confidence:</b> each spine's probability that a human would mark it (column "
            f"<code>confidence</code>, {how}); {left_out} (--min-confidence).</p>")
    for name, title in FIGURES.items():
        b64 = base64.b64encode(images[name]).decode()
        body.append(f"<h2>{title}</h2><img src=\"data:image/png;base64,{b64}\" alt=\"{name}\">")
    if len(result.dendrites):
        body.append("<h2>Dendrites</h2>" + result.dendrites.to_html(index=False, float_format="%.3g"))
    if len(spines):
        cols = [c for c in ("id", "dendrite_id", "confidence", "type", "volume_um3", "area_um2", "length_um", "head_diameter_um",
                            "neck_length_um", "neck_min_diameter_um", "head_neck_ratio", "has_neck",
                            "position_um", "type_rule")
                if c in spines and spines[c].notna().any()]
        morph = result.config.morphology
        body.append(
            "<h2>Spines</h2>"
            f"<p>A neck shorter than {morph.min_neck_length_um:g} µm is not resolved (neck_length_um "
            f"0); such a spine still has a neck (has_neck) when its head is at least "
            f"{morph.hidden_neck_ratio:g} times wider than where it meets the dendrite, a neck "
            f"hidden by the microscope's blur, so a mushroom spine may show neck length 0. "
            f"head_neck_ratio is the head's diameter over the neck's narrowest; see "
            f"docs/measurements.md.</p>" + spines[cols].to_html(index=False, float_format="%.3g"))
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    body.append(f"<h2>Run</h2><p>spinequant {__version__}, {time.strftime('%Y-%m-%d %H:%M')}. "
                f"Stage times: {timings}</p>")
    config = config_to_dict(result.config)
    if result.config.method != "classical":
        config.pop("classical", None)   # settings of a method that did not run
    params = json.dumps({"config": config, "chosen from the data": result.diagnostics},
                        indent=1, default=str)
    body.append(f"<details><summary>All parameters</summary><pre>{html.escape(params)}</pre></details>")
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>spinequant report</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
            "img{max-width:100%}table{border-collapse:collapse;font-size:12px}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    path = out_dir / "report.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path
