"""Damaged Zarr / OME-Zarr inputs (issue 20): the same image, or one InputError naming the path.

Seeded fault injection on a small OME-Zarr written here, in both layouts spinequant reads:
NGFF 0.4 on Zarr v2 as spinequant's own writer makes it (blosc), and NGFF 0.5 on Zarr v3
(zstd with its checksum). Every damaged copy must either read back exactly the original
array and voxel size, or raise :class:`InputError` whose message names the path. Any other
exception fails the test, and so does a different array read without a word.

Arbitrary bit flips inside compressed data are only injected into the checksummed chunks:
without a checksum (blosc, zstd without one) no reader can tell such a flip from data.
"""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from spinequant.cli import EXIT_INPUT, main
from spinequant.errors import InputError
from spinequant.io import open_stack, write_ome_zarr
from spinequant.io.omezarr import open_zarr
from spinequant.io.zarr_chunks import census

SPACING = (0.5, 0.094, 0.094)
SHAPE = (5, 64, 64)
CHUNKS = (2, 16, 16)
N_CHUNKS = 3 * 4 * 4
LAYOUTS = ("v2", "v3")


@pytest.fixture(scope="module")
def image():
    # No zeros, so a chunk read as the fill value can never pass for the original.
    return np.random.default_rng(20).integers(1, 4000, SHAPE, dtype=np.uint16)


@pytest.fixture(scope="module")
def originals(tmp_path_factory, image):
    base = tmp_path_factory.mktemp("originals")
    return {"v2": write_ome_zarr(base / "v2.ome.zarr", image, SPACING, chunks=CHUNKS),
            "v3": _write_v3(base / "v3.ome.zarr", image)}


def _write_v3(path: Path, image) -> Path:
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    arr = root.create_array("0", shape=image.shape, dtype=image.dtype, chunks=CHUNKS,
                            compressors=ZstdCodec(level=1, checksum=True))
    arr[...] = image
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(SPACING)}]}]}]}
    return path


@pytest.fixture
def copy_of(originals, tmp_path):
    def copy(layout: str) -> Path:
        target = tmp_path / f"damaged-{layout}.ome.zarr"
        shutil.copytree(originals[layout], target)
        return target
    return copy


def outcome(path: Path, image) -> str:
    """``"same"`` or ``"refused"``; anything else raises and fails the test."""
    try:
        stack = open_stack(path, require_spacing=False)
        data = np.asarray(stack.data)
    except InputError as exc:
        assert str(path) in str(exc), f"the message does not name the path: {exc}"
        return "refused"
    assert data.shape == image.shape and np.array_equal(data, image), "a different array was read without a word"
    assert stack.spacing == SPACING, f"a different voxel size was read without a word: {stack.spacing}"
    return "same"


# ---- where the metadata and chunks of each layout live -------------------------------------

def group_meta(folder: Path, layout: str) -> Path:
    return folder / ("zarr.json" if layout == "v3" else ".zattrs")


def array_meta(folder: Path, layout: str) -> Path:
    return folder / "0" / ("zarr.json" if layout == "v3" else ".zarray")


def chunk_files(folder: Path) -> list[Path]:
    meta = {"zarr.json", ".zarray", ".zattrs"}
    return sorted(p for p in (folder / "0").rglob("*") if p.is_file() and p.name not in meta)


def edit_json(file: Path, change) -> None:
    value = json.loads(file.read_text())
    change(value)
    file.write_text(json.dumps(value))


def edit_multiscale(folder: Path, layout: str, change) -> None:
    """Apply ``change`` to the OME attributes (under "ome" and "attributes" in v3)."""
    def apply(meta):
        change(meta["attributes"]["ome"] if layout == "v3" else meta)
    edit_json(group_meta(folder, layout), apply)


def ms0(change):
    return lambda ome: change(ome["multiscales"][0])


def axes(change):
    return ms0(lambda ms: change(ms["axes"]))


def scale(change):
    return ms0(lambda ms: change(ms["datasets"][0]["coordinateTransformations"][0]))


# ---- metadata faults: all of them must be refused --------------------------------------------

MULTISCALE_FAULTS = {
    "multiscales not a list": lambda o: o.__setitem__("multiscales", o["multiscales"][0]),
    "multiscales empty": lambda o: o.__setitem__("multiscales", []),
    "multiscales[0] a text": lambda o: o.__setitem__("multiscales", ["image"]),
    "ome not an object": lambda o: o.__setitem__("multiscales", 3),
    "datasets missing": ms0(lambda ms: ms.pop("datasets")),
    "datasets empty": ms0(lambda ms: ms.__setitem__("datasets", [])),
    "dataset path missing": ms0(lambda ms: ms["datasets"][0].pop("path")),
    "dataset path a number": ms0(lambda ms: ms["datasets"][0].__setitem__("path", 0)),
    "dataset path absent": ms0(lambda ms: ms["datasets"][0].__setitem__("path", "9")),
    "dataset path outside": ms0(lambda ms: ms["datasets"][0].__setitem__("path", "../elsewhere")),
    "axes one too few": axes(lambda a: a.pop(0)),
    "axes one too many": axes(lambda a: a.insert(0, {"name": "t", "type": "time"})),
    "axes not a list": ms0(lambda ms: ms.__setitem__("axes", {"z": 1, "y": 1, "x": 1})),
    "axes without names": axes(lambda a: [e.pop("name") for e in a]),
    "axis name empty": axes(lambda a: a[1].__setitem__("name", "")),
    "axis name a number": axes(lambda a: a[2].__setitem__("name", 7)),
    "axis named twice": axes(lambda a: a[1].__setitem__("name", "x")),
    "axis a number": axes(lambda a: a.__setitem__(0, 3)),
    "space axis of type time": axes(lambda a: a[2].__setitem__("type", "time")),
    "unit a number": axes(lambda a: a[0].__setitem__("unit", 1e-6)),
    "scale too short": scale(lambda t: t["scale"].pop()),
    "scale too long": scale(lambda t: t["scale"].append(1.0)),
    "scale text": scale(lambda t: t.__setitem__("scale", ["0.5", "0.094", "0.094"])),
    "scale a number": scale(lambda t: t.__setitem__("scale", 0.5)),
    "scale negative": scale(lambda t: t["scale"].__setitem__(1, -0.094)),
    "scale zero": scale(lambda t: t["scale"].__setitem__(0, 0)),
    "scale NaN": scale(lambda t: t["scale"].__setitem__(2, float("nan"))),
    "scale true": scale(lambda t: t["scale"].__setitem__(0, True)),
    "scale without values": scale(lambda t: t.pop("scale")),
    "transform not an object": ms0(lambda ms: ms["datasets"][0].__setitem__("coordinateTransformations", ["scale"])),
    "transforms not a list": ms0(lambda ms: ms["datasets"][0].__setitem__("coordinateTransformations", {})),
    "translation too short": ms0(lambda ms: ms["datasets"][0]["coordinateTransformations"].append(
        {"type": "translation", "translation": [0.0]})),
    "global scale text": ms0(lambda ms: ms.__setitem__("coordinateTransformations",
                                                       [{"type": "scale", "scale": "1 1 1"}])),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fault", sorted(MULTISCALE_FAULTS))
def test_damaged_multiscales_metadata_is_refused_naming_the_path(copy_of, image, layout, fault):
    folder = copy_of(layout)
    edit_multiscale(folder, layout, MULTISCALE_FAULTS[fault])
    assert outcome(folder, image) == "refused"


def _garble(rng, file: Path) -> None:
    text = file.read_bytes()
    how = rng.integers(3)
    if how == 0:
        file.write_bytes(text[:rng.integers(1, len(text))])  # cut short
    elif how == 1:
        file.write_bytes(rng.bytes(int(rng.integers(1, 200))))  # random bytes
    else:
        file.write_text(json.dumps(["not", "an", "object"]))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("which", ["group", "array"])
def test_deleted_or_garbled_metadata_files_are_refused(copy_of, image, layout, seed, which):
    rng = np.random.default_rng(seed)
    folder = copy_of(layout)
    if which == "group":
        files = [folder / f for f in ("zarr.json", ".zgroup", ".zattrs") if (folder / f).exists()]
    else:
        files = [array_meta(folder, layout)]
    file = files[rng.integers(len(files))]
    if seed == 0:
        file.unlink()
    else:
        _garble(rng, file)
    assert outcome(folder, image) == "refused"


ARRAY_FAULTS = {
    "shape enlarged": lambda m: m.__setitem__("shape", [50, 64, 64]),
    "shape cut by a chunk": lambda m: m.__setitem__("shape", [3, 64, 64]),
    "shape of another rank": lambda m: m.__setitem__("shape", [64, 64]),
    "wider data type": lambda m: m.__setitem__(*(("data_type", "uint32") if "data_type" in m else ("dtype", "<u4"))),
    "narrower data type": lambda m: m.__setitem__(*(("data_type", "uint8") if "data_type" in m else ("dtype", "|u1"))),
}


def _chunks_of(meta: dict) -> list:
    return meta["chunk_grid"]["configuration"]["chunk_shape"] if "chunk_grid" in meta else meta["chunks"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fault", [*sorted(ARRAY_FAULTS), "bigger chunks", "smaller chunks"])
def test_inconsistent_array_metadata_is_refused(copy_of, image, layout, fault):
    folder = copy_of(layout)
    if fault.endswith("chunks"):
        factor = 2 if fault.startswith("bigger") else 0.5
        edit_json(array_meta(folder, layout), lambda m: _chunks_of(m).__setitem__(2, int(16 * factor)))
    else:
        edit_json(array_meta(folder, layout), ARRAY_FAULTS[fault])
    assert outcome(folder, image) == "refused"


def test_enlarged_shape_is_refused_as_missing_chunks_before_any_reading(copy_of, image):
    folder = copy_of("v2")
    edit_json(array_meta(folder, "v2"), lambda m: m.__setitem__("shape", [99999, 64, 64]))
    with pytest.raises(InputError) as err:
        open_stack(folder, require_spacing=False)
    text = " ".join(str(err.value).split())
    assert f"{50000 * 16 - N_CHUNKS} of {50000 * 16} chunk files" in text
    assert "fill only the first (6, 64, 64) voxels" in text and "the declared shape may be wrong" in text


# ---- chunk faults -----------------------------------------------------------------------------

def _delete(rng, files):
    for i in rng.choice(len(files), size=int(rng.integers(1, 4)), replace=False):
        files[i].unlink()


def _truncate(rng, files):
    file = files[rng.integers(len(files))]
    data = file.read_bytes()
    file.write_bytes(data[:rng.integers(0, len(data))])


def _replace(rng, files):
    file = files[rng.integers(len(files))]
    file.write_bytes(rng.bytes(int(rng.integers(1, 2 * file.stat().st_size))))


def _flip(rng, files):
    file = files[rng.integers(len(files))]
    data = bytearray(file.read_bytes())
    for _ in range(int(rng.integers(1, 4))):
        data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    file.write_bytes(bytes(data))


def _flip_blosc_sizes(rng, files):
    # Bytes 4-15 of a blosc header: uncompressed size, block size and compressed size.
    file = files[rng.integers(len(files))]
    data = bytearray(file.read_bytes())
    data[4 + rng.integers(12)] ^= 1 << int(rng.integers(8))
    file.write_bytes(bytes(data))


CHUNK_FAULTS = {"delete": _delete, "truncate": _truncate, "replace": _replace}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fault", sorted(CHUNK_FAULTS))
def test_missing_truncated_or_replaced_chunks_are_refused(copy_of, image, layout, seed, fault):
    folder = copy_of(layout)
    CHUNK_FAULTS[fault](np.random.default_rng(seed), chunk_files(folder))
    assert outcome(folder, image) == "refused"


@pytest.mark.parametrize("seed", range(12))
def test_bit_flips_in_checksummed_chunks_never_pass_unnoticed(copy_of, image, seed):
    folder = copy_of("v3")
    _flip(np.random.default_rng(seed), chunk_files(folder))
    assert outcome(folder, image) in ("same", "refused")


@pytest.mark.parametrize("seed", range(6))
def test_damaged_blosc_header_sizes_never_pass_unnoticed(copy_of, image, seed):
    folder = copy_of("v2")
    _flip_blosc_sizes(np.random.default_rng(seed), chunk_files(folder))
    assert outcome(folder, image) in ("same", "refused")


def test_messages_say_what_is_wrong(copy_of, originals):
    v2 = copy_of("v2")
    edit_multiscale(v2, "v2", axes(lambda a: a.pop(0)))
    with pytest.raises(InputError, match="multiscales\\[0\\].axes has 2 entries but the array has 3 dimensions"):
        open_stack(v2)
    v3 = copy_of("v3")
    (v3 / "0" / "c" / "1" / "2" / "3").write_bytes(b"\0" * 20)
    stack = open_stack(v3)  # opens: chunks are decoded when the data are read
    with pytest.raises(InputError, match="chunk '0/c/1/2/3' is corrupt \\(zstd: .*copy the image again"):
        stack.data.compute()
    with pytest.raises(InputError, match="chunk '0/c/1/2/3' is corrupt"):
        stack.data[3, 40].compute()  # dask turns this into one integer-indexed read of the chunk
    for key in ("c/0/0/0", "c/2/3/3"):
        (v3 / "0" / key).unlink()
    with pytest.raises(InputError, match="2 of 48 chunk files .* are missing .*'0/c/0/0/0'.*--allow-incomplete"):
        open_stack(v3)


def test_allow_incomplete_warns_and_reads_missing_chunks_as_fill_value(copy_of, image):
    folder = copy_of("v2")
    (folder / "0" / "1.2.3").unlink()
    with pytest.warns(UserWarning, match="1 of 48 chunk files .* missing"):
        stack = open_zarr(folder, allow_incomplete=True)
    expected = image.copy()
    expected[2:4, 32:48, 48:64] = 0
    np.testing.assert_array_equal(stack.data.compute(), expected)
    assert any(n.startswith("INCOMPLETE: 1 of 48 chunks missing") for n in stack.metadata["notes"])


def test_complete_file_reads_without_warning(originals, image):
    for path in originals.values():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert outcome(path, image) == "same"


def test_missing_chunks_of_a_label_image_are_background(tmp_path, image):
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[1:3, 10:20, 10:20] = 7
    path = write_ome_zarr(tmp_path / "r.ome.zarr", image, SPACING, labels={"spines": labels}, chunks=CHUNKS)
    spines = path / "labels" / "spines"
    assert len(chunk_files(spines)) == N_CHUNKS  # every chunk written, empty ones too
    for file in chunk_files(spines)[-10:]:
        file.unlink()  # chunks of pure background, as other writers leave out
    np.testing.assert_array_equal(open_stack(spines).data.compute(), labels)


def test_writer_stores_every_chunk_of_an_image_with_empty_regions(tmp_path, image):
    holes = image.copy()
    holes[:, :16, :16] = 0
    path = write_ome_zarr(tmp_path / "h.ome.zarr", holes, SPACING, chunks=CHUNKS)
    assert len(chunk_files(path)) == N_CHUNKS
    np.testing.assert_array_equal(open_stack(path).data.compute(), holes)


def test_census_counts_missing_and_stray_chunks():
    def encode(c):
        return "c/" + "/".join(map(str, c))

    keys = {"zarr.json", "c/0/0", "c/0/1", "c/1/0", "c/1/1", "c/5/0", "c/00/1", "notes.txt"}
    found = census(keys, shape=(30, 20), unit=(10, 10), encode=encode)
    assert (found.expected, found.present, found.missing, found.outside) == (6, 4, 2, 1)
    assert found.missing_examples == ("c/2/0", "c/2/1")
    assert found.filled_block == (20, 20)


# ---- the command line: exit code 2, one message, no traceback ----------------------------------

@pytest.mark.parametrize("damage", ["axes", "missing chunk", "corrupt chunk", "no metadata"])
def test_info_on_a_damaged_zarr_prints_one_message(copy_of, capsys, damage):
    folder = copy_of("v2")
    if damage == "axes":
        edit_multiscale(folder, "v2", axes(lambda a: [e.pop("name") for e in a]))
    elif damage == "missing chunk":
        (folder / "0" / "0.0.0").unlink()
    elif damage == "corrupt chunk":
        (folder / "0" / "2.3.3").write_bytes(np.random.default_rng(0).bytes(64))
    else:
        for name in (".zgroup", ".zattrs"):
            (folder / name).unlink()
    code = main(["info", str(folder)])
    out, err = capsys.readouterr()
    assert code == EXIT_INPUT
    assert err.startswith("spinequant: error: ") and "Traceback" not in err
    assert str(folder) in err
