"""Batch transforms on uint8 and float tensors: crop, flip, normalise.

They take a whole batch ``[B, C, H, W]`` and work the same on CPU (in loader workers) and on
a GPU (after the copy), so a preset runs one code path wherever it runs. Random choices are
drawn up front from a seeded NumPy generator (:func:`draw_augment`), so an epoch's
augmentation is reproducible whatever the worker timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import get_worker_info

from meddata.torch import recycle

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augment:
    """Per-sample crop offsets (``[B, 2]``: top, left) and horizontal flips (``[B]``)."""

    offsets: np.ndarray
    flips: np.ndarray


def draw_augment(
    rng: np.random.Generator | None, n: int, size_in: int, size_out: int, flip_p: float
) -> Augment:
    """Crop offsets (random with ``rng``, centred without) and flips for ``n`` samples."""
    room = size_in - size_out
    if rng is None:
        offsets = np.full((n, 2), room // 2, np.int64)
        flips = np.zeros(n, bool)
    else:
        offsets = rng.integers(0, room + 1, size=(n, 2))
        flips = rng.random(n) < flip_p
    return Augment(offsets=offsets, flips=flips)


def crop_flip(batch: torch.Tensor, size: int, aug: Augment) -> torch.Tensor:
    """Crop each image of ``[B, C, H, W]`` to ``size``×``size`` at its offset and flip it."""
    b, c, h, w = batch.shape
    if (h, w) == (size, size) and not aug.flips.any():
        return batch
    if (h, w) == (size, size):
        out = batch.clone()
    elif len(np.unique(aug.offsets, axis=0)) == 1:
        top, left = (int(v) for v in aug.offsets[0])
        out = batch[:, :, top : top + size, left : left + size].contiguous()
    else:
        out = torch.empty((b, c, size, size), dtype=batch.dtype, device=batch.device)
        for k, (top, left) in enumerate(aug.offsets.tolist()):
            out[k] = batch[k, :, top : top + size, left : left + size]
    if aug.flips.any():
        idx = torch.from_numpy(np.flatnonzero(aug.flips)).to(batch.device)
        out[idx] = out[idx].flip(-1)
    return out


def empty(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | None = None
) -> torch.Tensor:
    """An uninitialised tensor; in a DataLoader worker it is allocated in shared memory (a
    recycled buffer when the loader recycles them), so handing the batch to the main process
    does not copy it once more."""
    if (device is None or device.type == "cpu") and get_worker_info() is not None:
        buffers = recycle.active()
        return buffers.empty(shape, dtype) if buffers else recycle.shared_empty(shape, dtype)
    return torch.empty(shape, dtype=dtype, device=device)


def normalize(
    batch: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    scale: float = 255.0,
    channels: int | None = None,
) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` → float32 ``(x/scale - mean) / std`` per channel.

    With ``channels`` larger than C (grayscale to 3 channels) each output channel is filled
    from the single input channel with its own mean and std, in one pass per channel.
    """
    b, c, h, w = batch.shape
    out_c = channels or c
    out = empty((b, out_c, h, w), torch.float32, batch.device)
    for k in range(out_c):
        src = batch[:, k if c > 1 else 0]
        m, s = mean[k % len(mean)], std[k % len(std)]
        # Convert in place, then scale: torch.mul(uint8, float, out=) would allocate a
        # temporary float copy of the whole plane first.
        plane = out[:, k]
        plane.copy_(src)
        plane.mul_(1.0 / (scale * s)).sub_(m / s)
    return out


def rescale(batch: torch.Tensor, low: float, high: float, scale: float = 255.0) -> torch.Tensor:
    """uint8 → float32 mapped linearly from ``[0, scale]`` to ``[low, high]``."""
    out = empty(tuple(batch.shape), torch.float32, batch.device)
    out.copy_(batch)
    return out.mul_((high - low) / scale).add_(low)


def resize(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float or uint8 ``[B, C, H, W]`` to ``size``×``size`` (bilinear, antialiased)."""
    dtype = batch.dtype
    x = batch.to(torch.float32)
    x = torch.nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    if dtype == torch.uint8:
        return x.round_().clamp_(0, 255).to(torch.uint8)
    return x
