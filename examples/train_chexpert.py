"""Train a compact CNN for a few steps on CheXpert Plus (or any image dataset) on the CPU.

    python examples/train_chexpert.py                         # registered chexpert-plus
    python examples/train_chexpert.py /path/to/dataset --steps 20 --workers 2

Without a dataset at hand it synthesizes a small CheXpert-Plus-like one first. The two lines
that matter in real training code are::

    ds = meddata.load("chexpert-plus")
    loader = ds.torch("train", preset="chexpert", batch_size=64, device="cuda")
"""

from __future__ import annotations

import argparse
import json
import tempfile

import meddata
from meddata.torch import quick_train
from meddata.torch.synth import write_cxr_dataset


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dataset", nargs="?", default="chexpert-plus", help="name, path or URL")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--preset", default="chexpert")
    args = ap.parse_args()
    try:
        ds = meddata.load(args.dataset)
    except meddata.MeddataError as exc:
        print(f"{exc.message} Using a synthetic CheXpert-Plus-like dataset instead.")
        ds = meddata.load(write_cxr_dataset(tempfile.mkdtemp(prefix="meddata-example-"), n=96))
    result = quick_train(
        ds,
        steps=args.steps,
        batch_size=args.batch_size,
        preset=args.preset,
        num_workers=args.workers,
    )
    print(json.dumps(result, indent=2))
    print(
        f"{result['samples_per_s']} samples/s, loss {result['loss_first']:.3f} → {result['loss_last']:.3f}"
    )


if __name__ == "__main__":
    main()
