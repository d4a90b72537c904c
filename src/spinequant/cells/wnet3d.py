"""WNet3D (CellSeg3D, Achard et al. 2024, after Xia & Kulis' W-Net): two 3D U-Nets end to end.

The encoder U-Net turns a volume into a soft class map (softmax over ``n_classes``); the
decoder U-Net reconstructs the volume from that map. It learns without labels: a soft
normalised cut (SoftNCuts) on the class map groups voxels of similar brightness that lie
close together, and a reconstruction loss keeps the classes tied to the image. As in the
paper: two 3x3x3 convolutions + ReLU + group normalisation per block, 2x2x2 max pooling,
2x2x2 transposed convolutions, skip connections by concatenation, both losses summed in one
backward pass; the number of down/up-sampling steps is ``depth`` (the paper's 3; spinequant's
CPU-sized default in ``networks.CELL_ARCHITECTURES`` uses 2).
"""

from __future__ import annotations

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
    (class probabilities, reconstruction) for the self-supervised losses. The input is the
    volume after spinequant's percentile normalisation (1st percentile -> -1, 99.9th -> 1), the
    same for every patch and tile of a volume.
    """

    def __init__(self, n_classes: int = 2, base_filters: int = 8, depth: int = 3, groups: int = 2):
        super().__init__()
        self.encoder = UNet3DBlocks(1, n_classes, base_filters, depth, groups)
        self.decoder = UNet3DBlocks(n_classes, 1, base_filters, depth, groups)

    def forward(self, x):
        return self.encoder(x)

    def forward_train(self, x):
        """(class probabilities, reconstruction of ``x``)."""
        probs = torch.softmax(self.encoder(x), dim=1)
        return probs, self.decoder(probs)


def intensity_0_100(x: torch.Tensor) -> torch.Tensor:
    """Percentile-normalised intensities (-1 .. 1 between the volume's 1st and 99.9th
    percentiles) on the [0, 100] scale the SoftNCuts sigma refers to.

    CellSeg3D remaps each *volume* to [0, 100]. Remapping each patch or tile by its own minimum
    and maximum instead (as this module first did) stretches the noise of a patch without cells
    over the whole range, so the class map called noise cells in every empty tile.
    """
    return ((x + 1.0) * 50.0).clamp(0.0, 100.0)


def _spatial_kernel(radius: int, sigma: float, dtype) -> torch.Tensor:
    r = int(radius)
    ax = torch.arange(-r, r + 1, dtype=dtype)
    d2 = ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2
    return (torch.exp(-d2 / sigma ** 2) * (d2 <= r * r))[None, None]


def soft_ncut_loss(probs: torch.Tensor, image: torch.Tensor, *, radius: int = 2, sigma_intensity: float = 5.0,
                   sigma_spatial: float = 4.0) -> torch.Tensor:
    """SoftNCuts of a soft class map, K - sum_k assoc(A_k, A_k) / assoc(A_k, V), mean over the batch,
    in the linear-time form CellSeg3D trains with (after F. Odom's W-Net code).

    ``probs`` (N, K, Z, Y, X) class probabilities, ``image`` (N, 1, Z, Y, X) intensities on a
    [0, 100] scale. The edge weight between voxels u and v within ``radius`` voxels is
    g(u - v) * w_k(v): g a Gaussian of the distance (``sigma_spatial``) and
    w_k(v) = exp(-(I(v) - mean_k)^2 / sigma_intensity^2), how well v's brightness fits class k's
    probability-weighted mean brightness. So assoc(A_k, A_k) = sum_u p_k(u) (g * (p_k w_k))(u)
    and assoc(A_k, V) = sum_u p_k(u) (g * w_k)(u) cost two convolutions per class instead of
    one weight per voxel pair.

    Why this form: the pairwise weights exp(-|I(u) - I(v)|^2 / sigma^2) of the paper's formula
    vanish inside noisy cells (neighbours differ by more than sigma), and on the nuclei
    phantoms a split of the patch into two halves scored lower than the true cells; with
    the class-mean weights the true partition scores lowest (tests/test_cells_networks.py).
    0 for a hard partition into classes of uniform brightness; near K - 1 for a class map
    that does not commit.
    """
    r = int(radius)
    kernel = _spatial_kernel(r, sigma_spatial, probs.dtype).to(probs.device)
    dims = (1, 2, 3, 4)
    total = torch.zeros(probs.shape[0], dtype=probs.dtype, device=probs.device)
    for k in range(probs.shape[1]):
        p = probs[:, k:k + 1]
        mean = (p * image).sum(dim=dims, keepdim=True) / p.sum(dim=dims, keepdim=True).clamp_min(1e-6)
        w = torch.exp(-(image - mean) ** 2 / sigma_intensity ** 2)
        inside = (p * F.conv3d(p * w, kernel, padding=r)).sum(dim=dims)
        around = (p * F.conv3d(w, kernel, padding=r)).sum(dim=dims)
        total = total + inside / around.clamp_min(1e-8)
    return (probs.shape[1] - total).mean()


def foreground_class(probs: torch.Tensor, image: torch.Tensor) -> int:
    """The class whose voxels are brightest on average (probability-weighted): the cells."""
    weight = probs.sum(dim=(0, 2, 3, 4)).clamp_min(1e-8)
    mean = (probs * image).sum(dim=(0, 2, 3, 4)) / weight
    return int(torch.argmax(mean))
