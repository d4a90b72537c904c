"""Damaged TIFF (and JPEG) files: read exactly as written, or refused with an InputError naming the file.

Seeded fault injection on small stacks written here (5 x 48 x 64 uint16; ImageJ and OME-TIFF,
uncompressed and zlib): truncations at many offsets, bit flips in the header and the image
directories (IFDs), swapped width/length, an IFD loop, strip offsets and byte counts swapped,
OME metadata declaring more planes than the file holds, a pixel size recorded in nm. Whatever
the damage: never another exception, never a silently different array. With
``allow_incomplete`` a damaged file may also be read with an IncompleteDataWarning, its
missing planes as zeros.
"""

import io
import json
import re
import struct
import tracemalloc
import warnings

import imagecodecs
import numpy as np
import pytest
import tifffile

from spinequant import validate
from spinequant.cli import EXIT_INPUT, main
from spinequant.errors import IncompleteDataWarning, InputError, VoxelSizeError
from spinequant.io import open_stack, read_stack
from spinequant.pipeline import batch

SHAPE = (5, 48, 64)  # not square, so that swapped width and length show
SPACING = (0.5, 0.094, 0.094)
KINDS = ("imagej", "imagej_zlib", "ome", "ome_zlib")


def _write(path, kind, data):
    compression = "zlib" if kind.endswith("zlib") else None
    if kind.startswith("imagej"):
        tifffile.imwrite(path, data, imagej=True, resolution=(1 / SPACING[2], 1 / SPACING[1]),
                         metadata={"spacing": SPACING[0], "unit": "um", "axes": "ZYX"}, compression=compression)
    else:
        tifffile.imwrite(path, data, compression=compression,
                         metadata={"axes": "ZYX", "PhysicalSizeZ": SPACING[0], "PhysicalSizeY": SPACING[1],
                                   "PhysicalSizeX": SPACING[2]})
    return path


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(20).integers(1, 4000, SHAPE, dtype=np.uint16)


@pytest.fixture(scope="module")
def originals(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("originals")
    # tifffile writes OME-XML only into files named .ome.tif
    return {kind: _write(folder / f"{kind}{'.ome' * kind.startswith('ome')}.tif", kind, data).read_bytes()
            for kind in KINDS}


# --- mutations: pure functions of the file's bytes -----------------------------------------------

def _ifds(raw: bytes) -> list[dict]:
    """Each IFD's offset, the file offsets of its tag entries by code, and where its next-IFD offset is."""
    out = []
    with tifffile.TiffFile(io.BytesIO(raw)) as tf:
        for page in tf.pages:
            entries = {tag.code: tag.offset for tag in page.tags}
            (count,) = struct.unpack("<H", raw[page.offset:page.offset + 2])
            out.append({"offset": page.offset, "entries": entries, "next": page.offset + 2 + 12 * count})
    return out


def _flip(raw: bytes, position: int, bit: int) -> bytes:
    out = bytearray(raw)
    out[position] ^= 1 << bit
    return bytes(out)


def _swap_tags(raw: bytes, a: int, b: int, *, every_ifd: bool) -> bytes:
    """Swap the codes of tags ``a`` and ``b`` (their values change places) in the first or every IFD."""
    out = bytearray(raw)
    ifds = _ifds(raw)
    for ifd in ifds if every_ifd else ifds[:1]:
        pa, pb = ifd["entries"][a], ifd["entries"][b]
        out[pa:pa + 2], out[pb:pb + 2] = raw[pb:pb + 2], raw[pa:pa + 2]
    return bytes(out)


def _set_last_next(raw: bytes, target: int) -> bytes:
    out = bytearray(raw)
    position = _ifds(raw)[-1]["next"]
    out[position:position + 4] = struct.pack("<I", target)
    return bytes(out)


def _ome_xml(size_z: int, physical_xy: str = 'PhysicalSizeX="0.094" PhysicalSizeY="0.094"') -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
            f'<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="{SHAPE[2]}" '
            f'SizeY="{SHAPE[1]}" SizeZ="{size_z}" SizeC="1" SizeT="1" {physical_xy} PhysicalSizeZ="0.5">'
            '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
            f'<TiffData IFD="0" PlaneCount="{size_z}"/></Pixels></Image></OME>')


# --- the outcome of reading a damaged file ------------------------------------------------------

def _outcome(path, original: np.ndarray, *, allow: bool = False) -> str:
    """"same", "refused" or (allow only) "warned"; fails the test on anything else."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = np.asarray(open_stack(path, require_spacing=False, allow_incomplete=allow).data)
        except InputError as exc:
            assert path.name in str(exc), f"the message does not name the file: {exc}"
            return "refused"
    ours = [w for w in caught if issubclass(w.category, IncompleteDataWarning)]
    if got.shape == original.shape and np.array_equal(got, original):
        return "same"
    assert allow and ours, f"{path.name}: read as a different array {got.shape} without a word"
    assert path.name in str(ours[0].message)
    if got.shape == original.shape:
        # the planes (and parts of planes) that are there, zeros for the rest; one 16-bit voxel
        # may be cut in half by the truncation
        assert np.count_nonzero((got != original) & (got != 0)) <= 1
    elif got.shape == original.shape[1:]:  # the metadata were lost with the end of the file
        assert np.array_equal(got, original[0]) or not got.any()
    return "warned"


@pytest.mark.parametrize("kind", KINDS)
def test_truncations_are_refused_or_read_with_a_warning(tmp_path, originals, data, kind):
    raw = originals[kind]
    rng = np.random.default_rng(1)
    offsets = sorted({1, 4, 7, 8, 9, 16, 100, 200, len(raw) // 2, len(raw) - 1,
                      *rng.integers(1, len(raw), 30).tolist()})
    seen = {"same": 0, "refused": 0}
    for n in offsets:
        path = tmp_path / f"cut{n}.tif"
        path.write_bytes(raw[:n])
        strict = _outcome(path, data)
        seen[strict] += 1
        if strict == "refused":   # "same": only metadata at the end of the file were lost
            assert _outcome(path, data, allow=True) in ("refused", "warned", "same")
    assert seen["refused"] >= len(offsets) - 2   # only a cut in the last bytes (unused tag values) may pass


@pytest.mark.parametrize("kind", KINDS)
def test_bit_flips_in_header_and_image_directories(tmp_path, originals, data, kind):
    raw = originals[kind]
    rng = np.random.default_rng(2)
    spans = [(0, 8)] + [(ifd["offset"], ifd["next"] + 4) for ifd in _ifds(raw)]
    outcomes = []
    for i in range(60):
        start, end = spans[0] if i % 10 == 0 else spans[int(rng.integers(1, len(spans)))]
        position, bit = int(rng.integers(start, end)), int(rng.integers(0, 8))
        path = tmp_path / f"flip{i}_{position}_{bit}.tif"
        path.write_bytes(_flip(raw, position, bit))
        outcomes.append(_outcome(path, data))
    assert "refused" in outcomes and "same" in outcomes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("every_ifd", [False, True])
def test_swapped_strip_offsets_and_byte_counts_are_refused(tmp_path, originals, data, kind, every_ifd):
    path = tmp_path / "swapped.tif"
    path.write_bytes(_swap_tags(originals[kind], 273, 279, every_ifd=every_ifd))
    assert _outcome(path, data) == "refused"


@pytest.mark.parametrize("kind", KINDS)
def test_swapped_width_and_length_in_the_first_directory(tmp_path, originals, data, kind):
    path = tmp_path / "swapped.tif"
    path.write_bytes(_swap_tags(originals[kind], 256, 257, every_ifd=False))
    assert _outcome(path, data) == "refused"


@pytest.mark.parametrize("kind", ["ome", "ome_zlib"])
def test_ome_width_and_length_swapped_everywhere_contradict_the_metadata(tmp_path, originals, data, kind):
    path = tmp_path / "swapped.ome.tif"
    path.write_bytes(_swap_tags(originals[kind], 256, 257, every_ifd=True))
    with pytest.raises(InputError, match="OME metadata describe planes of 64 x 48 pixels"):
        open_stack(path, require_spacing=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["first", "itself"])
def test_ifd_loop(tmp_path, originals, data, kind, target):
    raw = originals[kind]
    ifds = _ifds(raw)
    path = tmp_path / "loop.tif"
    path.write_bytes(_set_last_next(raw, ifds[0]["offset"] if target == "first" else ifds[-1]["offset"]))
    assert _outcome(path, data) in ("refused", "same")
    assert _outcome(path, data, allow=True) in ("refused", "same", "warned")


def test_truncated_stack_says_how_many_planes_are_there(tmp_path, originals, data):
    raw = originals["imagej"]
    with tifffile.TiffFile(io.BytesIO(raw)) as tf:
        start = tf.pages.first.dataoffsets[0]
    path = tmp_path / "cut.tif"
    path.write_bytes(raw[:start + 2 * data[0].nbytes + 100])   # 2 planes and a bit of the third
    with pytest.raises(InputError, match=r"cut.tif' is truncated \(2 of 5 planes of 48 x 64 uint16 are "
                                         r"present\).*--allow-incomplete"):
        read_stack(path)
    with pytest.warns(IncompleteDataWarning, match="cut.tif' is truncated.*read anyway"):
        stack = read_stack(path, allow_incomplete=True)
    assert stack.shape == SHAPE and stack.spacing == SPACING
    np.testing.assert_array_equal(stack.data[:2], data[:2])
    assert not stack.data[3:].any()
    assert "2 of 5 planes" in stack.metadata["incomplete"]


def test_ome_declaring_more_planes_than_it_holds(tmp_path, originals, data):
    raw = originals["ome"]
    path = tmp_path / "more.ome.tif"
    path.write_bytes(raw.replace(b'SizeZ="5"', b'SizeZ="9"').replace(b'PlaneCount="5"', b'PlaneCount="9"'))
    with pytest.raises(InputError, match=r"5 of 9 planes.*metadata declare 9 planes, but the file holds 5"):
        read_stack(path)
    with pytest.warns(IncompleteDataWarning):
        stack = read_stack(path, allow_incomplete=True)
    assert stack.shape == (9, *SHAPE[1:])
    np.testing.assert_array_equal(stack.data[:5], data)
    assert not stack.data[5:].any()


def test_ome_declaring_fewer_planes_than_it_holds(tmp_path, originals, data):
    path = tmp_path / "fewer.ome.tif"
    path.write_bytes(originals["ome"].replace(b'SizeZ="5"', b'SizeZ="1"').replace(b'PlaneCount="5"', b'PlaneCount="1"'))
    with pytest.raises(InputError, match="fewer.ome.tif' is inconsistent: its metadata describe 1 plane, but "
                                         "the file holds 4 more images of the same size"):
        read_stack(path)
    with pytest.warns(IncompleteDataWarning):
        assert read_stack(path, allow_incomplete=True).shape == SHAPE[1:]


def test_ome_declaring_99999_planes_over_five_is_refused_before_reading(tmp_path, data):
    path = tmp_path / "huge.ome.tif"
    tifffile.imwrite(path, data, description=_ome_xml(99999), metadata=None)
    refused = r"huge.ome.tif' declares 99,999 planes.*holds only 5.*metadata are wrong"
    with pytest.raises(InputError, match=refused):
        open_stack(path, require_spacing=False)
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=refused):   # even when told to read what is there
            open_stack(path, require_spacing=False, allow_incomplete=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6    # 99,999 planes would be 614 MB


def test_array_larger_than_the_memory_available_is_refused(tmp_path, data, monkeypatch):
    path = _write(tmp_path / "stack.tif", "imagej", data)
    monkeypatch.setattr(validate, "available_memory", lambda: 10_000)
    with pytest.raises(InputError, match=r"stack.tif' declares 5 planes of 48 x 64 uint16, which needs "
                                         r"31 kB of memory to read, but only 10 kB are available"):
        read_stack(path)


def test_pixel_size_recorded_in_nanometres_as_micrometres(tmp_path, data, capsys):
    path = tmp_path / "nm.ome.tif"
    xml = _ome_xml(5, 'PhysicalSizeX="0.094" PhysicalSizeXUnit="nm" PhysicalSizeY="0.094" PhysicalSizeYUnit="nm"')
    tifffile.imwrite(path, data, description=xml, metadata=None)
    with pytest.raises(VoxelSizeError, match=r"nm.ome.tif' is 9.4e-05 µm \(0.094 nm\).*nanometres.*"
                                             r"--voxel-size 0.5 0.094 0.094"):
        read_stack(path)
    assert main(["info", str(path)]) == 0
    assert "WARNING: implausible" in capsys.readouterr().out
    good = _write(tmp_path / "good.tif", "imagej", data)
    assert main(["info", str(good), "--voxel-size", "0.5", "0.000094", "0.000094"]) == EXIT_INPUT
    assert "probably meant in micrometres" in " ".join(capsys.readouterr().err.split())


def test_truncated_jpeg_is_refused_or_read_with_a_warning(tmp_path):
    grey = np.random.default_rng(3).integers(0, 255, (48, 64), dtype=np.uint8)
    raw = imagecodecs.jpeg8_encode(grey)
    path = tmp_path / "cut.jpg"
    path.write_bytes(raw[:len(raw) * 2 // 3])
    with pytest.raises(InputError, match="cut.jpg' is truncated.*--allow-incomplete"):
        open_stack(path, voxel_size=SPACING[1:])
    with pytest.warns(IncompleteDataWarning, match="cut.jpg' is truncated"):
        stack = open_stack(path, voxel_size=SPACING[1:], allow_incomplete=True)
    assert stack.shape == grey.shape and "incomplete" in stack.metadata
    (tmp_path / "whole.jpg").write_bytes(raw)
    assert open_stack(tmp_path / "whole.jpg", voxel_size=SPACING[1:]).shape == grey.shape


def test_file_system_errors_name_the_file(tmp_path, data, monkeypatch):
    import spinequant.io as sio

    path = _write(tmp_path / "stack.tif", "imagej", data)

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sio, "open_tiff", unreadable)
    with pytest.raises(InputError, match="stack.tif' cannot be read: Permission denied"):
        read_stack(path)


# --- the command line ------------------------------------------------------------------------------

def _run(capsys, *args):
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def test_cli_damaged_files_exit_2_with_one_message(tmp_path, capsys, originals):
    from spinequant.data import sample_path

    (tmp_path / "t.tif").write_bytes(sample_path().read_bytes()[:4])      # the repro
    (tmp_path / "half.tif").write_bytes(originals["imagej"][:len(originals["imagej"]) // 2])
    (tmp_path / "flipped.tif").write_bytes(_swap_tags(originals["ome"], 273, 279, every_ifd=True))
    for name in ("t.tif", "half.tif", "flipped.tif"):
        for command in (["info"], ["analyze", "--out", tmp_path / "results", "--quiet"]):
            code, _, err = _run(capsys, command[0], tmp_path / name, *command[1:])
            assert code == EXIT_INPUT, err
            assert err.startswith("spinequant: error: ") and name in err and "Traceback" not in err
            assert not (tmp_path / "results").exists()


def test_cli_allow_incomplete_warns_once_and_is_recorded_in_run_json(tmp_path, capsys, originals, monkeypatch):
    path = tmp_path / "half.tif"
    path.write_bytes(originals["imagej"][:len(originals["imagej"]) // 2])
    code, out, err = _run(capsys, "info", path, "--allow-incomplete")
    assert code == 0 and "INCOMPLETE FILE" in out
    assert err.count("spinequant: WARNING:") == 1 and re.search(r"half.tif' is truncated \(\d of 5 planes", err)

    seen = {}
    monkeypatch.setattr(batch, "analyze", lambda stack, **kw: seen.setdefault("shape", stack.shape) and
                        type("R", (), {"spines": [], "dendrites": [], "diagnostics": {}})())
    monkeypatch.setattr(batch, "save_result", lambda result, out_dir, *, source=None, progress=None:
                        (out_dir / "run.json").write_text(json.dumps({"input": source})))
    code, _, err = _run(capsys, "analyze", path, "--out", tmp_path / "r", "--quiet", "--allow-incomplete")
    assert code == 0 and err.count("spinequant: WARNING:") == 1 and seen["shape"] == SHAPE
    recorded = json.loads((tmp_path / "r" / "run.json").read_text())["input"]
    assert recorded["allow_incomplete"] is True and "is truncated" in recorded["incomplete"]
