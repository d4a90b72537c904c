"""Filters shared over the eight orientations of the pixel grid (p4m): a group, layers that
turn with their input, and a network whose maps turn and mirror exactly with the image."""

import numpy as np
import pytest
import torch

from spinequant.segment.neural import build
from spinequant.segment.neural import group_layers as G
from spinequant.segment.neural.architectures import architecture, fuse_for_inference

TINY_P4M = {"kind": "dual_unet2d", "base_filters": 8, "depth": 2, "separable": True,
            "space_to_depth": 2, "z_context": 1, "point_head": True, "symmetry": "p4m"}


def _random_stats(net):
    for m in net.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _turn_fields(f, g):
    """Group element g acting on regular fields (N, C*8, H, W): turn the plane, move orientation h to g h."""
    n, c, hh, ww = f.shape
    f = G.transform(f, g).reshape(n, c // G.ORDER, G.ORDER, hh, ww)
    out = torch.empty_like(f)
    for h in range(G.ORDER):
        out[:, :, G.MUL[g][h]] = f[:, :, h]
    return out.reshape(n, c, hh, ww)


def test_the_eight_transforms_form_the_group_p4m():
    probe = torch.arange(16.0).reshape(4, 4)
    images = [G.transform(probe, g) for g in range(G.ORDER)]
    assert len({tuple(i.flatten().tolist()) for i in images}) == 8
    for g in range(8):
        assert G.MUL[0][g] == G.MUL[g][0] == g and G.MUL[g][G.INV[g]] == 0
        for h in range(8):
            assert torch.equal(G.transform(G.transform(probe, h), g), images[G.MUL[g][h]])
    assert sorted(G.MUL[4]) == list(range(8))
    assert not all(G.MUL[g][h] == G.MUL[h][g] for g in range(8) for h in range(8))   # not abelian


@pytest.mark.parametrize("layer, fields_in", [
    (G.GroupConv(3, 2, 3), True), (G.GroupConv(3, 2, 1), True), (G.GroupDepthwise(3), True),
    (G.LiftConv(3, 2, 3, 2), False), (G.LiftConv(1, 2, 1, 2), False), (G.LiftConv(2, 2, 3, 1), False)])
def test_each_layer_turns_with_its_input(layer, fields_in):
    torch.manual_seed(0)
    channels = (layer.cin if isinstance(layer, G.GroupConv) else layer.channels) * 8 if fields_in else layer.planes
    x = torch.randn(1, channels, 12, 12)
    fold = getattr(layer, "fold", 1)
    unfold = (lambda t: torch.nn.functional.pixel_unshuffle(t, fold)) if not fields_in else (lambda t: t)
    with torch.no_grad():
        y = layer(unfold(x))
        for g in range(8):
            moved = _turn_fields(x, g) if fields_in else G.transform(x, g)
            np.testing.assert_allclose(layer(unfold(moved)), _turn_fields(y, g), atol=1e-5)


def test_invariant_head_gives_maps_that_turn_with_the_fields():
    torch.manual_seed(0)
    head = G.InvariantHead(3, 2, 2)
    f = torch.randn(1, 24, 10, 10)
    with torch.no_grad():
        y = torch.nn.functional.pixel_shuffle(head(f), 2)
        for g in range(8):
            got = torch.nn.functional.pixel_shuffle(head(_turn_fields(f, g)), 2)
            np.testing.assert_allclose(got, G.transform(y, g), atol=1e-5)


def _worst_turn_error(net, x):
    with torch.no_grad():
        y = net(x)
        return max((net(G.transform(x, g)) - G.transform(y, g)).abs().max().item() for g in range(8)) \
            / y.abs().max().item()


def test_p4m_network_maps_turn_and_mirror_exactly_with_the_image():
    torch.manual_seed(1)
    net = _random_stats(build(TINY_P4M))
    x = torch.randn(2, 3, 48, 48)
    assert net(x).shape == (2, 3, 48, 48)
    assert _worst_turn_error(net, x) < 1e-5
    # the measure sees a plain network's orientation bias
    plain = _random_stats(build({**TINY_P4M, "symmetry": "none"}))
    assert _worst_turn_error(plain, x) > 1e-2


def test_materialised_and_fused_network_is_plain_and_gives_the_same_maps():
    torch.manual_seed(2)
    net = _random_stats(build(TINY_P4M))
    fused = fuse_for_inference(net)
    assert not any(isinstance(m, G.GROUP_LAYERS) for m in fused.modules())
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)) for m in fused.modules())
    assert any(isinstance(m, G.GroupBatchNorm) for m in net.modules())      # the original is untouched
    x = torch.randn(1, 3, 64, 40)
    with torch.no_grad():
        np.testing.assert_allclose(fused(x), net(x), atol=1e-4)
    # shared filters: fewer parameters than the plain network of the same channel widths
    plain = build({**TINY_P4M, "symmetry": "none"})
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in plain.parameters()) / 2


def test_p4m_network_learns_and_stays_symmetric():
    torch.manual_seed(3)
    net = build(TINY_P4M)
    x = torch.randn(4, 3, 32, 32)
    target = (torch.nn.functional.avg_pool2d(x[:, 1:2], 5, 1, 2) > 0.2).float().repeat(1, 3, 1, 1)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert _worst_turn_error(net.eval(), x) < 1e-5


def test_p4m_settings_that_cannot_be_built_are_refused():
    with pytest.raises(ValueError, match="divisible by 8"):
        build({**TINY_P4M, "base_filters": 12})
    with pytest.raises(ValueError, match="unknown symmetry"):
        build({**TINY_P4M, "symmetry": "p4"})
    assert architecture("lean2d_points")["symmetry"] == "none"


def test_a_p4m_model_finds_the_same_maps_on_a_turned_image_in_one_pass(tmp_path):
    from spinequant.pipeline.analyze import AnalyzeConfig, resolve_config
    from spinequant.segment.neural import ModelCard, predict, save_model

    torch.manual_seed(4)
    save_model(_random_stats(build(TINY_P4M)),
               ModelCard(name="tiny_p4m", architecture=architecture(TINY_P4M), voxel_size_um=(0.5, 0.1, 0.1),
                         tile_size=64, tile_overlap=16, tile_depth=4), tmp_path / "tiny_p4m")
    card = str(tmp_path / "tiny_p4m.json")
    # analyze does not average orientations a p4m network already answers alike in
    assert resolve_config(AnalyzeConfig(method=card), ndim=2).orientations == 1
    assert resolve_config(AnalyzeConfig(method=card, orientations=8), ndim=2).orientations == 8
    img = np.random.default_rng(0).integers(0, 4000, (3, 64, 64)).astype(np.uint16)
    maps = predict(img, spacing=(0.5, 0.1, 0.1), model=card, engine="torch", dtype=np.float32)
    for g in (1, 4, 6):
        turned = G.transform(torch.from_numpy(img.astype(np.int32)), g).numpy().astype(np.uint16)
        got = predict(turned, spacing=(0.5, 0.1, 0.1), model=card, engine="torch", dtype=np.float32)
        for a, b in zip(maps, got):
            np.testing.assert_allclose(b, G.transform(torch.from_numpy(a), g).numpy(), atol=1e-5)
