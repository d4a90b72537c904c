"""Convolutions that share their filters over the eight orientations of the pixel grid (p4m).

A spine is a spine whether its dendrite runs left, right, up or down or is seen in a mirror, and
a plain network has to learn that anew in every orientation (docs/real_data.md, "A capacity
drill": it holds 28 fields' marks at 0.88 under scale jitter alone but at 0.77-0.80 once they are
turned and mirrored). Group convolutions (Cohen & Welling 2016, "Group equivariant convolutional
networks") build the symmetry in: every feature exists in the eight orientations of the group
p4m (quarter turns, each with and without a mirror image), filters are stored once and turned
into the eight, and a turned or mirrored input gives the turned or mirrored output exactly.

Feature maps are "regular" fields: channel ``c * 8 + h`` holds field ``c`` seen in orientation
``h``. Each layer keeps its shared weights and builds the ordinary convolution weight from them
(:meth:`expanded`), so a trained network turns into plain ``Conv2d``/``BatchNorm2d`` layers
(:func:`materialise`) and runs, fuses and exports to ONNX like any other.

Space to depth is part of the grid: a 2x2 block of pixels folded into four channels is turned
and mirrored with the image, so the lifting layer's filters are kept at full resolution (a
``k*s`` square, centred on the block) and folded after turning.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: Orientations in the group: four quarter turns, each with and without a mirror image.
ORDER = 8


def transform(k: torch.Tensor, g: int) -> torch.Tensor:
    """Element ``g`` (0-7) of p4m applied to the last two axes: mirror if g >= 4, then g % 4 quarter turns."""
    mirror, turns = divmod(g, 4)
    if mirror:
        k = torch.flip(k, dims=(-1,))
    return torch.rot90(k, turns, dims=(-2, -1))


def _group_table() -> tuple[list[list[int]], list[int]]:
    """Products (``transform(transform(k, h), g) == transform(k, mul[g][h])``) and inverses,
    read off the array transforms themselves so that they agree with them by construction."""
    probe = torch.arange(9.0).reshape(3, 3)   # no symmetry: the eight images differ
    images = [transform(probe, g) for g in range(ORDER)]

    def which(a):
        return next(i for i, b in enumerate(images) if torch.equal(a, b))

    mul = [[which(transform(images[h], g)) for h in range(ORDER)] for g in range(ORDER)]
    inv = [mul[g].index(0) for g in range(ORDER)]
    return mul, inv


MUL, INV = _group_table()
# For output orientation h, input orientation k meets the shared filter slice h^-1 k.
_PERMUTATION = torch.tensor([[MUL[INV[h]][k] for k in range(ORDER)] for h in range(ORDER)])


def _kaiming(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape) * (2.0 / fan_in) ** 0.5)


class GroupConv(nn.Module):
    """Regular fields in, regular fields out: ``cin`` fields -> ``cout`` fields, k x k, no bias."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.cin, self.cout, self.kernel = cin, cout, kernel
        self.weight = _kaiming((cout, cin, ORDER, kernel, kernel), cin * ORDER * kernel * kernel)

    def expanded(self) -> torch.Tensor:
        per_h = [transform(self.weight[:, :, _PERMUTATION[h]], h).reshape(self.cout, -1, self.kernel, self.kernel)
                 for h in range(ORDER)]
        return torch.stack(per_h, dim=1).reshape(self.cout * ORDER, self.cin * ORDER, self.kernel, self.kernel)

    def forward(self, x):
        return F.conv2d(x, self.expanded(), padding=self.kernel // 2)

    def to_plain(self) -> nn.Conv2d:
        return _plain_conv(self.expanded(), self.kernel // 2, groups=1)


class GroupDepthwise(nn.Module):
    """One k x k filter per field, turned into each orientation: the depthwise half of a
    separable group convolution."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.channels, self.kernel = channels, kernel
        self.weight = _kaiming((channels, 1, kernel, kernel), kernel * kernel)

    def expanded(self) -> torch.Tensor:
        per_h = [transform(self.weight, h) for h in range(ORDER)]
        return torch.stack(per_h, dim=1).reshape(self.channels * ORDER, 1, self.kernel, self.kernel)

    def forward(self, x):
        return F.conv2d(x, self.expanded(), padding=self.kernel // 2, groups=self.channels * ORDER)

    def to_plain(self) -> nn.Conv2d:
        return _plain_conv(self.expanded(), self.kernel // 2, groups=self.channels * ORDER)


class LiftConv(nn.Module):
    """Scalar images in (``planes`` of them, folded ``fold`` x ``fold`` into channels), regular
    fields out. The filter of each field is a (kernel * fold)-pixel square at full resolution,
    centred on the folded block, so that turning it is turning the image."""

    def __init__(self, planes: int, cout: int, kernel: int, fold: int):
        super().__init__()
        self.planes, self.cout, self.kernel, self.fold = planes, cout, kernel, fold
        side = kernel * fold
        self.weight = _kaiming((cout, planes, side, side), planes * side * side)

    def expanded(self) -> torch.Tensor:
        k, s = self.kernel, self.fold
        per_h = []
        for h in range(ORDER):
            w = transform(self.weight, h).reshape(self.cout, self.planes, k, s, k, s)
            # full-resolution pixel (a*s + p, b*s + q) -> folded channel plane*s*s + p*s + q at (a, b),
            # the order pixel_unshuffle gives
            per_h.append(w.permute(0, 1, 3, 5, 2, 4).reshape(self.cout, self.planes * s * s, k, k))
        return torch.stack(per_h, dim=1).reshape(self.cout * ORDER, self.planes * s * s, k, k)

    def forward(self, x):
        return F.conv2d(x, self.expanded(), padding=self.kernel // 2)

    def to_plain(self) -> nn.Conv2d:
        return _plain_conv(self.expanded(), self.kernel // 2, groups=1)


class InvariantHead(nn.Module):
    """Regular fields in, ``maps`` scalar maps out at full resolution (``fold`` x ``fold``
    sub-pixel channels for pixel_shuffle), with bias: the output does not turn, it is turned."""

    def __init__(self, cin: int, maps: int, fold: int):
        super().__init__()
        self.cin, self.maps, self.fold = cin, maps, fold
        self.weight = _kaiming((maps, cin, fold, fold), cin * ORDER)
        self.bias = nn.Parameter(torch.zeros(maps))

    def expanded(self) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.fold
        per_h = torch.stack([transform(self.weight, h) for h in range(ORDER)], dim=2)   # maps, cin, 8, s, s
        weight = per_h.reshape(self.maps, self.cin * ORDER, s * s).permute(0, 2, 1)
        return (weight.reshape(self.maps * s * s, self.cin * ORDER, 1, 1),
                self.bias.repeat_interleave(s * s))

    def forward(self, x):
        weight, bias = self.expanded()
        return F.conv2d(x, weight, bias)

    def to_plain(self) -> nn.Conv2d:
        weight, bias = self.expanded()
        conv = _plain_conv(weight, 0, groups=1, bias=True)
        conv.bias.data.copy_(bias.detach())
        return conv


class GroupBatchNorm(nn.Module):
    """Batch norm with one mean, variance, scale and shift per field, shared by its eight
    orientations (separate statistics would let the orientations drift apart)."""

    def __init__(self, fields: int):
        super().__init__()
        self.fields = fields
        self.norm = nn.BatchNorm3d(fields)

    def forward(self, x):
        n, c, h, w = x.shape
        return self.norm(x.reshape(n, self.fields, ORDER, h, w)).reshape(n, c, h, w)

    def to_plain(self) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(self.fields * ORDER, eps=self.norm.eps, momentum=self.norm.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).data.copy_(getattr(self.norm, name).detach().repeat_interleave(ORDER))
        bn.num_batches_tracked.data.copy_(self.norm.num_batches_tracked)
        return bn


def _plain_conv(weight: torch.Tensor, padding: int, groups: int, bias: bool = False) -> nn.Conv2d:
    cout, cin_per_group, k, _ = weight.shape
    conv = nn.Conv2d(cin_per_group * groups, cout, k, padding=padding, groups=groups, bias=bias)
    conv.weight.data.copy_(weight.detach())
    return conv


GROUP_LAYERS = (GroupConv, GroupDepthwise, LiftConv, InvariantHead, GroupBatchNorm)


def materialise(net: nn.Module) -> nn.Module:
    """Replace, in place, every group layer of ``net`` by the plain layer it computes; returns
    ``net``. The outputs do not change; the weights are no longer tied."""
    for name, child in list(net.named_children()):
        if isinstance(child, GROUP_LAYERS):
            setattr(net, name, child.to_plain().train(child.training))
        else:
            materialise(child)
    return net
