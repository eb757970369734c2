"""Feeding a GPU: pinned batches copied on a side stream ahead of use, finished on the device.

The DataLoader pins each batch (``pin_memory=True``); :func:`to_device` then copies batch
``n+1`` (and up to ``depth`` batches) with ``non_blocking=True`` on a separate CUDA stream while
the model works on batch ``n``, and runs the preset's ``finish`` (uint8 → normalised float) on
the GPU, so only uint8 pixels cross the bus. JPEG bytes shipped by workers in GPU-decode mode are
decoded with torchvision's nvJPEG decoder when torchvision is installed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import torch

from meddata.errors import UsageError
from meddata.torch import transforms as T

Batch = dict[str, Any]


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """The target device, refusing CUDA clearly where there is none."""
    if device is None:
        return None
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"device={str(device)!r} was asked for, but this torch build or machine has no CUDA GPU.",
            "Pass device=None (or 'cpu'), or install a CUDA build of torch on a GPU machine.",
        )
    return dev


def gpu_jpeg_available() -> bool:
    """True when torchvision's GPU JPEG decoder can be used."""
    try:
        import torchvision.io  # noqa: F401
    except Exception:  # torchvision absent or built against another torch
        return False
    return torch.cuda.is_available()


def _move(batch: Batch, device: torch.device) -> Batch:
    out: Batch = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and not k.startswith("_"):
            out[k] = v.to(device, non_blocking=True)
        else:
            out[k] = v
    return out


def to_device(
    batches: Iterator[Batch],
    device: torch.device,
    finish: Callable[[Batch], Batch],
    depth: int = 2,
) -> Iterator[Batch]:
    """Yield ``batches`` on ``device``, copied ``depth`` ahead on a side stream, then finished.

    Keys starting with ``_`` (loader bookkeeping) stay on the CPU.
    """
    if device.type != "cuda":
        for batch in batches:
            yield finish(_move(batch, device))
        return
    stream = torch.cuda.Stream(device=device)
    pending: deque[tuple[Batch, torch.cuda.Event]] = deque()

    def submit(batch: Batch) -> None:
        with torch.cuda.stream(stream):
            moved = finish(decode_on_device(_move(batch, device), device))
            event = torch.cuda.Event()
            event.record(stream)
        pending.append((moved, event))

    # This runs in the training loop's thread on purpose: a thread ahead of it hid the wait but
    # slowed the loop's own kernel launches more (H200, DenseNet-121: 729-745 vs 777-791
    # samples/s with nvJPEG decoding; benchmarks/README.md, "GPU check").
    for batch in batches:
        submit(batch)
        if len(pending) > depth:
            yield _ready(*pending.popleft())
    while pending:
        yield _ready(*pending.popleft())


def _ready(batch: Batch, event: torch.cuda.Event) -> Batch:
    current = torch.cuda.current_stream()
    current.wait_event(event)
    for v in batch.values():
        if isinstance(v, torch.Tensor) and v.is_cuda:
            v.record_stream(current)  # the allocator must not reuse it while the model reads it
    return batch


def decode_on_device(batch: Batch, device: torch.device) -> Batch:
    """Decode ``_jpeg`` entries (GPU-decode mode) into the batch's uint8 image on ``device``."""
    encoded = batch.pop("_jpeg", None)
    if encoded is None:
        return batch
    key, size, square, items, aug = encoded
    jpegs = [x for x in items if x.ndim == 1]
    decoded: Iterator[torch.Tensor] = iter(())
    if jpegs:
        import torchvision.io as tvio

        decoded = iter(tvio.decode_jpeg(jpegs, mode=tvio.ImageReadMode.GRAY, device=device))
    planes = []
    for x in items:
        img = next(decoded) if x.ndim == 1 else x.to(device, non_blocking=True)
        planes.append(img.reshape(1, *img.shape[-2:]))
    batch[key] = T.crop_flip(_squared(planes, size, square, device), int(batch.pop("_size")), aug)
    return batch


def _squared(
    planes: list[torch.Tensor], size: int, square: str, device: torch.device
) -> torch.Tensor:
    """``[N, 1, size, size]`` uint8 from single-channel planes of any shapes. Planes of one
    shape are cropped and resized together: a few kernel launches per batch rather than per
    image, made from the training loop's thread (7.7% of step time waiting, from 12.5%)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(planes):
        by_shape.setdefault(tuple(p.shape), []).append(i)
    out = torch.empty((len(planes), 1, size, size), dtype=torch.uint8, device=device)
    for shape, index in by_shape.items():
        group = torch.stack([planes[i] for i in index]).to(torch.uint8)
        h, w = shape[-2:]
        if square == "crop":
            s = min(h, w)
            group = group[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        if group.shape[-2:] != (size, size):
            group = T.resize(group, size)
        if len(by_shape) == 1:
            return group
        out[torch.tensor(index, device=device)] = group
    return out
