"""WNet3D (CellSeg3D, Achard et al. 2024, after Xia & Kulis' W-Net): two 3D U-Nets end to end.

The encoder U-Net turns a volume into a soft class map (softmax over ``n_classes``); the
decoder U-Net reconstructs the volume from that map. It learns without labels: a soft
normalised cut (SoftNCuts) on the class map groups voxels of similar brightness that lie
close together, and a reconstruction loss keeps the classes tied to the image. As in the
paper: three down/up-sampling steps per U-Net, two 3x3x3 convolutions + ReLU + group
normalisation per block, 2x2x2 max pooling, 2x2x2 transposed convolutions, skip connections
by concatenation, both losses summed in one backward pass.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    g = max(1, min(groups, cout))
    while cout % g:
        g -= 1
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.GroupNorm(g, cout),
                         nn.Conv3d(cout, cout, 3, padding=1), nn.ReLU(inplace=True), nn.GroupNorm(g, cout))


class UNet3DBlocks(nn.Module):
    """A 3D U-Net with ``depth`` pooling steps, ending in a 1x1x1 convolution to ``cout`` maps."""

    def __init__(self, cin: int, cout: int, base_filters: int, depth: int, groups: int):
        super().__init__()
        widths = [base_filters * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(cin if i == 0 else widths[i - 1], widths[i], groups) for i in range(depth)])
        self.bottom = _block(widths[depth - 1], widths[depth], groups)
        self.up = nn.ModuleList([nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([_block(2 * widths[i], widths[i], groups) for i in reversed(range(depth))])
        self.out = nn.Conv3d(widths[0], cout, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool3d(x, 2)
        x = self.bottom(x)
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.out(x)


class WNet3D(nn.Module):
    """Encoder U-Net -> softmax class map -> decoder U-Net -> reconstruction.

    ``forward`` returns the encoder's logits (N, n_classes, ...) only, so that inference and
    the supervised networks share one interface; :meth:`forward_train` returns
    (class probabilities, reconstruction) for the self-supervised losses.
    """

    def __init__(self, n_classes: int = 2, base_filters: int = 8, depth: int = 3, groups: int = 2):
        super().__init__()
        self.encoder = UNet3DBlocks(1, n_classes, base_filters, depth, groups)
        self.decoder = UNet3DBlocks(n_classes, 1, base_filters, depth, groups)

    def forward(self, x):
        return self.encoder(unit_range(x))

    def forward_train(self, x):
        """(class probabilities, reconstruction, the input remapped to [0, 1] per volume)."""
        unit = unit_range(x)
        probs = torch.softmax(self.encoder(unit), dim=1)
        return probs, self.decoder(probs), unit


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """Each volume of a batch remapped to [0, 1] (CellSeg3D remaps every volume to a fixed range)."""
    lo = x.amin(dim=(2, 3, 4), keepdim=True)
    return (x - lo) / (x.amax(dim=(2, 3, 4), keepdim=True) - lo).clamp_min(1e-6)


def _offsets(radius: int):
    r = int(radius)
    for d in itertools.product(range(-r, r + 1), repeat=3):
        if any(d) and sum(v * v for v in d) <= r * r:
            yield d


def _shift(t: torch.Tensor, d, r: int) -> torch.Tensor:
    """``t`` (N, C, Z, Y, X) padded by ``r`` with zeros, cut at offset ``d``: t[x + d]."""
    z, y, x = t.shape[-3:]
    p = F.pad(t, (r, r, r, r, r, r))
    return p[..., r + d[0]:r + d[0] + z, r + d[1]:r + d[1] + y, r + d[2]:r + d[2] + x]


def soft_ncut_loss(probs: torch.Tensor, image: torch.Tensor, *, radius: int = 2, sigma_intensity: float = 1.0,
                   sigma_spatial: float = 4.0) -> torch.Tensor:
    """SoftNCuts of a soft class map: K - sum_k assoc(A_k, A_k) / assoc(A_k, V), mean over the batch.

    ``probs`` (N, K, Z, Y, X) class probabilities, ``image`` (N, 1, Z, Y, X) the intensities
    the edge weights compare (CellSeg3D remaps each volume to [0, 100] and uses sigma 1 for
    the intensity, 4 for the distance, radius 2 voxels). The edge weight of voxels u, v closer
    than ``radius`` is exp(-|I(u) - I(v)|^2 / sigma_I^2) * exp(-|u - v|^2 / sigma_X^2); pairs
    outside the volume do not count. 0 for a hard partition into regions that no edge
    joins; 1 for two classes at 0.5 everywhere.
    """
    r = int(radius)
    valid = torch.ones_like(image)
    assoc_in = torch.zeros(probs.shape[:2], dtype=probs.dtype, device=probs.device)
    assoc_all = torch.zeros_like(assoc_in)
    dims = (2, 3, 4)
    for d in _offsets(r):
        w = torch.exp(-(image - _shift(image, d, r)) ** 2 / sigma_intensity ** 2) * _shift(valid, d, r)
        w = w * float(torch.exp(torch.tensor(-sum(v * v for v in d) / sigma_spatial ** 2)))
        assoc_in = assoc_in + (probs * w * _shift(probs, d, r)).sum(dim=dims)
        assoc_all = assoc_all + (probs * w).sum(dim=dims)
    ratio = assoc_in / assoc_all.clamp_min(1e-8)
    return (probs.shape[1] - ratio.sum(dim=1)).mean()


def foreground_class(probs: torch.Tensor, image: torch.Tensor) -> int:
    """The class whose voxels are brightest on average (probability-weighted): the cells."""
    weight = probs.sum(dim=(0, 2, 3, 4)).clamp_min(1e-8)
    mean = (probs * image).sum(dim=(0, 2, 3, 4)) / weight
    return int(torch.argmax(mean))
