"""Report of a run: PNG figures and a self-contained ``report.html``."""

from .figures import TYPE_COLOURS, density_chart, histograms, overlay_projection, overview
from .html import write_report

__all__ = ["write_report", "overview", "overlay_projection", "histograms", "density_chart", "TYPE_COLOURS"]
