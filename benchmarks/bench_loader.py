"""Loader throughput and memory: meddata vs a bare decode loop vs Hugging Face ``datasets``.

Same data (a synthesized CheXpert-Plus-like dataset, ~320×390 PNG), same worker count, same
work per sample (PNG decode → 224×224 bilinear resize → ImageNet-normalised float 3×224×224),
side by side in one run, each side in its own fresh process (so no side's workers are forked
from a process holding another side's data); ratios are printed at the end.

    .venv/bin/python benchmarks/bench_loader.py                 # meddata + bare loop
    benchmarks/.venv-bench/bin/python benchmarks/bench_loader.py   # + HF datasets (see README)

Options: --n 10000 --workers 2 --batch 64 --epochs 2 --work benchmarks/_work --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import meddata  # noqa: E402
from meddata.torch import transforms as T  # noqa: E402
from meddata.torch.synth import write_cxr_dataset  # noqa: E402

SIZE = 224


# -- memory -------------------------------------------------------------------------------------
def _rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` that is not a file mapping (anonymous + shared memory), in
    KiB: memory-mapped Parquet pages are page cache the kernel reclaims, so they are left out
    (they stay bounded by the shards a worker has open)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


class RssSampler:
    """Samples the anonymous + shared resident memory of this process and of each child (workers)
    every 50 ms."""

    def __init__(self) -> None:
        self.main: list[int] = []
        self.worker: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.main.append(_rss_kb(me))
            kids = _children(me)
            self.worker.append(max((_rss_kb(c) for c in kids), default=0))
            time.sleep(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        def mb(v: list[int], a: float, b: float) -> float:
            part = v[int(len(v) * a) : max(int(len(v) * b), int(len(v) * a) + 1)]
            return round(max(part, default=0) / 1024, 1)

        return {
            "main_peak_mb": mb(self.main, 0, 1),
            "worker_peak_mb": mb(self.worker, 0, 1),
            "main_peak_first_half_mb": mb(self.main, 0, 0.5),
            "main_peak_second_half_mb": mb(self.main, 0.5, 1),
            "worker_peak_first_half_mb": mb(self.worker, 0, 0.5),
            "worker_peak_second_half_mb": mb(self.worker, 0.5, 1),
        }


# -- the same per-sample work everywhere --------------------------------------------------------
def decode_resize(png: bytes) -> np.ndarray:
    """PNG bytes → 224×224 uint8 grayscale (Pillow decode + antialiased bilinear resize)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png))
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def finish(u8: np.ndarray) -> torch.Tensor:
    """uint8 [B,1,H,W] → ImageNet-normalised float [B,3,H,W] (the chexpert preset's last step)."""
    return T.normalize(torch.from_numpy(u8), T.IMAGENET_MEAN, T.IMAGENET_STD, channels=3)


_PNGS: list[bytes] = []


def _bare_chunk(bounds: tuple[int, int]) -> int:
    torch.set_num_threads(1)
    a, b = bounds
    n = 0
    for s in range(a, b, 64):
        batch = np.stack([decode_resize(_PNGS[i]) for i in range(s, min(b, s + 64))])[:, None]
        n += int(finish(batch).shape[0])
    return n


def bare_loop(pngs: list[bytes], workers: int) -> float:
    """The limit: the same decode + resize + normalise on bytes already in memory, no loader."""
    global _PNGS
    _PNGS = pngs
    step = 256
    chunks = [(a, min(len(pngs), a + step)) for a in range(0, len(pngs), step)]
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) as pool:
        start = time.perf_counter()
        n = sum(pool.imap_unordered(_bare_chunk, chunks))
        return n / (time.perf_counter() - start)


def timed_epoch(loader: Any, key: str = "image") -> tuple[float, dict[str, float]]:
    with RssSampler() as rss:
        start = time.perf_counter()
        n = 0
        for batch in loader:
            n += int(batch[key].shape[0])
        rate = n / (time.perf_counter() - start)
    return rate, rss.summary()


# -- Hugging Face datasets ----------------------------------------------------------------------
def hf_available() -> bool:
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True


def _hf_png_transform(batch: dict[str, list[Any]]) -> dict[str, Any]:
    u8 = np.stack([decode_resize(b) for b in batch["png"]])[:, None]
    return {"image": finish(u8)}


def hf_png(work: Path, workers: int, batch: int) -> tuple[float, dict[str, float]]:
    import datasets

    ds = datasets.load_from_disk(str(work / "hf-png"))
    ds.set_transform(_hf_png_transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=True)
    return timed_epoch(loader)


def hf_decoded(work: Path, workers: int, batch: int) -> tuple[float, dict[str, float]]:
    import datasets

    ds = datasets.load_from_disk(str(work / "hf-u8")).with_format("torch")
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=True)
    return timed_epoch(loader)


# -- sides, each in its own fresh process --------------------------------------------------------
def _dataset(args: argparse.Namespace) -> Any:
    work: Path = args.work / f"cxr-{args.n}"
    root = work / "data" / "synthetic-cxr" / "1.0"
    if not (root / "meddata.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_cxr_dataset(work / "data", n=args.n, size=(320, 390), codec="png", with_notes=False)
        print(f"synthesized {args.n} PNG samples in {time.perf_counter() - t:.0f} s", flush=True)
    return meddata.load(str(root))


def _pngs(ds: Any) -> list[bytes]:
    col = ds.arrow("image").to_table(columns=["pixels"]).column("pixels").combine_chunks()
    return [bytes(b) for b in col.field("data").to_pylist()]


def _best(runs: list[tuple[float, dict[str, float]]]) -> dict[str, Any]:
    rate, rss = max(runs, key=lambda r: r[0])
    return {"samples_per_s": round(rate, 1), **rss}


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """One side of the comparison, in this (fresh) process; returns {row name: result}."""
    ds = _dataset(args)
    work: Path = args.work / f"cxr-{args.n}"

    def md_loader(**kw: Any) -> Any:
        return ds.torch(
            None,
            preset="chexpert",
            batch_size=args.batch,
            num_workers=args.workers,
            shuffle=True,
            **kw,
        )

    epochs = range(args.epochs)
    if side == "prepare":  # inputs of the other sides, so that no side pays for building them
        cache = md_loader(cache=work / "cache", normalize=False)
        for _ in cache:
            pass
        if hf_available():
            import datasets

            if not (work / "hf-png").exists():
                datasets.Dataset.from_dict({"png": _pngs(ds)}).save_to_disk(str(work / "hf-png"))
            if not (work / "hf-u8").exists():
                entry = cache.stream.cache
                arrays = entry.read(np.arange(entry.n))
                features = datasets.Features(
                    {"image": datasets.Array3D(shape=(1, SIZE, SIZE), dtype="uint8")}
                )
                datasets.Dataset.from_generator(
                    lambda: ({"image": a} for a in arrays), features=features
                ).save_to_disk(str(work / "hf-u8"))
        return {}
    if side == "bare_loop":
        pngs = _pngs(ds)
        return {
            side: {"samples_per_s": round(max(bare_loop(pngs, args.workers) for _ in epochs), 1)}
        }
    if side == "meddata_png":
        return {side: _best([timed_epoch(md_loader()) for _ in epochs])}
    if side == "meddata_png_uint8_out":
        # The GPU recipe: workers ship uint8 (12× fewer bytes than float RGB) and the
        # normalisation runs on the device; on the CPU this shows what the float hand-off costs.
        return {side: _best([timed_epoch(md_loader(normalize=False)) for _ in epochs])}
    if side == "meddata_cache":
        cache_dir = work / "cache-bench"
        shutil.rmtree(cache_dir, ignore_errors=True)
        loader = md_loader(cache=cache_dir)
        out = {"meddata_cache_fill_epoch": _best([timed_epoch(loader)])}
        out["meddata_cached_float"] = _best([timed_epoch(loader) for _ in epochs])
        raw = md_loader(cache=cache_dir, normalize=False)
        out["meddata_cached_uint8"] = _best([timed_epoch(raw) for _ in epochs])
        return out
    if side == "hf_png_set_transform":
        return {side: _best([hf_png(work, args.workers, args.batch) for _ in epochs])}
    if side == "hf_decoded_with_format_torch":
        return {side: _best([hf_decoded(work, args.workers, args.batch) for _ in epochs])}
    raise SystemExit(f"unknown side {side}")


SIDES = (
    "bare_loop",
    "meddata_png",
    "meddata_png_uint8_out",
    "meddata_cache",
    "hf_png_set_transform",
    "hf_decoded_with_format_torch",
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per side; the best is kept")
    ap.add_argument("--work", type=Path, default=Path(__file__).parent / "_work")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--no-hf", action="store_true", help="skip Hugging Face datasets")
    ap.add_argument("--side", help=argparse.SUPPRESS)  # internal: run one side, print JSON
    args = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.side:
        print("RESULT " + json.dumps(run_side(args.side, args)), flush=True)
        return
    results: dict[str, Any] = {"n": args.n, "workers": args.workers, "batch": args.batch}
    print(
        f"{args.n} images, {args.workers} workers, batch {args.batch}, each side in its own process"
    )
    with_hf = not args.no_hf and hf_available()
    for side in ("prepare", *SIDES):
        if side.startswith("hf_") and not with_hf:
            continue
        cmd = [sys.executable, __file__, "--side", side, "--n", str(args.n)]
        cmd += ["--workers", str(args.workers), "--batch", str(args.batch)]
        cmd += ["--epochs", str(args.epochs), "--work", str(args.work)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        if done.returncode or not lines:
            raise SystemExit(f"side {side} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        for name, value in json.loads(lines[-1][7:]).items():
            results[name] = value
            extra = {k: v for k, v in value.items() if k != "samples_per_s"}
            print(
                f"  {name:<28} {value['samples_per_s']:>9.1f} samples/s  {json.dumps(extra)}",
                flush=True,
            )
    if not with_hf:
        print(
            "  (Hugging Face datasets not installed here: run with benchmarks/.venv-bench/bin/python)"
        )

    r = {k: v["samples_per_s"] for k, v in results.items() if isinstance(v, dict)}
    ratios = {"meddata_png / bare_loop": r["meddata_png"] / r["bare_loop"]}
    ratios["meddata_png_uint8_out / bare_loop"] = r["meddata_png_uint8_out"] / r["bare_loop"]
    ratios["meddata_cached_uint8 per worker"] = r["meddata_cached_uint8"] / args.workers
    if "hf_png_set_transform" in r:
        ratios["meddata_png / hf_png_set_transform"] = r["meddata_png"] / r["hf_png_set_transform"]
        ratios["hf_png_set_transform / bare_loop"] = r["hf_png_set_transform"] / r["bare_loop"]
    if "hf_decoded_with_format_torch" in r:
        ratios["meddata_cached_uint8 / hf_decoded"] = (
            r["meddata_cached_uint8"] / r["hf_decoded_with_format_torch"]
        )
        ratios["meddata_cached_float / hf_decoded"] = (
            r["meddata_cached_float"] / r["hf_decoded_with_format_torch"]
        )
    results["ratios"] = {k: round(v, 2) for k, v in ratios.items()}
    print("ratios:")
    for k, v in results["ratios"].items():
        print(f"  {k:<40} {v}")
    print("torchxrayvision CheX_Dataset: see benchmarks/bench_xrv.py (it needs its own venv)")
    print("GPU (device='cuda'): see benchmarks/bench_gpu.py (run on a lent GPU machine)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
