"""Benchmark: converting a CheXpert Plus release with meddata vs a plain pandas + Pillow script.

Both sides read the same synthesized 5,000-image CheXpert Plus source (``chexpert-plus``
``synthesize``, PNG only) with the same number of worker processes (2 by default):

* meddata: ``meddata convert chexpert-plus SRC -o OUT --workers 2`` (every table: person,
  observation, note, note_nlp with RadGraph offsets, image_occurrence, image with the PNG bytes
  kept as-is, samples with the 14 labels; checksummed Parquet shards and a manifest);
* baseline: a pandas + Pillow script that reads the CSV with ``pandas.read_csv`` and decodes
  every image with ``PIL.Image.open(...)`` → ``numpy.asarray`` in a ``multiprocessing.Pool`` of
  the same size (the usual "load the dataset" script; it writes nothing).

Each side runs as its own process tree; wall time is measured around it and peak memory is the
largest sum of RSS over the tree, sampled every 20 ms from /proc (psutil's method, without the
dependency; ``getrusage(RUSAGE_CHILDREN)`` would give only the largest single process). Reported: images/s for each
side, the ratio meddata/baseline (goal >= 1.0: keeping the encoded bytes must beat decoding), and
peak memory. The baseline needs pandas, which is not a meddata dependency: it runs under
``benchmarks/.venv-bench`` (``python -m venv benchmarks/.venv-bench &&
benchmarks/.venv-bench/bin/pip install pandas pillow``), or ``--bench-python``.

Run: ``.venv/bin/python benchmarks/bench_chexpert_convert.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import run_measured  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "chexpert"
PAGE = os.sysconf("SC_PAGE_SIZE")

BASELINE = r"""
import sys
from multiprocessing import Pool

import numpy as np
import pandas as pd
from PIL import Image

root = sys.argv[1]
workers = int(sys.argv[2])


def load(rel):
    path = f"{root}/PNG/{rel[:-4]}.png"
    with Image.open(path) as im:
        return np.asarray(im).shape


if __name__ == "__main__":
    df = pd.read_csv(f"{root}/df_chexpert_plus_240401.csv")
    with Pool(workers) as pool:
        shapes = pool.map(load, df["path_to_image"].tolist(), chunksize=64)
    print(len(shapes))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--images", type=int, default=5000, help="images in the synthesized source (about)"
    )
    ap.add_argument("--workers", type=int, default=2, help="processes on both sides")
    ap.add_argument("--repeat", type=int, default=3, help="runs per side (best wall time kept)")
    ap.add_argument(
        "--bench-python",
        default=str(HERE / ".venv-bench" / "bin" / "python"),
        help="a python with pandas + Pillow",
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the synthesized source for the next run"
    )
    args = ap.parse_args()

    from meddata.adapters.chexpert_plus import CSV_NAME, ChexpertPlusAdapter

    src = WORK / f"source-{args.images}"
    if not (src / CSV_NAME).exists():
        shutil.rmtree(src, ignore_errors=True)
        t = time.perf_counter()
        ChexpertPlusAdapter.synthesize(src, n=max(2, round(args.images / 4.0)), seed=0, dicom=False)
        print(f"synthesized in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    with open(src / CSV_NAME, newline="", encoding="utf-8") as fh:
        n_images = sum(1 for _ in csv.DictReader(fh))
    src_bytes = sum(p.stat().st_size for p in (src / "PNG").rglob("*.png"))
    baseline_py = WORK / "baseline_pandas_pillow.py"
    baseline_py.write_text(BASELINE)
    meddata_cli = str(Path(sys.executable).with_name("meddata"))

    results: dict[str, list[tuple[float, float]]] = {"meddata": [], "baseline": []}
    for _ in range(args.repeat):
        out = WORK / "out"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [
            meddata_cli,
            "convert",
            "chexpert-plus",
            str(src),
            "-o",
            str(out),
            "--workers",
            str(args.workers),
            "--json",
            "--no-deid",  # the peer does not de-identify: compare like with like
        ]
        wall, peak, stdout = run_measured(cmd)
        peak /= 2**20
        summary = json.loads(stdout)
        assert summary["tables"]["image"] == n_images, summary
        results["meddata"].append((wall, peak))
        wall, peak, stdout = run_measured(
            [args.bench_python, str(baseline_py), str(src), str(args.workers)]
        )
        peak /= 2**20
        assert int(stdout.strip()) == n_images
        results["baseline"].append((wall, peak))
    best = {k: min(v) for k, v in results.items()}
    peaks = {k: max(p for _, p in v) for k, v in results.items()}
    rate = {k: n_images / best[k][0] for k in best}
    report = {
        "images": n_images,
        "source_png_mib": round(src_bytes / 2**20, 1),
        "workers": args.workers,
        "repeat": args.repeat,
        "meddata_s": round(best["meddata"][0], 2),
        "baseline_s": round(best["baseline"][0], 2),
        "meddata_images_per_s": round(rate["meddata"], 1),
        "baseline_images_per_s": round(rate["baseline"], 1),
        "ratio": round(rate["meddata"] / rate["baseline"], 2),
        "meddata_peak_mib": round(peaks["meddata"]),
        "baseline_peak_mib": round(peaks["baseline"]),
        "memory_method": "peak of summed RSS over the process tree (/proc, every 20 ms)",
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))
    shutil.rmtree(WORK / "out", ignore_errors=True)
    if not args.keep:
        shutil.rmtree(src, ignore_errors=True)


if __name__ == "__main__":
    main()
