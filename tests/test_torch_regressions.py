"""Regressions found in review: DDP step counts, persistent workers, cache entries, finish once,
resume state checks, and len() under a user-built DataLoader with workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import meddata  # noqa: E402
from meddata.errors import UsageError  # noqa: E402
from meddata.torch import ImagePreset  # noqa: E402
from meddata.torch.synth import write_cxr_dataset  # noqa: E402

N = 37


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    out = tmp_path_factory.mktemp("regress")
    return meddata.load(
        write_cxr_dataset(out, n=N, size=(40, 48), row_group_bytes=3000, target_shard_bytes=20000)
    )


def real_ids(batches: list[dict[str, Any]]) -> list[int]:
    out: list[int] = []
    for b in batches:
        keep = ~b["padding"] if "padding" in b else torch.ones(len(b["sample_id"]), dtype=bool)
        out += b["sample_id"][keep].tolist()
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_ddp_ranks_take_the_same_number_of_steps(small: meddata.Dataset, workers: int) -> None:
    # 37 samples, 2 ranks → 19 / 18; batch 3 → 7 / 6 batches unpadded: the DDP hang case.
    per_rank, seen = [], []
    for rank in range(2):
        loader = small.torch(
            None, preset="chexpert", size=16, batch_size=3, num_workers=workers,
            rank=rank, world_size=2, seed=4,
        )  # fmt: skip
        batches = list(loader)
        assert len(loader) == len(batches)
        per_rank.append(len(batches))
        pads = torch.cat([b["padding"] for b in batches])
        masks = torch.cat([b["label_mask"] for b in batches])
        assert bool((masks[pads] == 0).all())
        seen += real_ids(batches)
    assert per_rank == [7, 7]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == N


def test_uneven_batches_are_ceil_of_rank_share_whatever_the_workers(
    small: meddata.Dataset,
) -> None:
    counts = {}
    for workers in (0, 2, 3):
        ids: list[int] = []
        counts[workers] = []
        for rank in range(2):
            sd = small.torch_dataset(
                None, preset="chexpert", size=16, batch_size=3, rank=rank, world_size=2,
                even_batches=False, num_workers=workers,
            )  # fmt: skip
            batches = list(torch.utils.data.DataLoader(sd, batch_size=None, num_workers=workers))
            assert "padding" not in batches[0]
            assert len(sd) == len(batches)
            counts[workers].append(len(batches))
            ids += real_ids(batches)
        assert sorted(ids) == sorted(set(ids)) and len(ids) == N
    assert counts == {0: [7, 6], 2: [7, 6], 3: [7, 6]}


def test_ddp_resume_from_rank0_state_covers_the_rest(small: meddata.Dataset) -> None:
    kw: dict[str, Any] = dict(preset="chexpert", size=16, batch_size=3, seed=9, world_size=2)
    loaders = [small.torch(None, rank=r, **kw) for r in range(2)]
    head: list[int] = []
    its = [iter(lo) for lo in loaders]
    for _ in range(3):
        head += real_ids([next(it) for it in its])
    state = loaders[0].state_dict()
    del its
    rest: list[int] = []
    steps = []
    for r in range(2):
        lo = small.torch(None, rank=r, num_workers=2 if r else 0, **kw)
        lo.load_state_dict(state)
        batches = list(lo)
        steps.append(len(batches))
        rest += real_ids(batches)
    total = head + rest
    assert steps[0] == steps[1]
    assert sorted(total) == sorted(set(total)) and len(total) == N


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_drop_last_gives_every_rank_the_same_full_batches(
    small: meddata.Dataset, workers: int
) -> None:
    # 37 samples, 2 ranks → 19 / 18; batch 4 → 4 full batches each, 5 samples left unread.
    ids: list[int] = []
    for rank in range(2):
        loader = small.torch(
            None, preset="chexpert", size=16, batch_size=4, num_workers=workers,
            rank=rank, world_size=2, seed=2, drop_last=True,
        )  # fmt: skip
        batches = list(loader)
        assert len(loader) == len(batches) == 4
        assert all(len(b["sample_id"]) == 4 for b in batches)
        assert "padding" not in batches[0]
        ids += real_ids(batches)
    assert len(ids) == len(set(ids)) == 32


def test_drop_last_single_rank_drops_only_the_partial_batch(small: meddata.Dataset) -> None:
    kw: dict[str, Any] = dict(preset="chexpert", size=16, batch_size=5, shuffle=False)
    full = real_ids(list(small.torch(None, **kw)))
    dropped = small.torch(None, drop_last=True, **kw)
    got = real_ids(list(dropped))
    assert len(dropped) == 7 and got == full[:35]


def test_drop_last_resume_reads_the_rest_of_the_full_batches(small: meddata.Dataset) -> None:
    kw: dict[str, Any] = dict(preset="chexpert", size=16, batch_size=4, seed=3, drop_last=True)
    loader = small.torch(None, **kw)
    it = iter(loader)
    head = real_ids([next(it) for _ in range(3)])
    state = loader.state_dict()
    del it
    assert state["drop_last"] is True
    again = small.torch(None, num_workers=2, **kw)
    again.load_state_dict(state)
    rest = list(again)
    assert all(len(b["sample_id"]) == 4 for b in rest)
    total = head + real_ids(rest)
    assert len(total) == len(set(total)) == 36  # 9 full batches of 37 samples


def test_drop_last_needs_a_batch_size_and_is_not_a_dataloader_option(
    small: meddata.Dataset,
) -> None:
    with pytest.raises(UsageError, match="needs a batch_size"):
        small.torch_dataset(None, preset="chexpert", size=16, batch_size=None, drop_last=True)
    with pytest.raises(UsageError, match="ds.torch"):
        small.torch(None, preset="chexpert", size=16, loader_options={"drop_last": True})


def test_persistent_workers_are_refused(small: meddata.Dataset) -> None:
    with pytest.raises(UsageError, match="persistent_workers"):
        small.torch(
            None, preset="chexpert", size=16, num_workers=1,
            loader_options={"persistent_workers": True},
        )  # fmt: skip


def images(loader: Any) -> dict[int, torch.Tensor]:
    return {s: x for b in loader for s, x in zip(b["sample_id"].tolist(), b["image"], strict=True)}


def test_cache_configurations_do_not_share_or_wipe_entries(
    small: meddata.Dataset, tmp_path: Path
) -> None:
    kw: dict[str, Any] = dict(batch_size=5, shuffle=False, cache=tmp_path, size=16)
    a = small.torch(None, preset="chexpert", **kw)
    images(a)
    b = small.torch(None, preset="chexpert", resize=24, **kw)
    t = small.torch("train", preset="chexpert", **kw)
    ca, cb, ct = a.stream.cache, b.stream.cache, t.stream.cache
    assert ca is not None and cb is not None and ct is not None
    assert len({ca.directory, cb.directory, ct.directory}) == 3
    assert ca.complete  # not wiped by the other configurations
    ref_b = images(small.torch(None, preset="chexpert", resize=24, batch_size=5, size=16))
    got_b = images(b)
    assert all(torch.equal(ref_b[s], got_b[s]) for s in ref_b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_cache_entry_replaced_underneath_is_not_served(
    small: meddata.Dataset, tmp_path: Path
) -> None:
    kw: dict[str, Any] = dict(preset="chexpert", batch_size=5, shuffle=False, size=16)
    loader = small.torch(None, cache=tmp_path, **kw)
    ref = images(loader)
    cache = loader.stream.cache
    assert cache is not None and cache.complete
    key = cache.directory / "key.json"
    foreign = json.loads(key.read_text())
    foreign["digest"] = "0" * 64
    key.write_text(json.dumps(foreign))
    (cache.directory / "items.u8").write_bytes(b"\xff" * (cache.n * cache.itemsize))
    again = images(loader)  # the entry is re-checked each pass, found foreign, and rebuilt
    assert all(torch.equal(ref[s], again[s]) for s in ref)
    assert json.loads(key.read_text())["digest"] == cache.digest


class Scaled(ImagePreset):
    name = "scaled-test"

    def __init__(self) -> None:
        super().__init__(size=16)

    def finish(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch["image"] = batch["image"].float() / 255
        return batch


def test_cpu_device_finishes_once(small: meddata.Dataset) -> None:
    plain = next(iter(small.torch(None, preset=Scaled(), batch_size=4, shuffle=False)))
    cpu = next(iter(small.torch(None, preset=Scaled(), batch_size=4, shuffle=False, device="cpu")))
    assert torch.equal(plain["image"], cpu["image"]) and float(cpu["image"].max()) > 0.1


def test_state_dict_right_after_load_keeps_the_progress(small: meddata.Dataset) -> None:
    kw: dict[str, Any] = dict(preset="chexpert", size=16, batch_size=4, seed=1)
    loader = small.torch(None, **kw)
    it = iter(loader)
    head = real_ids([next(it) for _ in range(5)])
    state = loader.state_dict()
    del it
    restored = small.torch(None, **kw)
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    final = small.torch(None, **kw)
    final.load_state_dict(restored.state_dict())
    total = head + real_ids(list(final))
    assert sorted(total) == sorted(set(total)) and len(total) == N


def test_resume_refuses_other_buffer_or_plan(small: meddata.Dataset) -> None:
    kw: dict[str, Any] = dict(preset="chexpert", size=16, batch_size=4, seed=1)
    state = small.torch(None, buffer_size=256, **kw).state_dict()
    with pytest.raises(UsageError, match="buffer_size"):
        small.torch(None, buffer_size=16, **kw).load_state_dict(state)
    with pytest.raises(UsageError, match="fingerprint"):
        small.torch(None, **kw).load_state_dict({**state, "fingerprint": "other"})


def test_len_of_own_dataloader_with_workers(small: meddata.Dataset) -> None:
    sd = small.torch_dataset("train", preset="chexpert", batch_size=4, size=16, num_workers=2)
    dl = torch.utils.data.DataLoader(sd, batch_size=None, num_workers=2)
    assert len(dl) == sum(1 for _ in dl)


def test_samples_without_a_person_id_are_refused_not_turned_into_wrong_ids(
    tmp_path: Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from meddata.torch.plan import SampleError

    root = Path(write_cxr_dataset(tmp_path / "nulls", n=6, size=(16, 16)))
    manifest = json.loads((root / "meddata.json").read_text())
    shard = root / manifest["tables"]["samples"]["shards"][0]["path"]
    table = pq.read_table(shard)
    ids = table.column("person_id").to_pylist()
    ids[2] = None
    index = table.schema.get_field_index("person_id")
    field = table.schema.field(index).with_nullable(True)
    pq.write_table(table.set_column(index, field, pa.array(ids, pa.int64())), shard)
    with pytest.raises(SampleError, match="1 sample.*no person_id"):
        meddata.load(root).torch(None, preset="chexpert", size=16)
