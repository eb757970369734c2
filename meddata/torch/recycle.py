"""Shared-memory batch buffers that loader workers reuse once the main process lets go.

A ``DataLoader`` worker hands a batch to the main process through shared memory. Allocated
fresh for every batch, that memory is zero-filled and mapped by the kernel one 4 KiB page at a
time (a float ``64×3×224×224`` batch is 9,400 page faults), which costs about as much as
normalising the batch. Here each worker keeps a few shared buffers and the main process gives
one back when nothing there references the batch it carried any more (every tensor of the
batch collected, views included), through a small table of flags in shared memory:

* worker: :meth:`WorkerBuffers.empty` takes a free buffer of the right size (flag 0 → 1) or
  falls back to fresh shared memory; :meth:`WorkerBuffers.ship` lists the buffers a finished
  batch carries and frees the ones it used only for intermediate steps;
* main: :meth:`Returns.received` remembers the batch's storages weakly;
  :meth:`Returns.collect` frees (flag → 0) the buffers of batches that are gone.

A worker never waits for a buffer, so nothing can deadlock; it only reuses memory that no
tensor in the main process can still see (keeping any tensor of a batch, even its labels,
keeps the batch's buffers). Tensors sent on to *other* processes are not tracked: clone them
first, or turn recycling off (``recycle_buffers=False``). A custom ``collate_fn`` turns
recycling off, since it runs after the worker has listed what the batch carries.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef

SLOTS_KEY = "_meddata_slots"
_active: WorkerBuffers | None = None


def new_flags(workers: int, per_worker: int) -> torch.Tensor:
    """The shared flag table (created in the main process before the workers start)."""
    return torch.zeros((workers, per_worker), dtype=torch.int8).share_memory_()


def shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor in fresh shared memory."""
    numel = 1
    for n in shape:
        numel *= n
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel, device="cpu")
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


class WorkerBuffers:
    """One worker's reusable buffers, one per slot of its row of the flag table."""

    def __init__(self, flags: torch.Tensor) -> None:
        self.flags = flags
        self.buffers: list[torch.Tensor | None] = [None] * len(flags)
        self.taken: list[int] = []
        self.reused = 0

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A shared tensor of ``shape``: a free buffer when one is, fresh shared memory if not."""
        free = [s for s in range(len(self.buffers)) if int(self.flags[s]) == 0]
        numel = 1
        for n in shape:
            numel *= n
        for s in free:  # a free buffer of the same size first, so its pages are already mapped
            buf = self.buffers[s]
            if buf is not None and buf.dtype == dtype and buf.numel() == numel:
                self.reused += 1
                return self._take(s, buf.view(shape))
        if not free:
            return shared_empty(shape, dtype)
        return self._take(free[0], shared_empty(shape, dtype))

    def _take(self, slot: int, tensor: torch.Tensor) -> torch.Tensor:
        self.flags[slot] = 1
        self.buffers[slot] = tensor
        self.taken.append(slot)
        return tensor

    def ship(self, batch: dict[str, Any]) -> list[int]:
        """Slots whose buffers ``batch`` carries (any tensor, however nested, whose memory
        overlaps the buffer: views and NumPy aliases count); the other slots taken since the
        last batch (intermediate steps) are free again."""
        spans = [_span(t) for t in tensors_in(batch)]
        shipped = []
        for s in self.taken:
            buf = self.buffers[s]
            start, end = _span(buf) if buf is not None else (0, 0)
            if any(a < end and start < b for a, b in spans):
                shipped.append(s)
            else:
                self.flags[s] = 0
        self.taken = []
        return shipped


def tensors_in(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value``, looking inside dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []


def _span(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    start = storage.data_ptr()
    return start, start + max(1, storage.nbytes())


def activate(flags: torch.Tensor | None) -> WorkerBuffers | None:
    """Make ``flags`` (this worker's row) the buffers :func:`empty` draws from; None turns
    recycling off."""
    global _active
    _active = WorkerBuffers(flags) if flags is not None else None
    return _active


def active() -> WorkerBuffers | None:
    """This worker's buffers, when recycling is on."""
    return _active


class Returns:
    """Main-process side: gives a worker's buffers back once their batch is gone."""

    def __init__(self, flags: torch.Tensor) -> None:
        self.flags = flags
        self.pending: list[tuple[int, list[int], list[StorageWeakRef]]] = []
        self.given_back = 0

    def received(self, worker: int, slots: list[int], batch: dict[str, Any]) -> None:
        """Remember the batch that arrived in ``slots`` of ``worker``."""
        if not slots:
            return
        refs = [StorageWeakRef(t.untyped_storage()) for t in tensors_in(batch) if t.is_shared()]
        self.pending.append((worker, slots, refs))

    def collect(self) -> None:
        """Free the slots of every batch no tensor references any more."""
        still = []
        for worker, slots, refs in self.pending:
            if all(r.expired() for r in refs):
                for s in slots:
                    self.flags[worker, s] = 0
                self.given_back += len(slots)
            else:
                still.append((worker, slots, refs))
        self.pending = still
