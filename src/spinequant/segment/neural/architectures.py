"""Network architectures, built from a plain dict so that a model card can describe them.

* ``dual_unet2d`` -- DeepD3's dual-decoder U-Net (Fernholz et al.): a shared encoder of
  residual blocks (3x3 convolutions, batch norm before the swish activation) with max pooling,
  a latent space, and two decoders (dendrite, spine) that upsample, take the encoder's skip
  connections and end in a logistic output each. Works on 2D planes; ``z_context`` > 0 adds
  that many neighbouring planes on each side as extra input channels.
  Options for a lean variant (ours, see docs/neural.md): ``separable`` replaces each 3x3
  convolution by a depthwise 3x3 + pointwise 1x1 pair, and ``space_to_depth`` = 2 folds each
  2x2 pixel block into channels at the input and unfolds the outputs again (pixel shuffle), so
  every convolution runs at half the resolution without throwing pixels away.
  ``point_head`` adds a third output from the spine decoder: a heatmap of spine-head centres,
  trained on point annotations (a Gaussian around each annotated head, as point-supervised spot
  detectors such as Spotiflow do), whose peaks are the detected spines.
  ``symmetry`` = "p4m" shares every filter over the eight orientations of the pixel grid
  (:mod:`.group_layers`): the same graph, with ``base_filters`` counting channels (eight per
  field), so that a turned or mirrored image gives the turned or mirrored maps exactly.
* ``unet3d`` -- 3D U-Net after Vidaurre-Gallart et al. (2022): two 3x3x3 convolutions with
  ReLU per stage, max pooling that leaves z alone in the first ``aniso_stages`` stages (thick
  z steps), transposed convolutions to upsample, reflective padding, three classes
  (background, dendrite, spine) with a softmax.
* ``heads3d`` -- a head map learnt in 3D, for stacks (ours, docs/real_data.md, "A fast 3D head
  map"): ``space_to_depth`` x ``space_to_depth`` pixels of the plane folded into channels, a
  three-level U-Net (two 3x3x3 convolutions with batch norm and ReLU, pooling (1, 2, 2) then
  (2, 2, 2), transposed convolutions up, skips added) and the logits unfolded back to every
  voxel: one output, the spine-head centres. A point-head 2D network reading three planes
  merges heads that lie above one another within the PSF; this one sees the whole block.

Every network's ``forward`` returns logits; :func:`to_probabilities` turns them into the
two maps (dendrite, spine) of the package's convention.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from . import group_layers as G

# The architecture dicts and their tile geometry need no torch (an ONNX run reads them too).
from .specs import PRESETS, architecture, multiple_of, n_outputs, z_multiple_of  # noqa: F401


def build(spec: str | dict) -> nn.Module:
    """Build an untrained network from a preset name or an architecture dict."""
    spec = architecture(spec)
    args = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "dual_unet2d":
        symmetry = args.pop("symmetry")
        if symmetry == "p4m":
            return P4MDualUNet2D(**args)
        if symmetry != "none":
            raise ValueError(f"unknown symmetry {symmetry!r} (known: 'none', 'p4m')")
        return DualUNet2D(**args)
    if spec["kind"] == "unet3d":
        return UNet3D(**args)
    if spec["kind"] == "heads3d":
        return Heads3D(**args)
    raise ValueError(f"unknown architecture kind {spec['kind']!r}")


def to_probabilities(spec: dict, logits: torch.Tensor) -> torch.Tensor:
    """(N, 2 or 3, ...) probabilities (dendrite, spine[, spine head]) from a network's logits."""
    if architecture(spec)["kind"] == "unet3d":
        return torch.softmax(logits, dim=1)[:, 1:3]
    return torch.sigmoid(logits)


def _conv(cin: int, cout: int, separable: bool, padding_mode: str) -> list[nn.Module]:
    if separable:
        return [nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False, padding_mode=padding_mode),
                nn.Conv2d(cin, cout, 1, bias=False)]
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False, padding_mode=padding_mode)]


def _conv_bn(cin, cout, separable, padding_mode, act=True) -> nn.Sequential:
    layers = _conv(cin, cout, separable, padding_mode) + [nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.SiLU(inplace=True))  # swish
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """conv-BN-swish, conv-BN, plus the (1x1-projected) input, then swish."""

    def __init__(self, cin: int, cout: int, separable: bool, padding_mode: str):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, separable, padding_mode),
                                  _conv_bn(cout, cout, separable, padding_mode, act=False))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.silu(self.body(x) + self.skip(x))


class Decoder(nn.Module):
    def __init__(self, widths: list[int], latent: int, separable: bool, padding_mode: str):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = latent
        for w in reversed(widths):
            self.blocks.append(nn.Sequential(_conv_bn(cin + w, w, separable, padding_mode),
                                             _conv_bn(w, w, separable, padding_mode)))
            cin = w

    def forward(self, x, skips):
        for block, skip in zip(self.blocks, reversed(skips)):
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x


class DualUNet2D(nn.Module):
    """Shared residual encoder, latent space, two decoders (dendrite, spine)."""

    def __init__(self, base_filters=32, depth=4, separable=False, space_to_depth=1,
                 z_context=0, padding_mode="zeros", point_head=False):
        super().__init__()
        self.s2d = int(space_to_depth)
        cin = (2 * z_context + 1) * self.s2d ** 2
        widths = [base_filters * 2 ** i for i in range(depth)]
        self.encoder = nn.ModuleList()
        for w in widths:
            self.encoder.append(ResidualBlock(cin, w, separable and cin > 4, padding_mode))
            cin = w
        latent = base_filters * 2 ** depth
        self.latent = ResidualBlock(cin, latent, separable, padding_mode)
        self.decoders = nn.ModuleList(Decoder(widths, latent, separable, padding_mode)
                                      for _ in range(2))
        self.heads = nn.ModuleList(nn.Conv2d(widths[0], self.s2d ** 2, 1) for _ in range(2))
        # The head-centre map shares the spine decoder: where a spine is and where its head
        # lies are one question, and a shared decoder costs one 1x1 convolution more.
        self.point_head = nn.Conv2d(widths[0], self.s2d ** 2, 1) if point_head else None

    def forward(self, x):
        if self.s2d > 1:
            x = F.pixel_unshuffle(x, self.s2d)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.latent(x)
        features = [dec(x, skips) for dec in self.decoders]
        outs = [head(f) for f, head in zip(features, self.heads)]
        if self.point_head is not None:
            outs.append(self.point_head(features[1]))
        if self.s2d > 1:
            outs = [F.pixel_shuffle(o, self.s2d) for o in outs]
        return torch.cat(outs, dim=1)


class P4MDualUNet2D(DualUNet2D):
    """:class:`DualUNet2D` with group convolutions over p4m: the same layers in the same order
    (so its forward pass, batch-norm fusion and ONNX export are the plain network's once
    :func:`.group_layers.materialise` has expanded the shared filters). Widths are channels,
    eight per field; the first block lifts the images to fields with a full (not separable)
    convolution, as a depthwise filter on a scalar image cannot be turned with it."""

    def __init__(self, base_filters=32, depth=3, separable=True, space_to_depth=2, z_context=1,
                 padding_mode="zeros", point_head=False):
        nn.Module.__init__(self)
        if base_filters % G.ORDER:
            raise ValueError(f"a p4m network needs base_filters divisible by {G.ORDER}, not {base_filters}")
        if padding_mode != "zeros":
            raise ValueError("a p4m network pads with zeros")
        self.s2d = int(space_to_depth)
        planes = 2 * z_context + 1
        fields = [base_filters // G.ORDER * 2 ** i for i in range(depth)]

        def conv_bn(cin, cout, act=True):
            convs = ([G.GroupDepthwise(cin), G.GroupConv(cin, cout, 1)] if separable
                     else [G.GroupConv(cin, cout, 3)])
            return nn.Sequential(*convs, G.GroupBatchNorm(cout), *([nn.SiLU(inplace=True)] if act else []))

        def block(cin, cout, first):
            res = ResidualBlock.__new__(ResidualBlock)
            nn.Module.__init__(res)
            if first:
                res.body = nn.Sequential(
                    nn.Sequential(G.LiftConv(planes, cout, 3, self.s2d), G.GroupBatchNorm(cout), nn.SiLU(inplace=True)),
                    conv_bn(cout, cout, act=False))
                res.skip = G.LiftConv(planes, cout, 1, self.s2d)
            else:
                res.body = nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout, act=False))
                res.skip = nn.Identity() if cin == cout else G.GroupConv(cin, cout, 1)
            return res

        self.encoder = nn.ModuleList()
        cin = None
        for f in fields:
            self.encoder.append(block(cin, f, first=cin is None))
            cin = f
        latent = base_filters // G.ORDER * 2 ** depth
        self.latent = block(cin, latent, first=False)
        self.decoders = nn.ModuleList()
        for _ in range(2):
            dec = Decoder.__new__(Decoder)
            nn.Module.__init__(dec)
            dec.blocks = nn.ModuleList()
            cin = latent
            for f in reversed(fields):
                dec.blocks.append(nn.Sequential(conv_bn(cin + f, f), conv_bn(f, f)))
                cin = f
            self.decoders.append(dec)
        self.heads = nn.ModuleList(G.InvariantHead(fields[0], 1, self.s2d) for _ in range(2))
        self.point_head = G.InvariantHead(fields[0], 1, self.s2d) if point_head else None


class UNet3D(nn.Module):
    """3D U-Net with anisotropic pooling and three output classes."""

    def __init__(self, base_filters=16, depth=4, aniso_stages=2, padding_mode="reflect"):
        super().__init__()

        def stage(cin, cout):
            return nn.Sequential(
                nn.Conv3d(cin, cout, 3, padding=1, padding_mode=padding_mode, bias=False),
                nn.BatchNorm3d(cout), nn.ReLU(inplace=True),
                nn.Conv3d(cout, cout, 3, padding=1, padding_mode=padding_mode, bias=False),
                nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

        widths = [base_filters * 2 ** i for i in range(depth + 1)]
        self.pools = [(1, 2, 2) if i < aniso_stages else (2, 2, 2) for i in range(depth)]
        self.down = nn.ModuleList()
        cin = 1
        for w in widths[:-1]:
            self.down.append(stage(cin, w))
            cin = w
        self.bottom = stage(cin, widths[-1])
        self.ups = nn.ModuleList(nn.ConvTranspose3d(widths[i + 1], widths[i], p, stride=p)
                                 for i, p in enumerate(self.pools))
        self.up_stages = nn.ModuleList(stage(2 * w, w) for w in widths[:-1])
        self.head = nn.Conv3d(widths[0], 3, 1)

    def forward(self, x):
        skips = []
        for block, p in zip(self.down, self.pools):
            x = block(x)
            skips.append(x)
            x = F.max_pool3d(x, p)
        x = self.bottom(x)
        for i in reversed(range(len(self.down))):
            x = self.up_stages[i](torch.cat([self.ups[i](x), skips[i]], dim=1))
        return self.head(x)


def _conv3_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class Heads3D(nn.Module):
    """Space to depth in the plane, a three-level 3D U-Net, depth to space back: one logit a
    voxel (the spine-head-centre map). Tiles are (B, 1, D, H, W) with D even and H, W
    multiples of 4 x ``space_to_depth``."""

    def __init__(self, filters=(24, 48, 96), space_to_depth: int = 4):
        super().__init__()
        f0, f1, f2 = filters
        s = self.s = int(space_to_depth)
        self.e0 = nn.Sequential(_conv3_bn_relu(s * s, f0), _conv3_bn_relu(f0, f0))
        self.e1 = nn.Sequential(_conv3_bn_relu(f0, f1), _conv3_bn_relu(f1, f1))
        self.e2 = nn.Sequential(_conv3_bn_relu(f1, f2), _conv3_bn_relu(f2, f2))
        self.up2 = nn.ConvTranspose3d(f2, f1, 2, stride=2)
        self.d1 = _conv3_bn_relu(f1, f1)
        self.up1 = nn.ConvTranspose3d(f1, f0, (1, 2, 2), stride=(1, 2, 2))
        self.d0 = _conv3_bn_relu(f0, f0)
        self.out = nn.Conv3d(f0, s * s, 1)

    def forward(self, x):
        b, _, z, h, w = x.shape
        s = self.s
        x = x.reshape(b, z, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).reshape(b, s * s, z, h // s, w // s)
        a = self.e0(x)
        m = self.e1(F.max_pool3d(a, (1, 2, 2)))
        m = self.d1(self.up2(self.e2(F.max_pool3d(m, 2))) + m)
        a = self.d0(self.up1(m) + a)
        o = self.out(a).reshape(b, s, s, z, h // s, w // s)
        return o.permute(0, 3, 4, 1, 5, 2).reshape(b, 1, z, h, w)


def fuse_for_inference(net: nn.Module) -> nn.Module:
    """A copy of ``net`` (eval mode) with every batch norm folded into the convolution before
    it: the same outputs, one memory pass less per layer."""
    net = G.materialise(copy.deepcopy(net).eval())
    for mod in net.modules():
        if isinstance(mod, nn.Sequential):
            for i in range(len(mod) - 1):
                if isinstance(mod[i], (nn.Conv2d, nn.Conv3d)) and isinstance(mod[i + 1], (nn.BatchNorm2d, nn.BatchNorm3d)):
                    mod[i] = fuse_conv_bn_eval(mod[i], mod[i + 1])
                    mod[i + 1] = nn.Identity()
    return net
