"""Fault injection: damaged TIFFs and OME-Zarrs, interrupted runs, a full disk.

    .venv/bin/python benchmarks/fuzz_inputs.py [--seed 0] [--n 60] [--signals 12] [--out DIR]

Every damaged input is read in a fresh process the way ``analyze`` reads it
(``spinequant.io.read_stack``) with a 6 GiB address-space limit and a 60 s time limit, and
``spinequant info`` is run on it too. Each case ends in one of:

* ``read intact`` -- the data, shape and voxel size equal the undamaged file's;
* ``clean error`` -- an :class:`~spinequant.errors.InputError` naming the file, and ``info``
  exits with the error code and no traceback;
* ``silent misread`` -- read without an error but different from the undamaged file (or
  ``info`` succeeded where the read failed);
* ``traceback`` -- any other exception, or a traceback printed by ``info``;
* ``hang`` / ``killed`` -- the time limit was hit, or the process died.

Mutations of the (zlib-compressed ImageJ) sample stack and of an uncompressed OME-TIFF copy:
truncation at random offsets, bit flips in the header and in the IFDs, width and length
swapped, an IFD loop, strip offsets and byte counts swapped, an OME SizeZ far larger than the
file. Mutations of an OME-Zarr copy: metadata removed or garbled, axes, multiscales, datasets
and scales altered, chunk files removed or corrupted, the shape enlarged. Then ``analyze`` is
interrupted with SIGINT/SIGTERM at random moments (exit code, message, leftovers), and, when
run as root, ``analyze`` writes onto a 2 MiB tmpfs (disk full).

Writes a table (counts per outcome and per mutation kind) to stdout and
``benchmarks/results/fuzz_inputs.md``; the failing cases are listed below it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
PY = sys.executable
SAMPLE = HERE.parent / "src" / "spinequant" / "data" / "deepd3_benchmark_crop.tif"
CLI = [PY, "-c", "import sys; from spinequant.cli import main; sys.exit(main())"]
VOXEL = ["--voxel-size", "0.5", "0.094", "0.094"]

READER = r"""
import hashlib, json, resource, sys, warnings
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from spinequant.errors import InputError
from spinequant.io import read_stack
path = sys.argv[1]
try:
    s = read_stack(path)
    d = s.data
    print(json.dumps({"outcome": "read", "shape": list(d.shape), "dtype": str(d.dtype),
                      "spacing": [round(float(v), 6) for v in s.spacing],
                      "sha": hashlib.sha256(d.tobytes()).hexdigest()}))
except InputError as exc:
    print(json.dumps({"outcome": "input error", "message": str(exc)}))
except BaseException as exc:
    print(json.dumps({"outcome": "exception", "message": f"{type(exc).__name__}: {exc}"[:300]}))
"""


def run_reader(path: Path, timeout: float = 60.0) -> dict:
    try:
        p = subprocess.run([PY, "-c", READER, str(path)], capture_output=True, text=True,
                           timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        return {"outcome": "hang"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"outcome": "killed", "message": f"exit {p.returncode}: {p.stderr[-300:]}"}
    return json.loads(lines[-1])


def run_info(path: Path, timeout: float = 60.0) -> tuple[int | None, str]:
    try:
        p = subprocess.run(CLI + ["info", str(path)], capture_output=True, text=True,
                           timeout=timeout, env=_env())
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return p.returncode, p.stderr


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="default")
    env["PYTHONPATH"] = str(HERE.parent / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def classify(reference: dict, result: dict, info: tuple[int | None, str], path: Path) -> tuple[str, str]:
    code, stderr = info
    if result["outcome"] in ("hang", "killed") or code is None:
        return ("hang" if result["outcome"] == "hang" or code is None else "killed"), result.get("message", "")
    if "Traceback" in stderr:
        return "traceback", stderr.strip().splitlines()[-1][:200]
    if result["outcome"] == "exception":
        return "traceback", result["message"]
    if result["outcome"] == "input error":
        if path.name not in result["message"] and str(path) not in result["message"]:
            return "error without the file's name", result["message"][:200]
        return "clean error", result["message"][:200]
    same = all(result[k] == reference[k] for k in ("shape", "dtype", "spacing", "sha"))
    if same:
        return "read intact", ""
    return "silent misread", f"shape {result['shape']} spacing {result['spacing']}"


# --- TIFF mutations -------------------------------------------------------------------------

def ifd_regions(path: Path) -> list[tuple[int, int]]:
    """(start, end) byte ranges of every IFD of a classic little-endian TIFF."""
    raw = path.read_bytes()
    regions, offset, seen = [], int.from_bytes(raw[4:8], "little"), set()
    while offset and offset not in seen and offset + 2 <= len(raw):
        seen.add(offset)
        n = int.from_bytes(raw[offset:offset + 2], "little")
        end = offset + 2 + 12 * n + 4
        regions.append((offset, end))
        offset = int.from_bytes(raw[end - 4:end], "little")
    return regions


def tag_entry(raw: bytes, ifd: tuple[int, int], code: int) -> int | None:
    """Byte offset of tag ``code``'s 12-byte entry in an IFD, or None."""
    start = ifd[0] + 2
    for i in range((ifd[1] - ifd[0] - 6) // 12):
        at = start + 12 * i
        if int.from_bytes(raw[at:at + 2], "little") == code:
            return at
    return None


def swapped_tags(raw: bytes, ifds, code_a: int, code_b: int, *, part: tuple[int, int]) -> bytes:
    """``raw`` with bytes ``part`` of two tags' 12-byte entries swapped in every IFD (8-12:
    the value; 2-12: type, count and value)."""
    b = bytearray(raw)
    lo, hi = part
    for ifd in ifds:
        a, c = tag_entry(raw, ifd, code_a), tag_entry(raw, ifd, code_b)
        b[a + lo:a + hi], b[c + lo:c + hi] = raw[c + lo:c + hi], raw[a + lo:a + hi]
    return bytes(b)


def tiff_mutations(base: Path, rng: np.random.Generator, n: int, label: str):
    raw = base.read_bytes()
    ifds = ifd_regions(base)
    for i in range(n // 3):
        cut = int(rng.choice([4, 8, 16, 100, int(rng.integers(8, len(raw) - 1))]))
        yield f"{label}: truncated", raw[:cut]
    for i in range(n // 3):
        region = (0, 8) if i % 4 == 0 else ifds[int(rng.integers(len(ifds)))]
        at = int(rng.integers(*region))
        b = bytearray(raw)
        b[at] ^= 1 << int(rng.integers(8))
        yield f"{label}: bit flip in {'header' if region == (0, 8) else 'IFD'}", bytes(b)
    yield f"{label}: width and length swapped", swapped_tags(raw, ifds, 256, 257, part=(8, 12))
    for k in (1, len(ifds) // 2, len(ifds) - 1):
        b = bytearray(raw)
        end = ifds[k][1]
        b[end - 4:end] = ifds[max(k - 1, 0)][0].to_bytes(4, "little")
        yield f"{label}: IFD loop", bytes(b)
    yield f"{label}: strip offsets and byte counts swapped", swapped_tags(raw, ifds, 273, 279, part=(2, 12))
    for k in range(n - 2 * (n // 3) - 4):
        cut = int(rng.integers(ifds[-1][1], len(raw) - 1)) if k % 2 else int(rng.integers(len(raw) // 2, len(raw)))
        yield f"{label}: truncated in the data", raw[:cut]


def ome_copy(data: np.ndarray, folder: Path) -> Path:
    path = folder / "base.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.094,
                                                     "PhysicalSizeY": 0.094, "PhysicalSizeZ": 0.5})
    return path


def ome_size_mutations(base: Path, data: np.ndarray, folder: Path):
    with tifffile.TiffFile(base) as tf:
        xml = tf.pages[0].description
    for size in (24, 99999):
        bad = xml.replace(f'SizeZ="{data.shape[0]}"', f'SizeZ="{size}"')
        path = folder / f"ome_sizez_{size}.ome.tif"
        tifffile.imwrite(path, data, description=bad, metadata=None)
        yield f"OME-TIFF: SizeZ {size} over {data.shape[0]} planes", path


# --- Zarr mutations -------------------------------------------------------------------------

def zarr_copy(data: np.ndarray, folder: Path) -> Path:
    from spinequant.io.omezarr import write_ome_zarr

    path = folder / "base.ome.zarr"
    write_ome_zarr(path, data, (0.5, 0.094, 0.094))
    return path


def _json_edit(root: Path, rel: str, edit) -> None:
    f = root / rel
    meta = json.loads(f.read_text())
    edit(meta)
    f.write_text(json.dumps(meta))


def _ms(meta: dict) -> dict:
    return _attrs(meta)["multiscales"][0]


def zarr_mutations(base: Path, rng: np.random.Generator, n_chunks: int):
    """(kind, function(root)) pairs that damage a copy of ``base`` in place (Zarr v2 or v3)."""
    v3 = (base / "zarr.json").exists()
    group_attrs = "zarr.json" if v3 else ".zattrs"
    group_meta = "zarr.json" if v3 else ".zgroup"
    array_meta = next(p for p in base.rglob("zarr.json" if v3 else ".zarray") if p.parent != base)
    arr_rel = str(array_meta.relative_to(base))
    meta_names = {"zarr.json", ".zattrs", ".zarray", ".zgroup"}
    chunks = sorted(p for p in base.rglob("*") if p.is_file() and p.name not in meta_names)

    def remove(rel):
        return lambda r: (r / rel).unlink()

    def garble(rel):
        return lambda r: (r / rel).write_text('{"zarr_format": 3, "node_type": ')

    def ms_edit(edit):
        return lambda r: _json_edit(r, group_attrs, lambda m: edit(_ms(m)))

    def scale(m):
        return m["datasets"][0]["coordinateTransformations"][0]

    yield "Zarr: group metadata missing", remove(group_meta)
    yield "Zarr: group attributes garbled", garble(group_attrs)
    yield "Zarr: array metadata missing", remove(arr_rel)
    yield "Zarr: array metadata garbled", garble(arr_rel)
    yield "Zarr: axes count wrong", ms_edit(lambda m: m["axes"].pop())
    yield "Zarr: axes without names", ms_edit(lambda m: [a.pop("name") for a in m["axes"]])
    yield "Zarr: axes names repeated", ms_edit(lambda m: [a.update(name="x") for a in m["axes"]])
    yield "Zarr: multiscales not a list", lambda r: _json_edit(
        r, group_attrs, lambda m: _attrs(m).update(multiscales={"not": "a list"}))
    yield "Zarr: multiscales empty", lambda r: _json_edit(r, group_attrs, lambda m: _attrs(m).update(multiscales=[]))
    yield "Zarr: dataset path missing", ms_edit(lambda m: m["datasets"][0].update(path="nowhere"))
    yield "Zarr: scale too short", ms_edit(lambda m: scale(m).update(scale=[1.0]))
    yield "Zarr: scale not numbers", ms_edit(lambda m: scale(m).update(scale=["a", "b", "c"]))
    yield "Zarr: scale negative", ms_edit(lambda m: scale(m).update(scale=[-0.5, 0.094, 0.094]))
    yield "Zarr: shape enlarged", lambda r: _json_edit(r, arr_rel, lambda m: m.update(shape=[s * 40 for s in m["shape"]]))
    for _ in range(max(1, n_chunks // 2)):
        rel = str(chunks[int(rng.integers(len(chunks)))].relative_to(base))
        yield "Zarr: chunk file missing", remove(rel)
    for _ in range(max(1, n_chunks - n_chunks // 2)):
        rel = str(chunks[int(rng.integers(len(chunks)))].relative_to(base))
        at = int(rng.integers(0, 64))

        def corrupt(r, rel=rel, at=at):
            b = bytearray((r / rel).read_bytes())
            b[min(at, len(b) - 1)] ^= 0xFF
            (r / rel).write_bytes(bytes(b[: len(b) // 2]) if at % 2 else bytes(b))
        yield "Zarr: chunk corrupted", corrupt


def _attrs(meta: dict) -> dict:
    attrs = meta.get("attributes", meta)
    return attrs.get("ome", attrs)


# --- interrupted runs and a full disk --------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name or ".old-" in p.name)


def signal_runs(n: int, rng: np.random.Generator, folder: Path) -> list[dict]:
    rows = []
    for i in range(n):
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        after = float(rng.uniform(0.2, 6.0))   # a run of the sample takes about 5 s here
        out = folder / f"sig{i}"
        p = subprocess.Popen(CLI + ["analyze", str(SAMPLE), "--out", str(out), "--method", "lean2d_real"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        time.sleep(after)
        p.send_signal(sig)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            rows.append({"kind": f"{sig.name} after {after:.1f} s", "outcome": "hang", "detail": ""})
            continue
        want = 128 + int(sig)
        left = leftovers(folder) if folder.exists() else []
        if "Traceback" in err:
            outcome = "traceback"
        elif left:
            outcome = "leftovers"
        elif p.returncode == 0:
            outcome = "finished before the signal"
        elif p.returncode == want:
            outcome = "clean stop"
        else:
            outcome = f"exit {p.returncode}"
        rows.append({"kind": f"{sig.name}", "outcome": outcome,
                     "detail": f"after {after:.1f} s: {err.strip().splitlines()[-1][:120] if err.strip() else ''}"})
        shutil.rmtree(out, ignore_errors=True)
    return rows


def disk_full_runs(folder: Path) -> list[dict]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return [{"kind": "disk full", "outcome": "not run (needs root for a tmpfs)", "detail": ""}]
    rows = []
    for size in ("256k", "2m"):
        mnt = folder / f"tmpfs{size}"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)]).returncode:
            return [{"kind": "disk full", "outcome": "not run (mount failed)", "detail": ""}]
        try:
            p = subprocess.run(CLI + ["analyze", str(SAMPLE), "--out", str(mnt / "r"), "--method", "classical"],
                               capture_output=True, text=True, env=_env(), timeout=300)
            left = leftovers(mnt)
            err = p.stderr.strip()
            outcome = ("traceback" if "Traceback" in err else "leftovers" if left
                       else "clean error" if p.returncode != 0 else "finished")
            rows.append({"kind": f"disk full ({size} tmpfs)", "outcome": outcome,
                         "detail": err.splitlines()[-1][:160] if err else ""})
        finally:
            subprocess.run(["umount", str(mnt)])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=30, help="mutations per TIFF base (two bases)")
    ap.add_argument("--chunks", type=int, default=10, help="chunk mutations of the OME-Zarr")
    ap.add_argument("--signals", type=int, default=12)
    ap.add_argument("--out", default=str(HERE / "results" / "fuzz_inputs.md"))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tifffile.imread(SAMPLE)
        ome = ome_copy(data, tmp)
        cases = []
        for label, base in (("ImageJ TIFF (zlib)", SAMPLE), ("OME-TIFF", ome)):
            ref = run_reader(base)
            for i, (kind, content) in enumerate(tiff_mutations(base, rng, args.n, label)):
                path = tmp / f"case{len(cases)}.tif"
                path.write_bytes(content)
                cases.append((kind, path, ref))
        ref_ome = run_reader(ome)
        cases += [(kind, path, ref_ome) for kind, path in ome_size_mutations(ome, data, tmp)]
        zbase = zarr_copy(data, tmp)
        ref_z = run_reader(zbase)
        for kind, damage in zarr_mutations(zbase, rng, args.chunks):
            path = tmp / f"case{len(cases)}.ome.zarr"
            shutil.copytree(zbase, path)
            try:
                damage(path)
            except Exception as exc:  # the mutation itself did not apply to this layout
                print(f"skipped {kind}: {exc}", file=sys.stderr)
                continue
            cases.append((kind, path, ref_z))
        t = time.perf_counter()
        for kind, path, ref in cases:
            outcome, detail = classify(ref, run_reader(path), run_info(path), path)
            rows.append({"kind": kind, "outcome": outcome, "detail": detail})
            print(f"{kind:55s} {outcome:16s} {detail[:100]}", flush=True)
        print(f"{len(cases)} damaged files in {time.perf_counter() - t:.0f} s", flush=True)
        for row in signal_runs(args.signals, rng, tmp / "signals") + disk_full_runs(tmp):
            rows.append(row)
            print(f"{row['kind']:55s} {row['outcome']:16s} {row['detail'][:100]}", flush=True)
    write_table(rows, Path(args.out), args)


def write_table(rows: list[dict], out: Path, args) -> None:
    groups = collections.defaultdict(collections.Counter)
    for r in rows:
        groups[r["kind"].split(" after ")[0]][r["outcome"]] += 1
    outcomes = sorted({r["outcome"] for r in rows})
    lines = [f"`python benchmarks/fuzz_inputs.py --seed {args.seed} --n {args.n} --chunks {args.chunks} "
             f"--signals {args.signals}` ({time.strftime('%Y-%m-%d')})", "",
             "| fault | cases | " + " | ".join(outcomes) + " |",
             "|---|---|" + "---|" * len(outcomes)]
    for kind, counts in groups.items():
        lines.append(f"| {kind} | {sum(counts.values())} | " + " | ".join(str(counts.get(o, 0)) for o in outcomes) + " |")
    total = collections.Counter(r["outcome"] for r in rows)
    lines.append(f"| **all** | {len(rows)} | " + " | ".join(str(total.get(o, 0)) for o in outcomes) + " |")
    bad = [r for r in rows if r["outcome"] in ("traceback", "silent misread", "hang", "killed", "leftovers",
                                                "error without the file's name")
           or r["outcome"].startswith("exit")]
    if bad:
        lines += ["", "Failures:", ""] + [f"* {r['kind']}: {r['outcome']} -- {r['detail']}" for r in bad]
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
