"""``quick_train``: a few optimisation steps of a compact CNN, to check a loader end to end."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from meddata.dataset import Dataset


class CompactCNN(nn.Module):
    """A small convolutional classifier (4 strided conv blocks, global pooling, linear head)."""

    def __init__(self, in_channels: int, outputs: int) -> None:
        super().__init__()
        chans = [in_channels, 16, 32, 64, 96]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [
                nn.Conv2d(a, b, 3, stride=2, padding=1),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(chans[-1], max(1, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def default_split(ds: Dataset) -> str | None:
    """``train`` when the dataset has an official split with training samples, else None (all)."""
    if "official" in ds.splits:
        import polars as pl

        n = ds.samples().filter(pl.col("split") == "train").select(pl.len()).collect().item()
        if n:
            return "train"
    return None


def quick_train(
    ds: Dataset,
    steps: int = 5,
    batch_size: int = 8,
    *,
    preset: str = "chexpert",
    split: str | None | bool = True,
    num_workers: int = 0,
    seed: int = 0,
    device: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train :class:`CompactCNN` for ``steps`` batches of ``ds`` and measure the loader.

    Uses masked BCE on the preset's labels; a dataset without labels (e.g. ``dicom-folder``)
    trains on a stand-in target (each image's mean intensity) so the loop still runs.
    ``split=True`` picks ``train`` when the dataset has an official split, else all samples.
    Returns ``{"steps", "samples", "seconds", "samples_per_s", "loss_first", "loss_last", ...}``.
    """
    torch.manual_seed(seed)
    chosen = default_split(ds) if split is True else (split or None)
    with warnings.catch_warnings():  # an unlabelled dataset is handled below, on purpose
        warnings.filterwarnings("ignore", message="Dataset .* has no task labels")
        loader = ds.torch(
            chosen,
            preset=preset,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            shuffle=True,
            device=device,
            **options,
        )
    dev = loader.device or torch.device("cpu")
    n_labels = len(ds.labels)
    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    losses: list[float] = []
    samples = 0
    started = time.perf_counter()
    while len(losses) < steps:
        before = len(losses)
        for batch in loader:
            x = batch[loader.stream.preset.key].float()
            if model is None:
                model = CompactCNN(x.shape[1], n_labels).to(dev)
                optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            assert optimizer is not None
            out = model(x)
            if n_labels:
                y = batch["labels"].float().nan_to_num(0.0)
                mask = batch["label_mask"].float()
                loss = (
                    nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none") * mask
                ).sum()
                loss = loss / mask.sum().clamp(min=1.0)
            else:
                target = x.mean(dim=(1, 2, 3))[:, None]
                loss = nn.functional.mse_loss(out, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            samples += int(batch["sample_id"].shape[0])
            if len(losses) >= steps:
                break
        if len(losses) == before:
            break  # empty split
    seconds = time.perf_counter() - started
    return {
        "split": chosen,
        "preset": preset,
        "steps": len(losses),
        "samples": samples,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 1) if seconds > 0 else 0.0,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "labels": n_labels,
        "skipped": loader.skipped,
    }
