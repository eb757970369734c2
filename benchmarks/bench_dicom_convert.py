"""dicom-folder conversion throughput and peak memory vs a bare pydicom loop.

Peer: a bare loop of ``pydicom.dcmread`` + ``.pixel_array`` over the same files with the same
number of processes (multiprocessing.Pool) — the least work any reader must do. A second
reference, the *write floor*, also writes every pixel array to an output file with its SHA-256
— the least any converter must do. meddata also maps every header to tables, writes Parquet,
checksums shards and publishes. Goal: throughput ≥ 0.8 of the bare loop; peak memory flat as
the input grows ×10.

Run:  .venv/bin/python benchmarks/bench_dicom_convert.py [--files 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import run_measured  # noqa: E402

BARE = r"""
import os, sys
from multiprocessing import Pool
import pydicom

def load(path):
    return int(pydicom.dcmread(path).pixel_array.shape[0])

if __name__ == "__main__":
    root, workers = sys.argv[1], int(sys.argv[2])
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    with Pool(workers) as pool:
        n = sum(1 for _ in pool.imap_unordered(load, files, chunksize=16))
    print(n)
"""

# The least any converter that writes its output must do: the bare loop, plus writing every
# decoded pixel array to an output file (one per 32 input files) with its SHA-256. No headers
# mapped, no tables, no Parquet.
WRITE_FLOOR = r"""
import hashlib, os, sys
from multiprocessing import Pool
import pydicom

def write(job):
    paths, out = job
    digest = hashlib.sha256()
    with open(out, "wb") as fh:
        for path in paths:
            pixels = pydicom.dcmread(path).pixel_array
            fh.write(pixels)
            digest.update(pixels)
    return len(paths)

if __name__ == "__main__":
    root, workers, dest = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    jobs = [(files[i : i + 32], os.path.join(dest, f"{i:08d}.bin")) for i in range(0, len(files), 32)]
    with Pool(workers) as pool:
        n = sum(pool.imap_unordered(write, jobs))
    print(n)
"""


def make_source(dest: Path, files: int, seed: int = 0, syntax: str = "raw") -> Path:
    """CT-like 512×512 int16 slices, 40 per series, one series per patient (real CT sizes),
    uncompressed (``raw``) or RLE Lossless (``rle``, decoded by both sides)."""
    from pydicom.uid import RLELossless, generate_uid

    from meddata.adapters._synth_dicom import _base, _set_pixels, ct_like

    rng = np.random.default_rng(seed)
    template = ct_like(rng, 4, 512)
    per_series = 40
    for i in range(files):
        p, z = divmod(i, per_series)
        if z == 0:
            patient = {
                "name": f"Doe^P{p}",
                "id": f"MRN{p:06d}",
                "birth": "19600101",
                "sex": "MF"[p % 2],
                "age": "060Y",
            }
            study = {"uid": generate_uid(), "date": "20200101", "accession": f"A{p}"}
            series = generate_uid()
            (dest / f"p{p:05d}").mkdir(parents=True, exist_ok=True)
        ds = _base("CT", patient, study, series)
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelSpacing = [0.7, 0.7]
        ds.InstanceNumber = z + 1
        _set_pixels(ds, (template[z % 4] + rng.integers(-5, 5, size=(512, 512))).astype(np.int16))
        if syntax == "rle":
            ds.compress(RLELossless)
        ds.save_as(dest / f"p{p:05d}" / f"slice_{z:04d}.dcm", enforce_file_format=True)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", type=int, default=300, help="files in the small input (the large one is ×10)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs per side; the best is kept")
    parser.add_argument(
        "--syntax", choices=["raw", "rle"], default="raw", help="source transfer syntax"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dicom-"))
    results = []
    try:
        bare_script = work / "bare.py"
        bare_script.write_text(BARE)
        for scale in (1, 10):
            n = args.files * scale
            src = make_source(work / f"src{scale}", n, syntax=args.syntax)
            # Every side starts with no dirty pages: otherwise whoever runs after a side that
            # wrote a gigabyte pays for flushing it (the kernel throttles writers).
            os.sync()
            size = sum(f.stat().st_size for f in src.rglob("*.dcm"))
            floor_script = work / "floor.py"
            floor_script.write_text(WRITE_FLOOR)
            key = work / "bench.key"
            key.write_bytes(os.urandom(32))
            out = {side: work / f"out-{side}" for side in ("floor", "meddata", "meddata_deid")}
            convert = [sys.executable, "-m", "meddata.cli", "convert", "dicom-folder", str(src)]
            convert += ["--workers", str(args.workers), "--json", "-o"]
            sides = {
                "bare": [sys.executable, str(bare_script), str(src), str(args.workers)],
                "floor": [sys.executable, str(floor_script), str(src), str(args.workers)]
                + [str(out["floor"])],
                "meddata": [*convert, str(out["meddata"]), "--no-deid"],
                "meddata_deid": [*convert, str(out["meddata_deid"]), "--deid-key-file", str(key)],
            }
            runs: dict[str, list[tuple[float, int, str]]] = {side: [] for side in sides}
            # Round robin (bare, floor, meddata, de-id, bare, ...): this VM's speed drifts within
            # minutes, and drift then touches every side alike instead of one side's runs.
            for _ in range(args.repeat):
                for side, command in sides.items():
                    if side == "floor":
                        out["floor"].mkdir()  # the floor script writes into an existing folder
                    runs[side].append(run_measured(command))
                    for folder in out.values():
                        shutil.rmtree(folder, ignore_errors=True)
                    os.sync()
            best = {side: min(r, key=lambda r: r[0]) for side, r in runs.items()}
            bare, floor = best["bare"], best["floor"]
            row = {
                "files": n,
                "input_mb": round(size / 1e6, 1),
                "bare_files_per_s": round(n / bare[0], 1),
                "meddata_files_per_s": round(n / best["meddata"][0], 1),
                "ratio": round(bare[0] / best["meddata"][0], 3),
                "write_floor_files_per_s": round(n / floor[0], 1),
                "ratio_to_write_floor": round(floor[0] / best["meddata"][0], 3),
                "deid_files_per_s": round(n / best["meddata_deid"][0], 1),
                "deid_ratio": round(bare[0] / best["meddata_deid"][0], 3),
                "bare_peak_rss_mb": round(bare[1] / 1e6),
                "meddata_peak_rss_mb": round(best["meddata"][1] / 1e6),
                "deid_peak_rss_mb": round(best["meddata_deid"][1] / 1e6),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    growth = results[1]["meddata_peak_rss_mb"] / max(1, results[0]["meddata_peak_rss_mb"])
    print(
        f"\n{dt.date.today()} · {os.cpu_count()} CPUs · workers={args.workers} · source {args.syntax}"
    )
    print(
        "| files | input MB | bare loop files/s | meddata files/s | ratio (goal ≥ 0.8) "
        "| write floor files/s | meddata / floor "
        "| meddata + de-id files/s | ratio | peak RSS MB: bare / meddata / + de-id |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['files']} | {r['input_mb']} | {r['bare_files_per_s']} "
            f"| {r['meddata_files_per_s']} | {r['ratio']} | {r['write_floor_files_per_s']} "
            f"| {r['ratio_to_write_floor']} | {r['deid_files_per_s']} "
            f"| {r['deid_ratio']} | {r['bare_peak_rss_mb']} / {r['meddata_peak_rss_mb']} "
            f"/ {r['deid_peak_rss_mb']} |"
        )
    print(f"meddata peak RSS growth for ×10 input: ×{growth:.2f} (goal: flat)")
    # Marginal throughput: the extra files over the extra time from the small to the large
    # input, which takes out what each side pays once per run (interpreter start, imports,
    # worker start, publishing).
    small, large = results
    extra = large["files"] - small["files"]

    def marginal(key: str) -> float:
        seconds = large["files"] / large[key] - small["files"] / small[key]
        return extra / seconds if seconds > 0 else float("inf")

    bare_m, floor_m = marginal("bare_files_per_s"), marginal("write_floor_files_per_s")
    med_m, deid_m = marginal("meddata_files_per_s"), marginal("deid_files_per_s")
    print(
        f"marginal files/s (fixed costs excluded): bare {bare_m:.0f}, write floor {floor_m:.0f}, "
        f"meddata {med_m:.0f} ({med_m / bare_m:.2f} of bare, {med_m / floor_m:.2f} of the floor), "
        f"meddata + de-id {deid_m:.0f} ({deid_m / bare_m:.2f} of bare)"
    )


if __name__ == "__main__":
    main()
