"""GPU feeding check (issue #7): does the meddata loader keep a DenseNet-121 fed on one GPU?

Two synthesized datasets of the same chest-like images: JPEG cells (MIMIC-CXR-JPG style;
decoded in the loader's workers, and, with ``--gpu-decode on|both``, also on the GPU by nvJPEG
through torchvision, ``gpu_decode=True``) and PNG cells (CheXpert style; decoded in the
workers). For each, a DenseNet-121 (torchvision, 14
outputs, bf16 autocast, channels-last, SGD) trains for ``--steps`` steps from
``ds.torch(None, preset="chexpert", shuffle=True, device=...)`` (one epoch: a new epoch restarts
the workers, which would count as waiting); the script reports the fraction of step
time spent waiting for the next batch (goal < 5%), samples/s, and the step time of the same
model on one batch already on the GPU (the compute bound, queued and synchronised). Each step
is synchronised, so the wait is not hidden behind queued GPU work.

On the device machine (it has torch + torchvision; carry meddata's missing dependencies as
wheels, see benchmarks/README.md, "GPU check"):

    python3 benchmarks/bench_gpu.py --out "$OUT" --n 7200 --workers 12 --steps 100

Smoke run on a CPU (no torchvision needed: ``--model compact`` is meddata's small CNN):

    .venv/bin/python benchmarks/bench_gpu.py --device cpu --model compact --n 128 --size 96 \\
        --image 128 --steps 4 --warmup 2 --workers 1 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import meddata
from meddata.torch.synth import write_cxr_dataset


def make_model(kind: str, device: torch.device) -> torch.nn.Module:
    """DenseNet-121 with 14 outputs (the CheXpert reference model), or meddata's compact CNN."""
    if kind == "densenet121":
        import torchvision

        model = torchvision.models.densenet121(weights=None, num_classes=14)
    else:
        from meddata.torch.train import CompactCNN

        model = CompactCNN(3, 14)
    return model.to(device, memory_format=torch.channels_last)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(
    loader: Any, model: torch.nn.Module, device: torch.device, steps: int, warmup: int
) -> dict[str, float]:
    """Train ``steps`` steps after ``warmup``; time spent in ``next(loader)`` vs the whole step."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    waited = total = 0.0
    samples = done = 0
    it = iter(loader)
    while done < warmup + steps:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)  # next epoch
            batch = next(it)
        t1 = time.perf_counter()
        x = (
            batch["image"]
            .to(device, non_blocking=True)
            .contiguous(memory_format=torch.channels_last)
        )
        y = batch["labels"].to(device, non_blocking=True).float()
        mask = batch["label_mask"].to(device, non_blocking=True).float()
        with autocast:
            out = model(x)
        loss = (loss_fn(out.float(), y) * mask).sum() / mask.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        t2 = time.perf_counter()
        if done >= warmup:
            waited += t1 - t0
            total += t2 - t0
            samples += int(x.shape[0])
        done += 1
    return {
        "steps": steps,
        "wait_fraction": round(waited / total, 4),
        "samples_per_s": round(samples / total, 1),
        "step_ms": round(1000 * total / steps, 2),
    }


def compute_bound(
    model: torch.nn.Module,
    device: torch.device,
    batch: int,
    image: int,
    steps: int,
    synced: bool = False,
) -> float:
    """Milliseconds per training step on one fixed batch already on the device; ``synced``
    waits for the GPU after every step, as the timed training loop does."""
    x = torch.randn(batch, 3, image, image, device=device).contiguous(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, 2, (batch, 14), device=device).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for i in range(steps + 3):
        if i == 3:
            sync(device)
            start = time.perf_counter()
        with autocast:
            out = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if synced:
            sync(device)
    sync(device)
    return round(1000 * (time.perf_counter() - start) / steps, 2)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--model", choices=["densenet121", "compact"], default="densenet121")
    ap.add_argument("--n", type=int, default=7200, help="images per dataset")
    ap.add_argument("--size", type=int, default=512, help="stored image side (pixels)")
    ap.add_argument("--image", type=int, default=224, help="model input side")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 4))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--work", type=Path, default=None, help="where the datasets go (temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json")
    ap.add_argument(
        "--gpu-decode",
        choices=["on", "off", "both"],
        default="both",
        help="JPEG cells decoded by nvJPEG in the main process (on) or in the workers (off)",
    )
    ap.add_argument("--codecs", default="jpeg,png", help="comma-separated: jpeg, png")
    args = ap.parse_args()
    if (args.steps + args.warmup) * args.batch > args.n:
        ap.error("--n must cover (steps + warmup) × batch samples: one epoch, no worker restart")
    device = torch.device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="meddata-gpu-"))
    info: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "batch": args.batch,
        "model": args.model,
        "stored_size": args.size,
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        info["torchvision"] = None
    print(json.dumps(info), flush=True)
    model = make_model(args.model, device)
    results: dict[str, Any] = {"info": info}
    results["compute_bound_step_ms"] = compute_bound(model, device, args.batch, args.image, 20)
    results["synced_step_ms"] = compute_bound(model, device, args.batch, args.image, 20, True)
    print(
        f"compute bound: {results['compute_bound_step_ms']} ms/step, "
        f"{results['synced_step_ms']} ms/step waiting for the GPU after each step",
        flush=True,
    )
    codecs = args.codecs.split(",")
    for codec in codecs:
        t = time.perf_counter()
        root = write_cxr_dataset(
            work / codec, n=args.n, size=(args.size, args.size), codec=codec, with_notes=False
        )
        made = round(time.perf_counter() - t, 1)
        ds = meddata.load(root)
        decodes = (
            [True, False]
            if args.gpu_decode == "both" and codec == "jpeg"
            else [args.gpu_decode != "off"]
        )
        for want_gpu in decodes:
            loader = ds.torch(
                None,
                preset="chexpert",
                shuffle=True,
                size=args.image,
                batch_size=args.batch,
                num_workers=args.workers,
                device=device,
                gpu_decode=want_gpu,
            )
            gpu_decode = bool(getattr(loader.stream.preset, "gpu_decode", False))
            row = train_steps(loader, model, device, args.steps, args.warmup)
            row.update(codec=codec, gpu_decode=gpu_decode, synth_s=made)
            results[codec + ("_nvjpeg" if want_gpu and codec == "jpeg" else "")] = row
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    worst = max(r["wait_fraction"] for k, r in results.items() if k.split("_")[0] in codecs)
    print(f"largest wait fraction {worst:.1%} (goal < 5%)", file=sys.stderr)


if __name__ == "__main__":
    main()
