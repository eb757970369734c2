"""Recycled shared-memory batch buffers: reused only once the main process has let go."""

from __future__ import annotations

import gc

import pytest

torch = pytest.importorskip("torch")

import meddata  # noqa: E402
from meddata.torch import recycle  # noqa: E402
from meddata.torch.synth import write_cxr_dataset  # noqa: E402


@pytest.fixture(scope="module")
def cxr(tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    out = tmp_path_factory.mktemp("recycle")
    # 45 samples, batch 4: the last batch of each worker is shorter (another buffer size).
    return meddata.load(write_cxr_dataset(out, n=45, size=(36, 44), with_notes=False))


def _loader(ds: meddata.Dataset, workers: int, **kw: object):  # type: ignore[no-untyped-def]
    return ds.torch(
        None, preset="chexpert", size=32, batch_size=4, num_workers=workers, seed=3, **kw
    )


def _reference(ds: meddata.Dataset) -> dict[int, torch.Tensor]:
    return {
        int(i): img.clone()
        for b in _loader(ds, 0)
        for i, img in zip(b["sample_id"].tolist(), b["image"], strict=True)
    }


def test_worker_reuses_a_buffer_only_after_the_main_side_lets_go() -> None:
    flags = recycle.new_flags(1, 3)
    worker, returns = recycle.WorkerBuffers(flags[0]), recycle.Returns(flags)

    first = worker.empty((2, 3), torch.float32)
    first_address = first.untyped_storage().data_ptr()
    scratch = worker.empty((5,), torch.uint8)  # an intermediate step, not shipped
    batch = {"image": first}
    slots = worker.ship(batch)
    assert slots == [0] and flags[0].tolist() == [1, 0, 0]  # the scratch slot is free again
    # The main process maps the batch anew: its tensors are other storages over the same memory.
    arrived = {"image": recycle.shared_empty((2, 3), torch.float32)}
    returns.received(0, slots, arrived)
    del scratch, batch, first

    view = arrived["image"][:1]  # a view still sees the buffer
    del arrived
    gc.collect()
    returns.collect()
    assert flags[0, 0] == 1 and returns.given_back == 0
    second = worker.empty((2, 3), torch.float32)  # slot 0 is held: fresh memory in slot 1
    assert second.untyped_storage().data_ptr() != first_address
    assert worker.reused == 0
    assert worker.ship({"image": second}) == [1]

    del view
    gc.collect()
    returns.collect()
    assert returns.given_back == 1 and flags[0, 0] == 0
    third = worker.empty((3, 2), torch.float32)  # same size, other shape: the first buffer
    assert worker.reused == 1
    assert third.untyped_storage().data_ptr() == first_address
    assert third.is_shared()


def test_worker_falls_back_to_fresh_memory_when_every_slot_is_held() -> None:
    flags = recycle.new_flags(1, 2)
    worker = recycle.WorkerBuffers(flags[0])
    held = [worker.empty((4,), torch.float32) for _ in range(2)]
    extra = worker.empty((4,), torch.float32)
    assert extra.is_shared()
    assert {t.untyped_storage().data_ptr() for t in [*held, extra]}.__len__() == 3
    assert worker.ship({"a": held[0], "b": extra}) == [0]


def test_held_batches_and_views_are_never_overwritten(cxr: meddata.Dataset) -> None:
    reference = _reference(cxr)
    kept: list[tuple[list[int], torch.Tensor]] = []
    seen: dict[int, torch.Tensor] = {}
    loader = _loader(cxr, 2)
    for n, batch in enumerate(loader):
        ids = batch["sample_id"].tolist()
        for i, img in zip(ids, batch["image"], strict=True):
            seen[i] = img.clone()
        if n % 3 == 0:
            kept.append((ids, batch["image"][:2]))  # a view keeps the whole buffer
    assert seen.keys() == reference.keys()
    for i, img in seen.items():
        assert torch.equal(img, reference[i])
    for ids, view in kept:  # still the values they had when they arrived
        for i, img in zip(ids, view, strict=False):
            assert torch.equal(img, reference[i])


def test_recycling_can_be_turned_off_and_gives_the_same_batches(cxr: meddata.Dataset) -> None:
    on = [b["image"].clone() for b in _loader(cxr, 2)]
    off = [b["image"].clone() for b in _loader(cxr, 2, recycle_buffers=False)]
    assert len(on) == len(off)
    assert all(torch.equal(a, b) for a, b in zip(on, off, strict=True))


def test_buffers_really_are_reused_over_an_epoch(cxr: meddata.Dataset) -> None:
    loader = _loader(cxr, 2)
    count = sum(1 for _ in loader)
    returns = loader._last_returns
    assert count > 5
    assert returns is not None and returns.given_back > 0


class _TwoViews:
    """A custom finish that ships views of its output inside a list (multi-crop style)."""

    @staticmethod
    def make() -> object:
        from meddata.torch import transforms as T
        from meddata.torch.presets import ChexpertPreset

        class TwoViews(ChexpertPreset):
            name = "two-views"

            def finish(self, batch: dict) -> dict:  # type: ignore[type-arg]
                x = T.normalize(batch.pop(self.key), T.IMAGENET_MEAN, T.IMAGENET_STD, channels=3)
                batch["views"] = [x[..., :16], x[..., 16:]]
                return batch

        return TwoViews(size=32)


def test_buffers_nested_in_lists_are_tracked(cxr: meddata.Dataset) -> None:
    def run(workers: int) -> list[tuple[int, torch.Tensor]]:
        loader = cxr.torch(None, preset=_TwoViews.make(), batch_size=4, num_workers=workers, seed=3)
        held = [(b["sample_id"].tolist(), b["views"][0]) for b in loader]
        return [(i, t) for ids, v in held for i, t in zip(ids, v, strict=True)]

    reference = {i: t.clone() for i, t in run(0)}
    assert all(torch.equal(t, reference[i]) for i, t in run(2))


def test_a_custom_collate_fn_turns_recycling_off(cxr: meddata.Dataset) -> None:
    from meddata.torch import transforms as T

    def collate(batch: dict) -> dict:  # type: ignore[type-arg]
        batch["image"] = T.normalize(batch["image"], T.IMAGENET_MEAN, T.IMAGENET_STD)
        return batch

    def run(workers: int) -> list[tuple[int, torch.Tensor]]:
        loader = _loader(cxr, workers, normalize=False, loader_options={"collate_fn": collate})
        held = [(b["sample_id"].tolist(), b["image"]) for b in loader]
        assert loader._last_returns is None or workers == 0
        return [(i, t) for ids, v in held for i, t in zip(ids, v, strict=True)]

    reference = {i: t.clone() for i, t in run(0)}
    assert all(torch.equal(t, reference[i]) for i, t in run(2))
