"""The streaming dataset over a split's Parquet shards, and the DataLoader that drives it.

Each epoch has one order of the split's samples (row groups shuffled, rows inside them
shuffled, for ``seed`` and the epoch number). The order is cut into ``world_size × workers``
contiguous slices that differ by at most one sample; slice ``rank × workers + worker`` is read by
that worker, through a bounded shuffle buffer, in batches. So no sample is duplicated or dropped
whatever the shard, row-group, rank and worker counts, and a worker only reads the row groups
its slice spans. Positions consumed per slice are the resume state.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from meddata.errors import MeddataError, UsageError
from meddata.torch.cache import ItemCache
from meddata.torch.device import gpu_jpeg_available, resolve_device, to_device
from meddata.torch.plan import Plan, SampleError, buffer_shuffle, build_plan, split_bounds
from meddata.torch.presets import Preset, arrow_column, get_preset

if TYPE_CHECKING:
    from meddata.dataset import Dataset

Batch = dict[str, Any]
TAG = "_meddata"
ON_ERROR = ("raise", "skip")


class StreamingDataset(IterableDataset[Batch]):
    """A split of a dataset as a torch ``IterableDataset`` of batches (or of samples).

    Use it in your own ``DataLoader(ds, batch_size=None, num_workers=...)`` when
    ``batch_size`` is set here (recommended: collation is vectorised), or with a plain
    ``DataLoader(ds, batch_size=...)`` when it is None (one dict per sample).
    """

    def __init__(
        self,
        ds: Dataset,
        split: str | None = "train",
        *,
        preset: str | Preset | None = None,
        splits: str = "official",
        batch_size: int | None = 64,
        shuffle: bool = True,
        seed: int = 0,
        buffer_size: int = 256,
        rank: int | None = None,
        world_size: int | None = None,
        cache: bool | str | os.PathLike[str] | None = None,
        on_error: str = "raise",
        gpu_decode: bool = False,
        **preset_options: Any,
    ) -> None:
        if on_error not in ON_ERROR:
            raise UsageError(f"on_error={on_error!r} is not valid.", "Use 'raise' or 'skip'.")
        if batch_size is not None and batch_size < 1:
            raise UsageError(
                f"batch_size={batch_size} is not valid.", "Use a positive int or None."
            )
        self.preset = get_preset(preset, **preset_options)
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.buffer_size = int(buffer_size)
        self.on_error = on_error
        self.plan: Plan
        self.plan, missing = build_plan(ds, split, splits, self.preset.payload, on_error)
        self.missing = len(missing)  # samples whose payload row does not exist (skipped)
        self.rank, self.world_size = _distributed(rank, world_size)
        if not 0 <= self.rank < self.world_size:
            raise UsageError(
                f"rank {self.rank} is outside world_size {self.world_size}.", "Check the DDP setup."
            )
        self.epoch = 0
        self.skipped = 0  # samples skipped with on_error="skip" in this process
        self.num_workers_hint = 0
        self._resume: dict[str, Any] | None = None
        self._tag = False
        self._finish_here = True
        self.cache: ItemCache | None = None
        shape = self.preset.item_shape()
        if cache and shape is not None:
            name = f"{ds.name}-{ds.version}-{split or 'all'}-{self.preset.name}"
            self.cache = ItemCache.create(
                cache, name, self.plan.fingerprint, self.preset.cache_key(), len(self.plan), shape
            )
        if gpu_decode and gpu_jpeg_available() and hasattr(self.preset, "gpu_decode"):
            self.preset.gpu_decode = True
            self.cache = None

    # -- epochs and slices --------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (its shuffle order); forgets any resume state of another epoch."""
        self.epoch = int(epoch)
        if self._resume is not None and self._resume.get("epoch") != self.epoch:
            self._resume = None

    def __len__(self) -> int:
        """Items this rank yields in an epoch (batches when ``batch_size`` is set)."""
        workers = max(1, self.num_workers_hint)
        slices = self.world_size * workers
        bounds = split_bounds(len(self.plan), slices)
        mine = [b - a for a, b in bounds[self.rank * workers : (self.rank + 1) * workers]]
        if self.batch_size is None:
            return sum(mine)
        return sum(-(-m // self.batch_size) for m in mine)

    def slice_order(self, slices: int, k: int, epoch: int | None = None) -> np.ndarray:
        """Plan positions of slice ``k`` of ``slices`` in this epoch, in the order read."""
        epoch = self.epoch if epoch is None else epoch
        order = self.plan.epoch_order(self.seed, epoch, self.shuffle)
        a, b = split_bounds(len(order), slices)[k]
        part = order[a:b]
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, k, 0xB0F])
            part = buffer_shuffle(part, self.buffer_size, rng)
        return part

    def _orders(
        self, state: dict[str, Any] | None, slices: int, which: list[int]
    ) -> dict[int, np.ndarray]:
        """Slice orders when the epoch was re-cut from what ``state`` had left (or fresh)."""
        if state is None:
            return {k: self.slice_order(slices, k) for k in which}
        parent = self._orders(state.get("parent"), state["slices"], list(range(state["slices"])))
        rest = np.concatenate(
            [parent[j][_consumed(state, j) :] for j in range(state["slices"])]
            or [np.zeros(0, np.int64)]
        )
        bounds = split_bounds(len(rest), slices)
        return {k: rest[bounds[k][0] : bounds[k][1]] for k in which}

    def resolve(self, slices: int, k: int) -> tuple[np.ndarray, int, dict[str, Any] | None]:
        """(order, first position, parent state) of slice ``k`` given the resume state."""
        state = self._resume
        if state is None or state.get("epoch") != self.epoch:
            return self.slice_order(slices, k), 0, None
        if state["slices"] == slices:
            order = self._orders(state.get("parent"), slices, [k])[k]
            return order, min(_consumed(state, k), len(order)), state.get("parent")
        return self._orders(state, slices, [k])[k], 0, state

    # -- iteration ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        slices = self.world_size * workers
        k = self.rank * workers + worker
        order, start, _ = self.resolve(slices, k)
        batches = self._batches(k, order, start)
        if self.batch_size is not None:
            yield from batches
            return
        for batch in batches:
            yield from _unbatch(batch)

    def _batches(self, k: int, order: np.ndarray, start: int) -> Iterator[Batch]:
        size = self.batch_size or 64
        reader = _RowGroupReader(self.plan, order, start)
        for b0 in range(start, len(order), size):
            idx = order[b0 : b0 + size]
            items, keep, skipped = self._items(idx, reader)
            rng = (
                np.random.default_rng([self.seed, self.epoch, k, b0, 0xA06])
                if self.preset.augmenting
                else None
            )
            batch = self._assemble(idx[keep] if skipped else idx, items, rng)
            if self._tag:
                batch[TAG] = torch.tensor([k, b0 + len(idx), skipped], dtype=torch.int64)
            self.skipped += skipped
            yield batch
        if self.cache is not None:
            self.cache.flush()

    def _items(self, idx: np.ndarray, reader: _RowGroupReader) -> tuple[Any, np.ndarray, int]:
        cache = self.cache
        if cache is not None:
            hit = cache.filled(idx)
            if hit.all():
                for pos in idx.tolist():
                    reader.skip(pos)
                return cache.read(idx), np.ones(len(idx), bool), 0
        else:
            hit = np.zeros(len(idx), bool)
        items: list[Any] = []
        keep = np.ones(len(idx), bool)
        for j, pos in enumerate(idx.tolist()):
            if hit[j]:
                assert cache is not None
                reader.skip(pos)
                items.append(cache.read(np.array([pos]))[0])
                continue
            try:
                payload, row = reader.row(pos)
                item = self.preset.prepare(payload, row)
            except Exception as exc:
                if self.on_error == "skip":
                    keep[j] = False
                    continue
                raise self._error(pos, exc) from exc
            if cache is not None and isinstance(item, np.ndarray):
                cache.write(pos, item)
            items.append(item)
        return items, keep, int((~keep).sum())

    def _error(self, pos: int, exc: BaseException) -> SampleError:
        plan = self.plan
        where = ""
        if plan.payload_table is not None and plan.shard_paths:
            where = (
                f" ({plan.payload_table} shard {plan.shard_paths[plan.shard[pos]]}, "
                f"row group {plan.row_group[pos]}, row {plan.row[pos]})"
            )
        return SampleError(
            f"Sample {plan.sample_id[pos]}{where} could not be loaded: {exc}",
            "Run `meddata validate` on the dataset, or pass on_error='skip' to skip and count such samples.",
        )

    def _assemble(self, idx: np.ndarray, items: Any, rng: np.random.Generator | None) -> Batch:
        plan = self.plan
        batch: Batch = self.preset.collate(items, rng)
        labels, mask = self.preset.targets(plan.labels[idx], plan.label_names)
        batch["labels"] = torch.from_numpy(np.ascontiguousarray(labels))
        batch["label_mask"] = torch.from_numpy(np.ascontiguousarray(mask))
        batch["sample_id"] = torch.from_numpy(plan.sample_id[idx])
        batch["person_id"] = torch.from_numpy(plan.person_id[idx])
        positions = idx.tolist()
        for name, values in plan.attributes.items():
            batch[name] = [values[p] for p in positions]
        if self._finish_here:
            batch = self.preset.finish(batch)
        return batch


def _consumed(state: dict[str, Any], k: int) -> int:
    """Positions consumed in slice ``k``; a slice another DDP rank read (absent from this rank's
    state) is taken to be as far as this rank's slice of the same worker (ranks run in lockstep)."""
    consumed = {int(a): int(b) for a, b in state.get("consumed", {}).items()}
    if k in consumed:
        return consumed[k]
    workers = max(1, int(state.get("workers", 1)))
    same = [v for j, v in consumed.items() if j % workers == k % workers]
    return max(same) if same else 0


def _unbatch(batch: Batch) -> Iterator[Batch]:
    """One dict per sample; a missing attribute becomes "" (``default_collate`` refuses None)."""
    n = len(batch["sample_id"])
    for i in range(n):
        yield {
            k: ("" if v[i] is None else v[i]) if isinstance(v, list) else v[i]
            for k, v in batch.items()
            if not k.startswith("_")
        }


class _RowGroupReader:
    """Reads the payload row groups a slice needs, each once, and drops it after its last use."""

    def __init__(self, plan: Plan, order: np.ndarray, start: int) -> None:
        self.plan = plan
        self._files: dict[int, pq.ParquetFile] = {}
        self._loaded: dict[int, dict[str, Any]] = {}
        rest = order[start:]
        keys = plan.shard[rest].astype(np.int64) << 32 | plan.row_group[rest].astype(np.int64)
        self._keys = dict(zip(rest.tolist(), keys.tolist(), strict=True))
        self._last: dict[int, int] = {}
        for p, key in zip(rest.tolist(), keys.tolist(), strict=True):
            self._last[key] = p  # last position that needs this row group

    def row(self, pos: int) -> tuple[dict[str, Any], int]:
        """The payload columns holding sample ``pos``, and its row in them."""
        plan = self.plan
        if plan.payload_table is None:
            return {}, 0
        key = self._keys[pos]
        payload = self._loaded.get(key)
        if payload is None:
            payload = self._read(int(plan.shard[pos]), int(plan.row_group[pos]))
            self._loaded[key] = payload
        if self._last.get(key) == pos:
            del self._loaded[key]
        return payload, int(plan.row[pos])

    def skip(self, pos: int) -> None:
        """Sample ``pos`` was served another way (cache); release its row group if last."""
        key = self._keys.get(pos)
        if key is not None and self._last.get(key) == pos:
            self._loaded.pop(key, None)

    def _read(self, shard: int, group: int) -> dict[str, Any]:
        pf = self._files.get(shard)
        if pf is None:
            pf = pq.ParquetFile(self.plan.fs.open(self.plan.shard_paths[shard], "rb"))
            self._files[shard] = pf
        names = set(pf.schema_arrow.names)
        cols = [c for c in self.plan.payload_columns if c in names]
        try:
            table = pf.read_row_group(group, columns=cols)
        except Exception as exc:
            raise MeddataError(
                f"Row group {group} of {self.plan.shard_paths[shard]} could not be read ({exc}).",
                "The shard is corrupt or was changed: run `meddata validate` on the dataset.",
            ) from exc
        return {c: arrow_column(table, c) for c in cols}


def _as_is(batch: Batch) -> Batch:
    """The DataLoader's per-item convert step: batches are already tensors and lists."""
    return batch


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return (
            dist.get_rank() if rank is None else int(rank),
            dist.get_world_size() if world_size is None else int(world_size),
        )
    return int(rank or 0), int(world_size or 1)


class MeddataLoader(DataLoader[Batch]):
    """A ``DataLoader`` over a :class:`StreamingDataset` that yields ready batches.

    Adds ``set_epoch``, ``state_dict``/``load_state_dict`` (resume mid-epoch with exactly the
    remaining samples), ``skipped`` (samples skipped under ``on_error="skip"``), and with
    ``device="cuda"`` pinned memory, non-blocking copies ``prefetch`` batches ahead on a side
    stream and the preset's last step (normalisation, GPU JPEG decoding) on the GPU. The epoch
    advances by itself after each complete pass.
    """

    def __init__(
        self,
        dataset: StreamingDataset,
        *,
        num_workers: int = 0,
        device: str | torch.device | None = None,
        prefetch: int = 2,
        pin_memory: bool | None = None,
        cached_in_process: bool = True,
        **loader_options: Any,
    ) -> None:
        if dataset.batch_size is None:
            raise UsageError(
                "MeddataLoader needs a dataset built with a batch_size.", "Pass batch_size=..."
            )
        self.stream = dataset
        self.device = resolve_device(device)
        cuda = self.device is not None and self.device.type == "cuda"
        dataset._tag = True
        # Workers ship compact uint8 batches; the float conversion (4× the bytes, and ×3 when a
        # grey image feeds an RGB model) happens once, here or on the GPU, not before the copy.
        dataset._finish_here = not cuda
        dataset.num_workers_hint = num_workers
        self.prefetch = prefetch
        self.skipped = 0
        self._consumed: dict[int, int] = {}
        self._parent: dict[str, Any] | None = None
        self.cached_in_process = cached_in_process
        if num_workers > 0:
            loader_options.setdefault("prefetch_factor", 2)
        loader_options.setdefault("collate_fn", _as_is)
        super().__init__(
            dataset,
            batch_size=None,
            num_workers=num_workers,
            pin_memory=cuda if pin_memory is None else pin_memory,
            **loader_options,
        )

    @property
    def slices(self) -> int:
        """Slices in an epoch: ``world_size × max(1, num_workers)``."""
        return self.stream.world_size * max(1, self.num_workers)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (its shuffle order)."""
        self.stream.set_epoch(epoch)
        if self.stream._resume is None:
            self._consumed, self._parent = {}, None

    def state_dict(self) -> dict[str, Any]:
        """Where this rank is in the epoch: enough to resume with exactly the samples left."""
        return {
            "epoch": self.stream.epoch,
            "seed": self.stream.seed,
            "shuffle": self.stream.shuffle,
            "samples": len(self.stream.plan),
            "slices": self.slices,
            "workers": max(1, self.num_workers),
            "rank": self.stream.rank,
            "consumed": {str(k): v for k, v in sorted(self._consumed.items())},
            "parent": self._parent,
            "skipped": self.skipped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from ``state_dict()``: the next iteration yields the rest of that epoch."""
        stream = self.stream
        for key in ("seed", "shuffle", "samples"):
            ours = len(stream.plan) if key == "samples" else getattr(stream, key)
            if state.get(key) != ours:
                raise UsageError(
                    f"This loader state was saved with {key}={state.get(key)!r}, not {ours!r}.",
                    "Resume with the same dataset, split, seed and shuffle setting.",
                )
        stream.epoch = int(state["epoch"])
        stream._resume = {k: state[k] for k in ("epoch", "slices", "workers", "consumed", "parent")}
        self.skipped = int(state.get("skipped", 0))

    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        stream = self.stream
        state = (
            stream._resume if stream._resume and stream._resume["epoch"] == stream.epoch else None
        )
        if state is not None and state["slices"] == self.slices:
            self._consumed = {k: _consumed(state, k) for k in self._my_slices()}
            self._parent = state.get("parent")
        else:
            self._consumed = {k: 0 for k in self._my_slices()}
            self._parent = state
        cache = stream.cache
        batches: Iterator[Batch]
        if self.cached_in_process and self.num_workers > 0 and cache is not None and cache.complete:
            batches = self._in_process()
        else:
            batches = super().__iter__()
        if self.device is not None:
            batches = to_device(batches, self.device, stream.preset.finish, self.prefetch)
        elif not stream._finish_here:
            batches = (stream.preset.finish(b) for b in batches)
        return self._track(batches)

    def _in_process(self) -> Iterator[Batch]:
        """Cached epochs: read the memory-mapped cache here, faster than shipping batches from
        worker processes. Slices and their round-robin order are those of the workers, so the
        batches and the resume state are the same as with workers."""
        from torch.utils.data._utils.pin_memory import pin_memory

        stream, workers = self.stream, max(1, self.num_workers)
        active: deque[Iterator[Batch]] = deque()
        for k in self._my_slices():
            order, start, _ = stream.resolve(stream.world_size * workers, k)
            active.append(stream._batches(k, order, start))
        while active:
            source = active.popleft()
            batch = next(source, None)
            if batch is None:
                continue
            active.append(source)
            yield pin_memory(batch) if self.pin_memory else batch

    def _my_slices(self) -> range:
        workers = max(1, self.num_workers)
        return range(self.stream.rank * workers, (self.stream.rank + 1) * workers)

    def _track(self, batches: Iterator[Batch]) -> Iterator[Batch]:
        for batch in batches:
            k, pos, skipped = (int(v) for v in batch.pop(TAG).tolist())
            self._consumed[k] = pos
            self.skipped += skipped
            yield batch
        self.stream._resume = None
        self.stream.epoch += 1
        self._consumed, self._parent = {}, None


def make_loader(
    ds: Dataset,
    split: str | None = "train",
    preset: str | Preset | None = None,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    shuffle: bool | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache: bool | str | os.PathLike[str] | None = None,
    on_error: str = "raise",
    splits: str = "official",
    buffer_size: int = 256,
    rank: int | None = None,
    world_size: int | None = None,
    prefetch: int = 2,
    gpu_decode: bool = True,
    loader_options: dict[str, Any] | None = None,
    **preset_options: Any,
) -> MeddataLoader:
    """A ready :class:`MeddataLoader` over ``split`` of ``ds`` (what ``ds.torch(...)`` returns).

    ``shuffle`` defaults to True for ``train`` and False otherwise; ``gpu_decode`` decodes JPEG
    cells on the GPU when ``device`` is CUDA and torchvision is installed; other keyword
    arguments are the preset's options (e.g. ``uncertainty="zeros"``).
    """
    dev = resolve_device(device)
    dataset = StreamingDataset(
        ds,
        split,
        preset=preset,
        splits=splits,
        batch_size=batch_size,
        shuffle=(split == "train") if shuffle is None else shuffle,
        seed=seed,
        buffer_size=buffer_size,
        rank=rank,
        world_size=world_size,
        cache=cache,
        on_error=on_error,
        gpu_decode=gpu_decode and dev is not None and dev.type == "cuda",
        **preset_options,
    )
    return MeddataLoader(
        dataset, num_workers=num_workers, device=dev, prefetch=prefetch, **(loader_options or {})
    )
