"""CZI, LIF and ND2 through their optional readers.

No vendor files can be downloaded here, so: the metadata -> voxel size mappings are checked on
metadata shaped like each reader's output (ND2 with nd2's own dataclasses); whole reads go through
open_stack with stand-in reader objects that have the reader's interface; CZI and LIF are also
read by the real czifile / liffile from minimal files built in the tests, laid out as those
readers parse them (uncompressed; real acquisitions may use compression and more dimensions).
"""

import re
import struct
import sys
import uuid
from types import SimpleNamespace

import numpy as np
import pytest

from spinequant.errors import InputError, VoxelSizeError
from spinequant.io import open_stack, read_stack
from spinequant.io.vendor import czi_channel_names, czi_spacing, lif_spacing, nd2_spacing

SPACING = (0.5, 0.094, 0.094)


def _file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\0" * 64)
    return path


# --- missing extras --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, module, extra", [(".czi", "czifile", "czi"), (".lif", "liffile", "lif"),
                                                   (".nd2", "nd2", "nd2")])
def test_missing_extra_says_which_pip_command(tmp_path, monkeypatch, suffix, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(InputError, match=re.escape(f"pip install 'spinequant[{extra}]'")):
        read_stack(_file(tmp_path, f"cell{suffix}"))


@pytest.mark.parametrize("suffix, module", [(".czi", "czifile"), (".lif", "liffile"), (".nd2", "nd2")])
def test_real_reader_on_a_damaged_file_gives_input_error(tmp_path, suffix, module):
    pytest.importorskip(module)
    with pytest.raises(InputError, match="cannot be read as a .* file.*OME-TIFF"):
        open_stack(_file(tmp_path, f"broken{suffix}"))


@pytest.mark.parametrize("module, cls, attrs", [
    ("czifile", "CziFile", ["axes", "asarray", "metadata", "__enter__"]),
    ("liffile", "LifFile", ["images", "__enter__"]),
    ("nd2", "ND2File", ["sizes", "asarray", "metadata", "__enter__"]),
])
def test_installed_readers_have_the_interface_we_use(module, cls, attrs):
    mod = pytest.importorskip(module)
    klass = getattr(mod, cls)
    for attr in attrs:
        assert hasattr(klass, attr), attr


# --- CZI -------------------------------------------------------------------------------------

CZI_XML = """<ImageDocument><Metadata>
<Information><Image><Dimensions><Channels>
  <Channel Id="Channel:0" Name="EGFP"><Fluor>EGFP</Fluor></Channel>
  <Channel Id="Channel:1" Name="mCherry"/>
</Channels></Dimensions></Image></Information>
<Scaling><Items>
  <Distance Id="X"><Value>9.4E-08</Value><DefaultUnitFormat>µm</DefaultUnitFormat></Distance>
  <Distance Id="Y"><Value>9.4E-08</Value><DefaultUnitFormat>µm</DefaultUnitFormat></Distance>
  <Distance Id="Z"><Value>5.0000000000000004E-07</Value><DefaultUnitFormat>µm</DefaultUnitFormat></Distance>
</Items></Scaling></Metadata></ImageDocument>"""


def test_czi_spacing_and_channels_from_metadata_xml():
    assert czi_spacing(CZI_XML) == SPACING  # metres -> µm, float noise removed
    assert czi_channel_names(CZI_XML) == ("EGFP", "mCherry")
    no_z = re.sub(r'<Distance Id="Z">.*?</Distance>', "", CZI_XML, flags=re.S)
    z, y, x = czi_spacing(no_z)
    assert np.isnan(z) and (y, x) == (0.094, 0.094)
    assert np.isnan(czi_spacing(None)).all()


class FakeCzi:
    """Has the parts of czifile.CziFile that spinequant uses."""

    def __init__(self, data, axes, xml=CZI_XML):
        self._data, self.axes, self._xml = data, axes, xml

    def metadata(self, raw=True):
        return self._xml

    def asarray(self):
        return self._data

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_module(monkeypatch, name, **attrs):
    monkeypatch.setitem(sys.modules, name, SimpleNamespace(**attrs))


def test_czi_axes_mapped_to_czyx_with_spacing(tmp_path, monkeypatch):
    data = np.random.default_rng(0).integers(0, 4000, (1, 1, 2, 5, 16, 20, 1), dtype=np.uint16)
    _fake_module(monkeypatch, "czifile", CziFile=lambda p: FakeCzi(data, "BSCZYX0"))
    stack = open_stack(_file(tmp_path, "a.czi"))
    assert stack.axes == "CZYX" and stack.shape == (2, 5, 16, 20)
    assert stack.spacing == SPACING and stack.channel_names == ("EGFP", "mCherry")
    assert stack.metadata["format"] == "CZI"
    np.testing.assert_array_equal(read_stack(_file(tmp_path, "a.czi"), channel=1).data, data[0, 0, 1, :, :, :, 0])


def test_czi_scenes_need_a_choice(tmp_path, monkeypatch):
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 1, 3, 4, 5, 1) + 1
    _fake_module(monkeypatch, "czifile", CziFile=lambda p: FakeCzi(data, "SCZYX0"))
    path = _file(tmp_path, "s.czi")
    with pytest.raises(InputError, match="holds 2 scenes.*--image N"):
        open_stack(path)
    stack = read_stack(path, image=1)
    np.testing.assert_array_equal(stack.data, data[1, 0, :, :, :, 0])
    with pytest.raises(InputError, match="Scene 5 does not exist.*2 scenes"):
        open_stack(path, image=5)


def test_czi_extra_axis_and_rgb_give_clear_errors(tmp_path, monkeypatch):
    views = np.ones((2, 3, 4, 5, 1), dtype=np.uint8)
    _fake_module(monkeypatch, "czifile", CziFile=lambda p: FakeCzi(views, "VZYX0"))
    with pytest.raises(InputError, match=r"2 views \(axis V\).*single Z-stack"):
        open_stack(_file(tmp_path, "v.czi"))
    rgb = np.ones((1, 3, 4, 5, 3), dtype=np.uint8) * np.array([1, 2, 3], np.uint8)  # true colour
    _fake_module(monkeypatch, "czifile", CziFile=lambda p: FakeCzi(rgb, "CZYX0"))
    with pytest.raises(InputError, match="RGB colour image"):
        read_stack(_file(tmp_path, "rgb.czi"))


def _czi_bytes(data, xml):
    """A minimal uncompressed CZI: header, metadata, one Gray8 subblock per plane, directory.

    ``data`` has axes S C Z Y X (uint8). Dimension entries are stored fastest first (X Y Z C S),
    so czifile reports the axes as ``SCZYX0``.
    """
    def segment(sid, body):
        return struct.pack("<16sqq", sid, len(body), len(body)) + body

    ns, nc, nz, ny, nx = data.shape
    meta = struct.pack("<ii", len(xml.encode()), 0) + bytes(248) + xml.encode()
    pos = 112 + 32 + len(meta)  # file header segment is 32 + 80 bytes
    entries, blocks = [], []
    for s in range(ns):
        for c in range(nc):
            for z in range(nz):
                dims = [(b"X", 0, nx), (b"Y", 0, ny), (b"Z", z, 1), (b"C", c, 1), (b"S", s, 1)]
                entry = struct.pack("<2siqiiBB4si", b"DV", 0, pos, 0, 0, 0, 0, bytes(4), len(dims)) + b"".join(
                    struct.pack("<4siifi", name, start, n, 0.0, n) for name, start, n in dims)
                raw = data[s, c, z].tobytes()
                body = struct.pack("<iiq", 0, 0, len(raw)) + entry + bytes(max(240 - len(entry), 0)) + raw
                blocks.append(segment(b"ZISRAWSUBBLOCK", body))
                entries.append(entry)
                pos += 32 + len(body)
    directory = struct.pack("<i", len(entries)) + bytes(124) + b"".join(entries)
    guid = uuid.UUID(int=1).bytes
    head = struct.pack("<iiii16s16siqqiq", 1, 0, 0, 0, guid, guid, 0, pos, 112, 0, 0)
    return (segment(b"ZISRAWFILE", head) + segment(b"ZISRAWMETADATA", meta) + b"".join(blocks)
            + segment(b"ZISRAWDIRECTORY", directory))


def test_czi_read_by_czifile_with_spacing_channels_and_scenes(tmp_path):
    pytest.importorskip("czifile")
    data = np.random.default_rng(7).integers(0, 255, (2, 2, 5, 16, 20), dtype=np.uint8)
    path = tmp_path / "exp.czi"
    path.write_bytes(_czi_bytes(data, CZI_XML))
    with pytest.raises(InputError, match="holds 2 scenes"):
        open_stack(path)
    stack = open_stack(path, image=1)
    assert stack.axes == "CZYX" and stack.shape == (2, 5, 16, 20)
    assert stack.spacing == SPACING and stack.channel_names == ("EGFP", "mCherry")
    np.testing.assert_array_equal(stack.data, data[1])
    single = tmp_path / "one.czi"
    single.write_bytes(_czi_bytes(data[:1, :1], CZI_XML))
    np.testing.assert_array_equal(read_stack(single).data, data[0, 0])


# --- LIF -------------------------------------------------------------------------------------

def test_lif_spacing_from_dimension_descriptions():
    dims = [
        {"DimID": "1", "NumberOfElements": "20", "Length": repr(0.094e-6 * 19), "Unit": "m"},
        {"DimID": "2", "NumberOfElements": "16", "Length": repr(0.094e-6 * 15), "Unit": "m"},
        {"DimID": "3", "NumberOfElements": "5", "Length": repr(-0.5e-6 * 4), "Unit": "m"},  # stack taken downwards
        {"DimID": "4", "NumberOfElements": "3", "Length": "12.0", "Unit": "s"},
    ]
    assert lif_spacing(dims) == SPACING
    z, y, x = lif_spacing(dims[:2] + [{"DimID": "3", "NumberOfElements": "1", "Length": "0", "Unit": "m"}])
    assert np.isnan(z) and (y, x) == (0.094, 0.094)
    assert lif_spacing([{"DimID": "1", "NumberOfElements": "11", "Length": "1", "Unit": "µm"}])[2] == 0.1


def _lif_bytes(images):
    """A minimal LIF (version 2) file: binary header, XML description, one memory block per image.

    ``images`` lists (name, data ZCYX uint8, spacing µm, LUT names). Layout as liffile reads it:
    per Z plane, one Y*X plane per channel.
    """
    elements, blocks = [], [("MemBlock_0", b"")]
    for k, (name, data, (dz, dy, dx), luts) in enumerate(images):
        nz, nc, ny, nx = data.shape
        chans = "".join(
            f'<ChannelDescription DataType="0" ChannelTag="0" Resolution="8" NameOfMeasuredQuantity="" '
            f'Min="0" Max="255" Unit="" LUTName="{lut}" IsLUTInverted="0" BytesInc="{c * ny * nx}" BitInc="0"/>'
            for c, lut in enumerate(luts))
        dims = "".join(
            f'<DimensionDescription DimID="{i}" NumberOfElements="{n}" Origin="0" '
            f'Length="{step * 1e-6 * (n - 1)!r}" Unit="m" BytesInc="{inc}" BitInc="0"/>'
            for i, n, step, inc in ((1, nx, dx, 1), (2, ny, dy, nx), (3, nz, dz, nc * ny * nx)))
        block = f"MemBlock_{k + 1}"
        elements.append(
            f'<Element Name="{name}"><Data><Image><ImageDescription><Channels>{chans}</Channels>'
            f'<Dimensions>{dims}</Dimensions></ImageDescription></Image></Data>'
            f'<Memory Size="{data.nbytes}" MemoryBlockID="{block}"/><Children/></Element>')
        blocks.append((block, data.tobytes()))
    xml = ('<LMSDataContainerHeader Version="2"><Element Name="project"><Data><Experiment/></Data>'
           '<Memory Size="0" MemoryBlockID="MemBlock_0"/><Children>' + "".join(elements)
           + "</Children></Element></LMSDataContainerHeader>")
    text = xml.encode("utf-16-le")
    out = struct.pack("<IIBI", 0x70, len(text) + 5, 0x2A, len(xml)) + text
    for block, raw in blocks:
        out += struct.pack("<IIBQBI", 0x70, 0, 0x2A, len(raw), 0x2A, len(block)) + block.encode("utf-16-le") + raw
    return out


def test_lif_read_by_liffile_with_spacing_channels_and_image_choice(tmp_path):
    pytest.importorskip("liffile")
    rng = np.random.default_rng(4)
    a = rng.integers(0, 255, (5, 2, 16, 20), dtype=np.uint8)
    b = rng.integers(0, 255, (3, 1, 8, 9), dtype=np.uint8)
    path = tmp_path / "exp.lif"
    path.write_bytes(_lif_bytes([("Series001", a, SPACING, ["Green", "Red"]),
                                 ("Series002", b, (1.0, 0.2, 0.2), ["Gray"])]))
    with pytest.raises(InputError, match="holds 2 images.*0: Series001, 1: Series002.*--image"):
        open_stack(path)
    stack = open_stack(path, image=0)
    assert stack.axes == "CZYX" and stack.shape == (2, 5, 16, 20)
    assert stack.spacing == SPACING and stack.channel_names == ("Green", "Red")
    np.testing.assert_array_equal(stack.data, a.transpose(1, 0, 2, 3))
    second = read_stack(path, image="Series002")
    assert second.spacing == (1.0, 0.2, 0.2) and second.metadata["image"] == "Series002"
    np.testing.assert_array_equal(second.data, b[:, 0])


# --- ND2 -------------------------------------------------------------------------------------

def _nd2_metadata(names, calibrated=(True, True, True), calibration=(0.094, 0.094, 0.5)):
    """ND2 metadata as nd2 returns it: its own dataclasses when nd2 is installed, else look-alikes."""
    try:
        import nd2.structures as s
    except ImportError:
        s = None
    if s is None:
        volume = SimpleNamespace(axesCalibrated=calibrated, axesCalibration=calibration)
        channels = [SimpleNamespace(channel=SimpleNamespace(name=n, index=i), volume=volume)
                    for i, n in enumerate(names)]
        return SimpleNamespace(channels=channels)
    volume = s.Volume(axesCalibrated=calibrated, axesCalibration=calibration,
                      axesInterpretation=("distance",) * 3, bitsPerComponentInMemory=16,
                      bitsPerComponentSignificant=12, cameraTransformationMatrix=(1, 0, 0, 1),
                      componentCount=1, componentDataType="unsigned", voxelCount=(20, 16, 5))
    channels = [s.Channel(channel=s.ChannelMeta(name=n, index=i, color=s.Color(0, 255, 0)),
                          loops=None, microscope=s.Microscope(), volume=volume) for i, n in enumerate(names)]
    return s.Metadata(contents=s.Contents(channelCount=len(names), frameCount=5), channels=channels)


def test_nd2_spacing_uses_only_calibrated_axes():
    meta = _nd2_metadata(["GFP"])
    assert nd2_spacing(meta.channels[0].volume) == SPACING
    # nd2 reports 1 µm for an axis without calibration; that must not become a voxel size
    uncal = _nd2_metadata(["GFP"], calibrated=(True, True, False), calibration=(0.094, 0.094, 1.0))
    z, y, x = nd2_spacing(uncal.channels[0].volume)
    assert np.isnan(z) and (y, x) == (0.094, 0.094)
    assert np.isnan(nd2_spacing(None)).all()


class FakeND2:
    """Has the parts of nd2.ND2File that spinequant uses."""

    def __init__(self, data, sizes, metadata):
        self._data, self.sizes, self.metadata = data, sizes, metadata

    def asarray(self, position=None):
        if position is None:
            return self._data
        p = list(self.sizes).index("P")
        return np.take(self._data, [position], axis=p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_nd2_time_series_with_channels(tmp_path, monkeypatch):
    sizes = {"T": 3, "Z": 5, "C": 2, "Y": 16, "X": 20}
    data = np.random.default_rng(5).integers(1, 4000, tuple(sizes.values()), dtype=np.uint16)
    meta = _nd2_metadata(["GFP", "mCherry"])
    _fake_module(monkeypatch, "nd2", ND2File=lambda p: FakeND2(data, sizes, meta))
    path = _file(tmp_path, "t.nd2")
    stack = open_stack(path)
    assert stack.axes == "TCZYX" and stack.shape == (3, 2, 5, 16, 20)
    assert stack.spacing == SPACING and stack.channel_names == ("GFP", "mCherry")
    np.testing.assert_array_equal(read_stack(path, channel=1, time=2).data, data[2, :, 1])


def test_nd2_positions_and_missing_z_calibration(tmp_path, monkeypatch):
    sizes = {"P": 2, "Z": 5, "Y": 16, "X": 20}
    data = np.random.default_rng(6).integers(1, 4000, tuple(sizes.values()), dtype=np.uint16)
    meta = _nd2_metadata(["GFP"], calibrated=(True, True, False), calibration=(0.094, 0.094, 1.0))
    _fake_module(monkeypatch, "nd2", ND2File=lambda p: FakeND2(data, sizes, meta))
    path = _file(tmp_path, "p.nd2")
    with pytest.raises(InputError, match="holds 2 stage positions.*--image N"):
        open_stack(path)
    with pytest.raises(VoxelSizeError, match="but not Z.*--voxel-size"):
        read_stack(path, image=1)
    stack = read_stack(path, image=1, voxel_size=(0.3, 0.094, 0.094))
    np.testing.assert_array_equal(stack.data, data[1])
    assert stack.metadata["image"] == "position 1"


def test_image_choice_rejected_for_single_stack_formats(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.ones((7, 4, 5), np.uint8))
    with pytest.raises(InputError, match="only applies to CZI, LIF and ND2"):
        open_stack(tmp_path / "a.tif", image=2)
