"""The sample-data contribution: the bundled two-photon stack with its voxel size."""

from __future__ import annotations

from ..data import SAMPLE_ATTRIBUTION, sample_stack


def sample_data() -> list[tuple]:
    stack = sample_stack()
    return [(stack.data, {"name": "spinequant sample", "scale": tuple(stack.spacing),
                          "metadata": {"attribution": SAMPLE_ATTRIBUTION, "spacing_um": tuple(stack.spacing)}},
             "image")]
