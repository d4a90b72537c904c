"""Bad input: one paragraph naming the problem and the fix, exit code 2, no traceback.

File-level problems go through ``spinequant info``. Problems with the image content, the
channel/time choice and the output folder stop ``spinequant analyze`` before any analysis;
``info`` only shows such stacks (and warns about a constant one). ``analyze`` runs the real
pipeline, which refuses these inputs before segmenting anything.
"""

import sys

import numpy as np
import pytest
import tifffile

from spinequant.cli import EXIT_INPUT, main
from spinequant.errors import InputError
from spinequant.io import read_stack, write_tiff

SPACING = (0.5, 0.094, 0.094)


def run(capsys, *args, command="info"):
    code = main([command, *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def analyze(capsys, tmp_path, *args):
    return run(capsys, *args, "--out", tmp_path / "results", "--quiet", command="analyze")


def assert_one_paragraph(code, err, *patterns):
    assert code == EXIT_INPUT
    assert err.startswith("spinequant: error: ")
    assert "Traceback" not in err and "\n\n" not in err.strip()
    text = " ".join(err.split())
    for p in patterns:
        assert p in text, f"{p!r} not in {text!r}"


@pytest.fixture
def good_tif(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, (7, 16, 20), dtype=np.uint8)
    return write_tiff(tmp_path / "good.tif", data, SPACING)


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "nope.tif")
    assert_one_paragraph(code, err, "does not exist", "Check the path")


def test_not_an_image(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run(capsys, tmp_path / "notes.txt")
    assert_one_paragraph(code, err, "is not an image format spinequant reads", "Export the stack", "TIFF")
    (tmp_path / "text.tif").write_text("hello")
    code, _, err = run(capsys, tmp_path / "text.tif")
    assert_one_paragraph(code, err, "is not a readable TIFF image", "copied completely")


def test_truncated_tiff(capsys, tmp_path, good_tif):
    raw = good_tif.read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    code, _, err = run(capsys, tmp_path / "cut.tif")
    assert_one_paragraph(code, err, "is truncated", "copy the file again or re-export it")


def test_corrupt_tiff_header_and_data(capsys, tmp_path, good_tif):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00" + b"garbage" * 20)
    code, _, err = run(capsys, tmp_path / "bad.tif")
    assert_one_paragraph(code, err, "damaged or incomplete", "re-export")
    # same size, compressed strips overwritten: the zlib stream cannot be decoded
    with tifffile.TiffFile(good_tif) as tf:
        offset = tf.pages[0].dataoffsets[0]
    raw = bytearray(good_tif.read_bytes())
    raw[offset:offset + 16] = b"\xff" * 16
    (tmp_path / "scrambled.tif").write_bytes(bytes(raw))
    code, _, err = run(capsys, tmp_path / "scrambled.tif")
    assert_one_paragraph(code, err, "is damaged", "cannot be decoded", "Re-export")


@pytest.mark.parametrize("voxel, words", [
    (("0", "0.094", "0.094"), ["Z voxel size", "is 0.0", "positive number of micrometres"]),
    (("0.5", "-0.1", "0.094"), ["Y voxel size", "is -0.1"]),
    (("0.5", "0.094", "nan"), ["X voxel size", "is nan"]),
    (("500", "94", "94"), ["500.0 µm", "implausible", "probably in nanometres"]),
])
def test_bad_voxel_size_override(capsys, good_tif, voxel, words):
    code, _, err = run(capsys, good_tif, "--voxel-size", *voxel)
    assert_one_paragraph(code, err, *words, "--voxel-size 0.5 0.094 0.094")


def test_absurd_voxel_size_in_file_metadata(capsys, tmp_path):
    data = np.ones((7, 16, 20), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "mm.tif", data, imagej=True, resolution=(1 / 0.094, 1 / 0.094),
                     metadata={"spacing": 0.5, "unit": "mm", "axes": "ZYX"})  # says mm, meant µm
    with pytest.raises(InputError, match="Z voxel size .* 500.0 µm.*implausible.*--voxel-size"):
        read_stack(tmp_path / "mm.tif")


def test_missing_vendor_extra_via_cli(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nd2", None)
    (tmp_path / "cell.nd2").write_bytes(b"\0" * 32)
    code, _, err = run(capsys, tmp_path / "cell.nd2")
    assert_one_paragraph(code, err, "needs the optional package 'nd2'", "pip install 'spinequant[nd2]'")


def test_info_reports_unknown_voxel_size_without_failing(capsys, tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.arange(7 * 4 * 5, dtype=np.uint8).reshape(7, 4, 5))
    code, out, _ = run(capsys, tmp_path / "plain.tif")
    assert code == 0 and "UNKNOWN" in out and "--voxel-size Z Y X" in out


# --- content, choice and output problems: `analyze` stops before analysing -------------------

@pytest.fixture
def multi(tmp_path):
    data = np.random.default_rng(1).integers(1, 255, (3, 7, 2, 8, 9), dtype=np.uint8)  # T Z C Y X
    tifffile.imwrite(tmp_path / "tzc.tif", data, imagej=True, resolution=(10, 10),
                     metadata={"spacing": 0.5, "unit": "um", "axes": "TZCYX"})
    return tmp_path / "tzc.tif"


def test_5d_without_channel_or_time_choice(capsys, tmp_path, multi):
    code, _, err = analyze(capsys, tmp_path, multi, "--channel", 0)
    assert_one_paragraph(code, err, "has 3 time points;", "Choose one with --time N (0 to 2)")
    code, _, err = analyze(capsys, tmp_path, multi, "--time", 0)
    assert_one_paragraph(code, err, "has 2 channels;", "Choose one with --channel N (0 to 1)")
    assert read_stack(multi, channel=1, time=2).shape == (7, 8, 9)


def test_channel_or_time_index_out_of_range(capsys, tmp_path, multi, good_tif):
    code, _, err = analyze(capsys, tmp_path, multi, "--channel", 2, "--time", 0)
    assert_one_paragraph(code, err, "Channel 2 does not exist", "2 channels, numbered 0 to 1", "--channel")
    code, _, err = analyze(capsys, tmp_path, multi, "--channel", 0, "--time", 3)
    assert_one_paragraph(code, err, "Time point 3 does not exist", "numbered 0 to 2", "--time")
    code, _, err = analyze(capsys, tmp_path, good_tif, "--channel", 1)
    assert_one_paragraph(code, err, "asked for channel 1", "has no channels. Leave out --channel")


def test_rgb_when_one_channel_is_expected(capsys, tmp_path):
    colours = np.ones((7, 8, 9, 3), np.uint8) * np.array([1, 2, 3], np.uint8)  # equal channels would be grey
    tifffile.imwrite(tmp_path / "rgb.tif", colours, photometric="rgb")
    code, _, err = analyze(capsys, tmp_path, tmp_path / "rgb.tif", "--voxel-size", *SPACING)
    assert_one_paragraph(code, err, "is an RGB colour image (0: red, 1: green, 2: blue)", "--channel N",
                         "Image > Type > 8-bit")


@pytest.mark.parametrize("value, words", [(0, "is all zero"), (7, "is constant (every voxel is 7)")])
def test_all_zero_or_constant_stack(capsys, tmp_path, value, words):
    path = write_tiff(tmp_path / "flat.tif", np.full((7, 8, 9), value, np.uint8), SPACING)
    code, _, err = analyze(capsys, tmp_path, path)
    assert_one_paragraph(code, err, words, "no signal to analyse", "right file, channel and time point")
    assert not (tmp_path / "results").exists()          # no empty results folder left behind
    (tmp_path / "results").mkdir()                      # a folder the user made stays
    analyze(capsys, tmp_path, path)
    assert (tmp_path / "results").is_dir()


def test_constant_stack_only_warns_in_info(capsys, tmp_path):
    path = write_tiff(tmp_path / "flat.tif", np.zeros((7, 8, 9), np.uint8), SPACING)
    code, out, _ = run(capsys, path)
    assert code == 0 and "WARNING: constant image" in out


def test_nan_and_inf_values(capsys, tmp_path):
    data = np.random.default_rng(2).random((7, 8, 9)).astype(np.float32)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    path = write_tiff(tmp_path / "nan.tif", data, SPACING)
    code, _, err = analyze(capsys, tmp_path, path)
    assert_one_paragraph(code, err, "contains 3 NaN and 1 infinite values", "Remove NaNs")


def test_output_folder_that_cannot_be_written(capsys, tmp_path, good_tif):
    blocker = tmp_path / "afile"
    blocker.write_text("x")  # as root chmod does not block writes; a path below a file always fails
    code = main(["analyze", str(good_tif), "--out", str(blocker / "out"), "--quiet"])
    _, err = capsys.readouterr()
    assert_one_paragraph(code, err, "Cannot write results to", "afile/out", "Not a directory",
                         "Choose a folder you can write to", "--out")


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`spinequant evaluate ... | head` writes its files and stops without a traceback."""
    import subprocess
    import sys

    import numpy as np

    from spinequant.io import write_tiff

    labels = np.zeros((3, 40, 40), np.uint16)
    for k in range(1, 30):
        labels[1, (k % 6) * 6 + 1:(k % 6) * 6 + 3, (k // 6) * 7 + 1:(k // 6) * 7 + 3] = k
    write_tiff(tmp_path / "l.tif", labels, (1.0, 0.1, 0.1))
    cmd = (f"{sys.executable} -c 'import sys; from spinequant.cli import main; sys.exit(main())' "
           f"evaluate {tmp_path / 'l.tif'} {tmp_path / 'l.tif'} --out {tmp_path / 'ev'} | head -2")
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr
    assert out.returncode in (0, 141)
    assert (tmp_path / "ev" / "instance_scores.csv").exists()


def test_progress_in_a_log_is_one_line_per_stage_and_the_outcome_goes_to_stdout(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys; from spinequant.cli import main; sys.exit(main())",
                          "analyze", "sample", "--method", "classical", "--out", str(tmp_path / "r"),
                          "--no-meshes"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr
    stages = [line.split("] ")[1] for line in out.stderr.splitlines() if line.startswith("[")]
    assert stages == ["segment", "instances", "measure", "export", "report"]
    assert "spines on 1 dendrite(s)" in out.stdout


@pytest.mark.parametrize("extra, pattern", [
    (("--project", "max"), "Leave out --chunk-size"),
    (("--channel", "0", "--ratio-channel", "0"), "is the structural channel"),
])
def test_chunked_refuses_block_options_with_a_projection_and_a_bad_ratio_channel_before_reading(
        capsys, tmp_path, extra, pattern):
    # A two-channel stack: a projection is analysed in memory (block options do not apply) and
    # the ratio's channel is checked before anything is read. Refused with one paragraph, and
    # no results folder or work folder is left behind.
    data = np.random.default_rng(0).integers(0, 1000, (4, 2, 32, 32)).astype(np.uint16)
    path = write_tiff(tmp_path / "two.tif", data, SPACING, axes="ZCYX")
    code, _, err = analyze(capsys, tmp_path, path, "--chunked", "--chunk-size", "256", *extra)
    assert_one_paragraph(code, err, pattern)
    assert not (tmp_path / "results").exists()
