"""Streaming loader: epoch coverage across ranks × workers, shuffling, resume, remote, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")

import meddata  # noqa: E402
from meddata.torch import SampleError, StreamingDataset  # noqa: E402
from meddata.torch.plan import buffer_shuffle, split_bounds  # noqa: E402
from meddata.torch.synth import write_cxr_dataset  # noqa: E402

SIZE = (36, 44)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    """Several shards and many small row groups."""
    out = tmp_path_factory.mktemp("many")
    return meddata.load(
        write_cxr_dataset(out, n=70, size=SIZE, row_group_bytes=6_000, target_shard_bytes=30_000)
    )


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    """One shard with one row group: workers must still share the work."""
    out = tmp_path_factory.mktemp("single")
    return meddata.load(write_cxr_dataset(out, n=30, size=SIZE, with_notes=False))


def split_ids(ds: meddata.Dataset, split: str | None) -> list[int]:
    return sorted(ds.samples(split).select("sample_id").collect()["sample_id"].to_list())


def epoch_ids(loader) -> list[int]:  # type: ignore[no-untyped-def]
    return [i for b in loader for i in b["sample_id"].tolist()]


def test_many_shards_and_row_groups(many: meddata.Dataset) -> None:
    entry = many.manifest["tables"]["image"]
    assert len(entry["shards"]) >= 2


@pytest.mark.parametrize(("workers", "world"), [(0, 1), (2, 1), (0, 3), (2, 2), (3, 2)])
def test_exact_epoch_coverage(many: meddata.Dataset, workers: int, world: int) -> None:
    seen: list[int] = []
    steps = []
    for rank in range(world):
        loader = many.torch(
            "train",
            preset="chexpert",
            size=32,
            batch_size=4,
            num_workers=workers,
            rank=rank,
            world_size=world,
            seed=3,
        )
        batches = list(loader)
        steps.append(len(batches))
        assert len(loader) == len(batches)
        for b in batches:
            real = ~b["padding"] if world > 1 else torch.ones(len(b["sample_id"]), dtype=bool)
            assert bool((b["label_mask"][~real] == 0).all())  # padding never reaches the loss
            seen += b["sample_id"][real].tolist()
    assert sorted(seen) == split_ids(many, "train")  # nothing dropped, nothing twice
    assert len(set(steps)) == 1  # every DDP rank takes the same number of steps


def test_single_row_group_is_shared_by_all_workers(single: meddata.Dataset) -> None:
    per_worker: dict[int, int] = {}
    loader = single.torch(
        None, preset="chexpert", size=32, batch_size=2, num_workers=3, shuffle=False
    )
    ids = []
    for batch in loader:
        ids += batch["sample_id"].tolist()
    state = loader.state_dict()
    assert sorted(ids) == split_ids(single, None)
    ds = single.torch_dataset(None, preset="chexpert", size=32, batch_size=2, shuffle=False)
    for k in range(3):
        per_worker[k] = len(ds.slice_order(3, k))
    assert sorted(per_worker.values()) == [10, 10, 10]  # whole batches: 15 of 2 → 5 + 5 + 5
    assert state["epoch"] == 1


def test_same_seed_same_batches_other_epoch_other_order(many: meddata.Dataset) -> None:
    def run(epoch: int, seed: int = 7) -> list[int]:
        loader = many.torch(
            "train", preset="chexpert", size=32, batch_size=5, num_workers=2, seed=seed
        )
        loader.set_epoch(epoch)
        return epoch_ids(loader)

    first = run(0)
    assert first == run(0)
    assert sorted(first) == sorted(run(1))
    assert first != run(1)
    assert first != run(0, seed=8)


def test_epoch_advances_after_a_full_pass(many: meddata.Dataset) -> None:
    loader = many.torch("train", preset="chexpert", size=32, batch_size=8, seed=1)
    a, b = epoch_ids(loader), epoch_ids(loader)
    assert a != b and sorted(a) == sorted(b)
    loader.set_epoch(0)
    assert epoch_ids(loader) == a


def test_images_are_identical_across_runs(many: meddata.Dataset) -> None:
    def images() -> torch.Tensor:
        loader = many.torch(
            "train", preset="chexpert", size=32, batch_size=6, num_workers=2, seed=2, augment=True
        )
        return torch.cat([b["image"] for b in loader])

    assert torch.equal(images(), images())


def test_resume_yields_exactly_the_rest_in_order(many: meddata.Dataset) -> None:
    kwargs = dict(preset="chexpert", size=32, batch_size=4, seed=11)
    full = epoch_ids(many.torch("train", **kwargs))
    loader = many.torch("train", **kwargs)
    head: list[int] = []
    for n, batch in enumerate(loader):
        head += batch["sample_id"].tolist()
        if n == 2:
            break
    state = loader.state_dict()
    resumed = many.torch("train", **kwargs)
    resumed.load_state_dict(state)
    assert head + epoch_ids(resumed) == full
    assert resumed.stream.epoch == 1  # the resumed epoch finished; the next one is fresh


@pytest.mark.parametrize(("before", "after"), [(2, 2), (2, 3), (0, 2)])
def test_resume_with_workers_has_exactly_the_remaining_samples(
    many: meddata.Dataset, before: int, after: int
) -> None:
    kwargs = dict(preset="chexpert", size=32, batch_size=3, seed=5)
    loader = many.torch("train", num_workers=before, **kwargs)
    head: list[int] = []
    for n, batch in enumerate(loader):
        head += batch["sample_id"].tolist()
        if n == 4:
            break
    state = loader.state_dict()
    resumed = many.torch("train", num_workers=after, **kwargs)
    resumed.load_state_dict(state)
    mid: list[int] = []
    for n, batch in enumerate(resumed):
        mid += batch["sample_id"].tolist()
        if n == 1:
            break
    again = many.torch("train", num_workers=before, **kwargs)  # resume a resumed run
    again.load_state_dict(resumed.state_dict())
    rest = epoch_ids(again)
    total = head + mid + rest
    assert len(total) == len(set(total))
    assert sorted(total) == split_ids(many, "train")


def test_resume_refuses_another_seed(many: meddata.Dataset) -> None:
    loader = many.torch("train", preset="chexpert", size=32, batch_size=4, seed=1)
    other = many.torch("train", preset="chexpert", size=32, batch_size=4, seed=2)
    with pytest.raises(meddata.MeddataError, match="seed"):
        other.load_state_dict(loader.state_dict())


def test_dataset_for_own_dataloader_yields_samples(many: meddata.Dataset) -> None:
    ds = many.torch_dataset("valid", preset="xrv", size=32, batch_size=None, shuffle=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    ids = []
    for batch in loader:
        assert batch["image"].shape[1:] == (1, 32, 32)
        assert isinstance(batch["sex"], list)
        ids += batch["sample_id"].tolist()
    assert sorted(ids) == split_ids(many, "valid")


def test_remote_memory_filesystem(tmp_path: Path) -> None:
    url = write_cxr_dataset("memory://torchtest/data", n=24, size=SIZE, row_group_bytes=5_000)
    ds = meddata.load(url)
    assert ds.path.startswith("memory://")
    for workers in (0, 2):
        loader = ds.torch(
            None, preset="chexpert", size=32, batch_size=5, num_workers=workers, seed=1
        )
        assert sorted(epoch_ids(loader)) == split_ids(ds, None)


def test_corrupt_cell_names_the_sample_or_is_skipped(tmp_path: Path) -> None:
    ds = meddata.load(write_cxr_dataset(tmp_path, n=12, size=SIZE, corrupt=(3,), with_notes=False))
    loader = ds.torch(None, preset="chexpert", size=32, batch_size=4, shuffle=False)
    with pytest.raises(
        SampleError, match=r"Sample 4 \(image shard .*row group \d+, row \d+\)"
    ) as err:
        epoch_ids(loader)
    assert str(err.value).count("meddata validate") == 1  # the advice is given once
    skipping = ds.torch(
        None, preset="chexpert", size=32, batch_size=4, num_workers=2, on_error="skip"
    )
    ids = epoch_ids(skipping)
    assert sorted(ids) == [i for i in split_ids(ds, None) if i != 4]
    assert skipping.skipped == 1


def test_missing_split_and_bad_options_are_clear(many: meddata.Dataset) -> None:
    with pytest.raises(meddata.MeddataError, match="no samples"):
        many.torch("nope", preset="chexpert")
    with pytest.raises(meddata.MeddataError, match="preset"):
        many.torch("train", preset="nope")
    with pytest.raises(meddata.MeddataError, match="CUDA"):
        if torch.cuda.is_available():
            raise meddata.MeddataError("CUDA present; nothing to check")
        many.torch("train", preset="chexpert", device="cuda")


def test_split_bounds_and_buffer_shuffle() -> None:
    assert split_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert split_bounds(2, 4) == [(0, 1), (1, 2), (2, 2), (2, 2)]
    items = np.arange(100)
    out = buffer_shuffle(items, 8, np.random.default_rng(0))
    assert sorted(out.tolist()) == items.tolist() and out.tolist() != items.tolist()
    # bounded: an item never comes out more than the buffer size before its turn
    assert all(pos >= int(v) - 8 for pos, v in enumerate(out))


def test_split_none_streams_every_sample(many: meddata.Dataset) -> None:
    ds = StreamingDataset(many, None, preset="chexpert", size=32, batch_size=16, shuffle=False)
    ids = [i for b in ds for i in b["sample_id"].tolist()]
    assert ids == sorted(ids) or sorted(ids) == split_ids(many, None)
    assert len(ds) == -(-len(ids) // 16)
    assert pl.Series(ids).n_unique() == len(ids)


def test_reader_closes_each_shard_after_its_last_sample(many: meddata.Dataset) -> None:
    from meddata.torch.stream import _RowGroupReader

    plan = StreamingDataset(many, None, preset="chexpert", size=32, batch_size=4).plan
    assert len(set(plan.shard.tolist())) >= 2
    order = np.lexsort((plan.row, plan.row_group, plan.shard))  # shard after shard
    reader = _RowGroupReader(plan, order, 0)
    most_open = 0
    for pos in order.tolist():
        reader.row(pos)
        most_open = max(most_open, len(reader._files))
    assert most_open == 1 and reader._files == {}  # memory maps do not pile up over an epoch


def test_negative_seed_or_epoch_is_a_usage_error(tmp_path: Path) -> None:
    from meddata.errors import UsageError

    ds = meddata.load(write_cxr_dataset(tmp_path, n=6, size=SIZE, with_notes=False))
    with pytest.raises(UsageError, match="seed must be a non-negative integer"):
        ds.torch(None, preset="chexpert", size=32, batch_size=2, seed=-1)
    loader = ds.torch(None, preset="chexpert", size=32, batch_size=2)
    with pytest.raises(UsageError, match="epoch must be 0 or more"):
        loader.set_epoch(-1)
