"""meddata's `xrv` preset vs torchxrayvision's `CheX_Dataset` on the same images.

Both produce what torchxrayvision models expect: a 1×224×224 float image in [-1024, 1024],
centre-cropped on the long side then resized. torchxrayvision reads PNG files from disk with
scikit-image and resizes with `skimage.transform.resize` (its default `XRayResizer` engine);
meddata streams the same PNG bytes from Parquet. Same DataLoader workers and batch size.
Goal (issue #7): meddata ≥ 2× torchxrayvision.

torchxrayvision needs torchvision, which does not import beside this project's torch build, so it
runs in its own venv (about 5.5 GB):

    python3 -m venv benchmarks/.venv-xrv
    benchmarks/.venv-xrv/bin/pip install torch==2.14.1 torchvision==0.29.1
    benchmarks/.venv-xrv/bin/pip install torchxrayvision pandas

Run (uses the 10,000-image dataset that bench_loader.py synthesizes into benchmarks/_work):

    .venv/bin/python benchmarks/bench_xrv.py [--workers 2] [--batch 64]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = HERE / "_work" / "cxr-10000" / "data" / "synthetic-cxr"
EXPORT = HERE / "_work" / "xrv-files"
XRV_PYTHON = HERE / ".venv-xrv" / "bin" / "python"

PEER = r"""
import sys, time, json
import torch, torchvision, torchxrayvision as xrv
root, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
transform = torchvision.transforms.Compose([xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)])
ds = xrv.datasets.CheX_Dataset(imgpath=root, csvpath=root + "/train.csv", views=["PA", "AP"], transform=transform)
best = 0.0
for epoch in range(2):
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, shuffle=True)
    start, n = time.perf_counter(), 0
    for sample in loader:
        n += sample["img"].shape[0]
    best = max(best, n / (time.perf_counter() - start))
img = sample["img"]
print(json.dumps({"samples_per_s": best, "n": n, "shape": list(img.shape[1:]), "min": float(img.min()), "max": float(img.max())}))
"""


def export_files() -> int:
    """Write the dataset's PNG bytes as files with a CheXpert-v1 train.csv (once)."""
    import meddata

    ds = meddata.load(str(DATASET))
    samples = (
        ds.samples()
        .select(
            "image_id",
            "person_id",
            "sex",
            *[c for c in ds.samples().collect_schema() if c.startswith("label_")],
        )
        .collect()
    )
    if (EXPORT / "train.csv").exists():
        return samples.height
    images = ds.table("image").select("image_id", "pixels").collect()
    joined = samples.join(images, on="image_id")
    from meddata.adapters.chexpert_plus import LABELS

    label_cols = [c for c in samples.columns if c.startswith("label_")]
    names = {
        c: next(label for label in LABELS if label.lower().replace(" ", "_") == c[6:])
        for c in label_cols
    }
    (EXPORT / "train").mkdir(parents=True, exist_ok=True)
    with open(EXPORT / "train.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *names.values()])
        for i, row in enumerate(joined.iter_rows(named=True)):
            rel = f"train/patient{i:05d}/study1/view1_frontal.png"
            (EXPORT / rel).parent.mkdir(parents=True, exist_ok=True)
            (EXPORT / rel).write_bytes(row["pixels"]["data"])
            labels = ["" if row[c] is None else row[c] for c in label_cols]
            writer.writerow(
                [f"CheXpert-v1.0-small/{rel}", row["sex"], 50, "Frontal", "PA", *labels]
            )
    return joined.height


def meddata_rate(workers: int, batch: int) -> dict[str, float]:
    import meddata

    ds = meddata.load(str(DATASET))
    best = 0.0
    for epoch in range(2):
        loader = ds.torch(
            None, preset="xrv", batch_size=batch, num_workers=workers, shuffle=True, seed=epoch
        )
        start, n = time.perf_counter(), 0
        for b in loader:
            n += b["image"].shape[0]
        best = max(best, n / (time.perf_counter() - start))
    img = b["image"]
    return {
        "samples_per_s": best,
        "n": n,
        "shape": list(img.shape[1:]),
        "min": float(img.min()),
        "max": float(img.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if not (DATASET / "1.0" / "meddata.json").exists():
        raise SystemExit(f"{DATASET} is missing: run benchmarks/bench_loader.py --n 10000 first")
    n = export_files()
    ours = meddata_rate(args.workers, args.batch)
    print("meddata xrv preset  ", json.dumps(ours), flush=True)
    if not XRV_PYTHON.exists():
        print(f"torchxrayvision: not run ({XRV_PYTHON} missing; see this script's docstring)")
        return
    out = subprocess.run(
        [str(XRV_PYTHON), "-c", PEER, str(EXPORT), str(args.workers), str(args.batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    print("torchxrayvision     ", json.dumps(peer))
    print(
        f"{n} images, {args.workers} workers, batch {args.batch}: meddata / torchxrayvision = {ours['samples_per_s'] / peer['samples_per_s']:.2f} (goal ≥ 2)"
    )


if __name__ == "__main__":
    main()
