"""What any DICOM converter must spend per file on this machine, next to the bare loop.

Issue #2 asks dicom-folder conversion for ≥ 0.8 of a bare ``dcmread + pixel_array`` loop. The
format requires every output byte to be written and SHA-256-checksummed; this script measures,
in one process on the same CT-like files, the CPU (user + sys) per file of:

- the bare loop (``dcmread(path).pixel_array``);
- ``dcmread`` alone (the header parse and the pixel bytes read, no ``pixel_array``);
- SHA-256 of one file's pixel bytes;
- writing one file's pixel bytes to the output disk (each of ``--rounds`` rounds writes
  ``--files`` × 0.5 MB to a fresh file set; min and max are printed, since the kernel's cost of
  taking new page-cache pages varies from run to run on a VM).

It prints the best ratio a converter could reach: bare / (dcmread + SHA-256 + write), without
any header mapping, Parquet, or process start-up.

Run:  .venv/bin/python benchmarks/bench_convert_bound.py [--files 400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dicom_convert import make_source  # noqa: E402


def cpu_ms(fn: Callable[[], None], files: int) -> float:
    """User + system CPU of one call, in ms per file."""
    t0 = os.times()
    fn()
    t1 = os.times()
    return ((t1.user - t0.user) + (t1.system - t0.system)) / files * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="folder on the output disk (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bound-", dir=args.out))
    try:
        src = make_source(work / "src", args.files)
        paths = sorted(str(p) for p in src.rglob("*.dcm"))
        pixels = pydicom.dcmread(paths[0]).pixel_array.tobytes()

        def bare() -> None:
            for p in paths:
                pydicom.dcmread(p).pixel_array  # noqa: B018 - the decode is what is timed

        def parse() -> None:
            for p in paths:
                pydicom.dcmread(p)

        def sha() -> None:
            for _ in paths:
                hashlib.sha256(pixels).digest()

        def write() -> None:
            out = work / "out.bin"
            with open(out, "wb") as fh:
                for _ in paths:
                    fh.write(pixels)
            out.unlink()

        n = len(paths)
        bare(), parse()  # warm the page cache and pydicom
        results: dict[str, list[float]] = {"bare": [], "dcmread": [], "sha256": [], "write": []}
        for _ in range(args.rounds):
            os.sync()  # each round starts without dirty pages
            for name, fn in (("bare", bare), ("dcmread", parse), ("sha256", sha), ("write", write)):
                results[name].append(cpu_ms(fn, n))
        best = {k: min(v) for k, v in results.items()}
        for name, values in results.items():
            rounds = " ".join(f"{v:.2f}" for v in values)
            print(f"{name:8s} ms/file  min {min(values):.3f}  max {max(values):.3f}  ({rounds})")
        floor = best["dcmread"] + best["sha256"]
        print(
            f"best converter / bare: {best['bare'] / (floor + min(results['write'])):.2f} with the "
            f"fastest write round, {best['bare'] / (floor + max(results['write'])):.2f} with the "
            f"slowest ({len(paths)} files of {len(pixels) / 1e6:.2f} MB)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
