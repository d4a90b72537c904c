"""Dendrite pieces bridged across bright gaps, kept apart across dark ones."""

import numpy as np

from spinequant.instances import InstanceConfig, spine_instances
from spinequant.instances.bridges import bridge_bright_gaps

SPACING = (0.5, 0.1, 0.1)


def _shaft(gap_value):
    """A shaft along x whose map is broken at x = 40-55 (1.5 µm); the image there is
    ``gap_value`` (a bright swelling or a dark gap); background 100, shaft 1000."""
    image = np.full((6, 40, 100), 100.0)
    image[2:4, 18:22, :] = 1000.0
    image[2:4, 16:24, 40:56] = gap_value
    dendrite = np.zeros(image.shape, bool)
    dendrite[2:4, 18:22, :] = True
    dendrite[:, :, 40:56] = False
    return image, dendrite


def test_a_map_broken_at_a_bright_swelling_is_one_dendrite_again():
    image, dendrite = _shaft(2500.0)
    labels = spine_instances(np.zeros(image.shape, np.float32), dendrite, spacing=SPACING, image=image,
                             config=InstanceConfig(min_dendrite_volume_um3=0.01)).dendrite_labels
    assert labels.max() == 1 and (labels[:, 16:24, 48] == 1).any()   # the bridge is drawn in
    # without the image (or with bridging off) the pieces stay apart
    apart = spine_instances(np.zeros(image.shape, np.float32), dendrite, spacing=SPACING,
                            config=InstanceConfig(min_dendrite_volume_um3=0.01)).dendrite_labels
    assert apart.max() == 2


def test_a_dark_gap_or_a_long_one_keeps_two_dendrites():
    image, dendrite = _shaft(150.0)
    labels = bridge_bright_gaps(dendrite.astype(int) * (1 + (np.arange(100) > 50)), image, SPACING)
    assert labels.max() == 2
    image, dendrite = _shaft(2500.0)
    pieces = dendrite.astype(int) * (1 + (np.arange(100) > 50))
    assert bridge_bright_gaps(pieces, image, SPACING, max_gap_um=1.0).max() == 2


def test_two_parallel_dendrites_are_not_joined():
    image = np.full((4, 60, 80), 100.0)
    labels = np.zeros(image.shape, int)
    for k, y in enumerate((10, 30), start=1):       # 2 µm apart, dark between
        image[1:3, y:y + 4, :] = 1000.0
        labels[1:3, y:y + 4, :] = k
    assert bridge_bright_gaps(labels, image, SPACING).max() == 2
