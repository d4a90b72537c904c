"""Dendrite and spine probability maps from a trained network."""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from ..._half import as_dtype
from ...errors import InputError
from ...validate import check_image_values, check_spacing
from . import specs
from .card import ModelCard, load_model, read_card, resolve
from .bodies import levels_and_bodies
from .normalise import normalise
from .orientations import check_orientations, oriented
from .resample import model_shape, resize_window, to_input_grid, to_model_grid, window_span
from ._malloc import while_predicting
from .threads import torch_threads
from .tiling import make_runner, sliding_window

if TYPE_CHECKING:
    import torch

ENGINES = ("auto", "torch", "onnx")


def predict(image: np.ndarray, *, spacing, model: str | os.PathLike | tuple | None = None,
            engine: str = "auto", batch_size: int | None = None, device: str | torch.device | None = None,
            progress=False, tile_size: int | None = None, overlap: int | None = None,
            compile: bool = False, channels_last: bool = True,
            threads: int | None = None,
            value_range: tuple[float, float] | None = None, grid=None,
            dtype=np.float16, head_support: tuple[float, float] | None = None,
            bodies=None, orientations: int = 1, wanted=None, keep=None) -> tuple[np.ndarray, ...]:
    """Segment dendrites and spines with a neural network.

    The stack is normalised as the model card says (percentiles), resampled to the voxel size
    the model was trained at, segmented tile by tile with smooth blending, and the two maps
    are resampled back to the input grid. Where the card looks for cell bodies
    (``normalisation.body_radius_um``), those of the stack are left out of the percentiles and
    the maps are cleared there (:meth:`.bodies.CellBodies.clear`).

    Parameters
    ----------
    image : (Z, Y, X) array
        One channel of a stack (any numeric dtype).
    spacing : 3 floats
        Voxel size in µm (z, y, x).
    model : str, path or (network, ModelCard), optional
        A shipped model name (see :func:`available_models`), a folder or ``.json`` card written
        by :func:`train`, or an already loaded pair. Default: the shipped default model.
    engine : {"auto", "torch", "onnx"}
        ``"onnx"`` runs the model's ONNX export in ONNX Runtime (optional extra ``onnx``;
        faster on a CPU), ``"torch"`` runs PyTorch; ``"auto"`` takes ONNX Runtime on a CPU
        when it is installed and the model has an up-to-date export (see
        :func:`choose_engine`), else PyTorch.
    batch_size : int, optional
        Tiles per forward pass; bounds the memory the network uses. Default 1 with ONNX
        Runtime and 4 with PyTorch (each one's fastest on a 2-core CPU).
    device : str, optional
        ``"cpu"``, ``"cuda"``...; default CUDA when available, else CPU.
    progress : bool or callable
        ``True`` shows a progress bar; a callable is called with the fraction of the network's
        tiles done after each batch (see :func:`~.tiling.sliding_window`).
    tile_size, overlap : int, optional
        Tile edge and overlap in y, x (pixels at the model's voxel size); default from the card.
    compile : bool
        Run the network through ``torch.compile`` (pays off on long stacks).
    threads : int, optional
        CPU threads for the network during this call (default: torch's setting). On a machine
        whose cores are busy with other work, 1 is often faster than 2. torch's own setting
        is restored afterwards; the call changes no other process-wide setting (see
        :func:`~spinequant.segment.neural.keep_freed_memory` for the allocator, which only a
        program that owns its process should set).
    value_range : (low, high), optional
        The intensities to map to -1 and 1 in place of the image's own percentiles: a
        block-wise run (:mod:`spinequant.scale`) passes the whole volume's, so that every block
        is normalised alike. The stack's own cell bodies are then not looked for.
    bodies : :class:`~.bodies.CellBodies`, optional
        With ``value_range``: the cell bodies of the whole volume (``grid`` places ``image``
        in it): the spine and head maps are set to 0 in them and their halo, the dendrite map in
        them.
    grid : ((oy, ox), (NY, NX)), optional
        ``image`` is the window at (oy, ox) of a volume NY x NX pixels wide (all its planes):
        it is then resampled on that volume's model grid and segmented with that volume's
        tiles (see :func:`~.tiling.sliding_window`), so that every voxel whose tiles all lie
        inside the window gets the whole volume's value. A block-wise run passes its window
        here.
    head_support : (spine_min, head_min), optional
        Models with a point head: keep the head map only where the spine map is at least
        ``spine_min`` or the head map at least ``head_min``, 0 elsewhere (the voxels spine
        objects read it at, :func:`spinequant.instances.heads.head_map_support`), in a volume
        resident only there: ~34 MiB instead of 202 on a 101 x 1024 x 1024 stack. A stack
        resampled to the model's voxel size, or a 3D network, keeps the whole map.
    orientations : {1, 4, 8}
        Average the maps over this many orientations of every tile in y/x (test-time
        augmentation, :mod:`.orientations`): 4 adds the mirror images, 8 the quarter turns
        too. The maps of a mirrored or turned image are then close to those of the image,
        mirrored or turned (not equal: the tiles lie elsewhere on it); each orientation costs
        one pass of the network.
    wanted : callable, optional
        3D networks: ``wanted((z0, z1), (y0, y1), (x0, x1))`` says whether a tile covering
        those voxels of ``image`` (with ``grid``: of the window) is needed (see
        :func:`~.tiling.sliding_window`): the maps are right where every tile covering a voxel
        is wanted, and only there. A window (``grid``) that is resampled to the model's
        voxel size runs every tile.
    keep : callable, optional
        3D networks with one map, without ``grid``: the map is kept only where ``keep(z)``
        (a bool array over the planes ``z``, a slice, of ``image``) holds, 0 elsewhere, in a
        volume resident only there. A stack resampled to the model's voxel size keeps the
        whole map.

    Returns
    -------
    dendrite_prob, spine_prob[, head_prob] : float32 arrays in [0, 1], the shape of ``image``.
        Models with a point head (see :mod:`.architectures`) add the map of spine-head
        centres, whose peaks are the detected spines.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise InputError(
            f"Neural segmentation needs one 3D (Z, Y, X) stack, but the array has shape "
            f"{image.shape}. Select one channel and time point first (e.g. read_stack(path, channel=0))."
        )
    spacing = check_spacing(spacing)
    check_image_values(image, where="the image")
    orientations = check_orientations(orientations)
    engine = choose_engine(model, engine, device)
    # The engine and its buffers are gone when while_predicting hands freed memory back.
    with torch_threads(threads), while_predicting():
        return _predict_with(engine, image, spacing, model, device=device, channels_last=channels_last,
                             compile=compile, threads=threads, batch_size=batch_size, progress=progress,
                             orientations=orientations,
                             tile_size=tile_size, overlap=overlap, value_range=value_range, grid=grid,
                             dtype=np.dtype(dtype), head_support=head_support, bodies=bodies, wanted=wanted,
                             keep=keep)


def _predict_with(engine, image, spacing, model, *, device, channels_last, compile, threads, batch_size,
                  orientations=1, **options):
    run, card = tile_runner(engine, model, device=device, channels_last=channels_last, compile=compile,
                            threads=threads)
    return _predict(image, spacing, oriented(run, orientations), card,
                    batch_size=batch_size or default_batch(engine), **options)


def default_batch(engine: str) -> int:
    """Tiles per forward pass: 1 with ONNX Runtime, 4 with PyTorch (each one's fastest on a 2-core CPU)."""
    return 1 if engine == "onnx" else 4


def tile_runner(engine: str, model, *, device=None, channels_last: bool = True, compile: bool = False,
                threads: int | None = None):
    """``(run, card)``: the network of ``model`` on ``engine`` (``"onnx"`` or ``"torch"``) as
    a ``run`` callable for :func:`~.tiling.sliding_window`, and its model card."""
    if engine == "onnx":
        from .onnx_runtime import make_onnx_runner, onnx_file

        card_path, _ = resolve(model)
        card = read_card(card_path)
        return make_onnx_runner(onnx_file(card_path, card), threads=threads), card
    import torch

    from .architectures import to_probabilities

    net, card = model if isinstance(model, tuple) else load_model(model)
    spec = specs.architecture(card.architecture)
    run = make_runner(net, lambda logits: to_probabilities(spec, logits),
                      device=torch.device(device or _device_type(None)),
                      channels_last=channels_last, compile=compile)
    return run, card


def choose_engine(model, engine: str = "auto", device: str | torch.device | None = None) -> str:
    """``"torch"`` or ``"onnx"``: the engine :func:`predict` will use for ``model``.

    ``"auto"`` picks ONNX Runtime on a CPU when it is installed and the model (given by name
    or path) has an ONNX file exported from its current weights; an explicit ``"onnx"`` that
    cannot be honoured is an error that says what is missing.
    """
    if engine not in ENGINES:
        raise InputError(f"Unknown engine '{engine}': choose one of {', '.join(ENGINES)}.")
    if engine == "torch":
        return "torch"
    from .onnx_runtime import onnx_file, onnxruntime_available

    device = _device_type(device)
    problem = None
    if isinstance(model, tuple):
        problem = "the ONNX engine needs the model's name or path, not a loaded network"
    elif device != "cpu":
        problem = f"the ONNX engine runs on the CPU, but device '{device}' was asked for"
    elif not onnxruntime_available():
        problem = "onnxruntime is not installed (pip install 'spinequant[onnx]')"
    else:
        card_path, _ = resolve(model)
        if onnx_file(card_path, read_card(card_path)) is None:
            problem = (f"the model '{model}' has no ONNX export of its current weights "
                       f"(make one with: spinequant export-onnx {model})")
    if problem is None:
        return "onnx"
    if engine == "onnx":
        raise InputError(f"Cannot run with engine 'onnx': {problem}.")
    return "torch"


def _device_type(device: str | torch.device | None) -> str:
    """``"cpu"``, ``"cuda"``...: the kind of ``device``; for None, CUDA when torch sees it.

    Where no GPU can be present (no NVIDIA, WSL or ROCm device node on Linux; macOS) the
    answer is the CPU without importing torch, so that an ONNX Runtime run never loads it.
    """
    if device is not None:
        return getattr(device, "type", None) or str(device).split(":")[0]
    if "torch" not in sys.modules and _no_gpu_device():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _no_gpu_device() -> bool:
    if sys.platform == "darwin":
        return True
    if sys.platform.startswith("linux"):
        nodes = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")
        return not any(os.path.exists(node) for node in nodes)
    return False


def _predict(image, spacing, run, card, *, batch_size, progress, tile_size, overlap, value_range=None,
             grid=None, dtype=np.dtype(np.float32), head_support=None, bodies=None, wanted=None, keep=None):
    if dtype.kind != "f":
        raise InputError(f"Probability maps are floating point (float16 or float32), not {dtype}.")
    spec = specs.architecture(card.architecture)
    if value_range is None:
        value_range, bodies = levels_and_bodies(image, card.normalisation, spacing=spacing)
    # The normalisation is elementwise: where no resampling is needed the network's tiles are
    # normalised one batch at a time (no float32 copy of the stack); resampling needs it whole.
    prepare = partial(normalise, config=card.normalisation, value_range=value_range)
    target = target_spacing(card, spec)
    if grid is None:
        model_grid = back = None
        if model_shape(image.shape, spacing, target) != tuple(image.shape):
            x, prepare = to_model_grid(prepare(image), spacing, target), None
        else:
            x = image
    else:
        (oy, ox), (full_y, full_x) = grid
        nz, ny, nx = image.shape
        full = (nz, int(full_y), int(full_x))
        model_full = model_shape(full, spacing, target)
        origin = (0, int(oy), int(ox))
        span = [window_span(n, m, o, o + k) for n, m, o, k in zip(full, model_full, origin, image.shape)]
        x = image
        if model_full != full:
            x, prepare = resize_window(prepare(image), full, model_full, origin, span), None
        model_grid = ((span[1][0], span[2][0]), model_full[1:])
        back = (model_full, full, tuple(j0 for j0, _ in span),
                [(o, o + k) for o, k in zip(origin, image.shape)])
    resampled = x is not image
    if wanted is not None and grid is not None and resampled:
        wanted = None        # a resampled window's tiles are not mapped back: all of them run
    if wanted is not None and resampled:
        wanted = _on_input_grid(wanted, image.shape, x.shape)
    sparse = None
    if head_support is not None and specs.n_outputs(spec) == 3 and not resampled:
        spine_min, head_min = head_support
        sparse = (2, lambda planes, z: (planes[1] >= spine_min) | (planes[2] >= head_min))
    elif keep is not None and specs.is_3d(spec) and specs.n_outputs(spec) == 1 and not resampled and grid is None:
        sparse = (0, lambda planes, z: keep(z))
    probs = sliding_window(
        x, run, n_out=specs.n_outputs(spec), tile_size=tile_size or card.tile_size,
        overlap=card.tile_overlap if overlap is None else overlap,
        tile_depth=card.tile_depth if specs.is_3d(spec) else 1,
        z_context=spec.get("z_context", 0), multiple=specs.multiple_of(spec),
        z_multiple=specs.z_multiple_of(spec), batch_size=batch_size, progress=progress,
        grid=model_grid, prepare=prepare, as_list=True, clip=not resampled,
        dtype=np.float32 if resampled else dtype, sparse=sparse, wanted=wanted)   # resampling back takes float32
    del x
    origin = (0, 0, 0) if grid is None else (0, *(int(o) for o in grid[0]))
    # A heads3d network's one map is a head map: cleared like the spine maps.
    dendrite_at = None if specs.n_outputs(spec) == 1 else 0
    if not resampled:
        if bodies is not None:
            bodies.clear(_at(probs, dendrite_at), _others(probs, dendrite_at), origin)
        return tuple(probs)
    # Map by map, each its own array: a caller may free one (the head map) and keep the others.
    for k, p in enumerate(probs):
        p = to_input_grid(p, image.shape) if back is None else resize_window(p, *back)
        p = np.clip(p, 0.0, 1.0, out=p)
        probs[k] = as_dtype(p, dtype)
        del p
    if bodies is not None:
        bodies.clear(_at(probs, dendrite_at), _others(probs, dendrite_at), origin)
    return tuple(probs)


def _on_input_grid(wanted, shape, model):
    """``wanted`` of input voxels as a test of model-grid boxes: each box widened by a pixel
    for the linear resampling between the grids."""
    def on_model_grid(*box):
        spans = []
        for (lo, hi), n, m in zip(box, shape, model):
            f = n / m
            spans.append((max(int(lo * f) - 1, 0), min(int(np.ceil(hi * f)) + 1, n)))
        return wanted(*spans)

    return on_model_grid


def _at(probs, k):
    return None if k is None else probs[k]


def _others(probs, k):
    return [p for i, p in enumerate(probs) if i != k]


def target_spacing(card: ModelCard, spec: dict) -> tuple:
    """Voxel size to resample to; z is left alone for plane-wise models without z context."""
    z, y, x = card.voxel_size_um
    if spec["kind"] == "dual_unet2d" and spec.get("z_context", 0) == 0:
        return (None, y, x)
    return (z, y, x)
