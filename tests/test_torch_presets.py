"""Presets (shapes, dtypes, value ranges, label policies), the preprocessed cache, quick_train."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import meddata  # noqa: E402
from meddata.torch import ImagePreset, get_preset, quick_train, register_preset, uncertainty  # noqa: E402
from meddata.torch.synth import CHEXPERT_LABELS, write_cxr_dataset  # noqa: E402

SIZE = (40, 52)
LO = min((0 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True))
HI = max((1 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True))


@pytest.fixture(scope="module")
def cxr(tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    out = tmp_path_factory.mktemp("cxr")
    return meddata.load(write_cxr_dataset(out, n=24, size=SIZE, row_group_bytes=8_000))


def first(loader):  # type: ignore[no-untyped-def]
    return next(iter(loader))


def test_chexpert_preset_default_shapes_and_ranges(cxr: meddata.Dataset) -> None:
    batch = first(cxr.torch(None, preset="chexpert", batch_size=4))
    image = batch["image"]
    assert image.shape == (4, 3, 224, 224) and image.dtype == torch.float32
    assert LO - 1e-4 <= float(image.min()) and float(image.max()) <= HI + 1e-4
    assert batch["labels"].shape == (4, 14) and batch["labels"].dtype == torch.float32
    assert set(batch["labels"].unique().tolist()) <= {0.0, 1.0}  # U-Ones, blank → 0
    assert batch["label_mask"].shape == (4, 14) and bool((batch["label_mask"] == 1).all())
    for key in ("sample_id", "person_id", "sex", "age_group", "race", "view"):
        assert len(batch[key]) == 4


def test_chexpert_uint8_and_augmented_crop(cxr: meddata.Dataset) -> None:
    raw = first(
        cxr.torch(
            None, preset="chexpert", batch_size=3, size=32, resize=40, normalize=False, augment=True
        )
    )
    assert raw["image"].shape == (3, 1, 32, 32) and raw["image"].dtype == torch.uint8


def test_uncertainty_policies() -> None:
    raw = np.array([[1, 0, -1, np.nan]], np.float32)
    ones, m1 = uncertainty(raw, "ones")
    assert ones.tolist() == [[1, 0, 1, 0]] and m1.tolist() == [[1, 1, 1, 1]]
    zeros, _ = uncertainty(raw, "zeros")
    assert zeros.tolist() == [[1, 0, 0, 0]]
    ign, m2 = uncertainty(raw, "ignore")
    assert ign.tolist() == [[1, 0, 0, 0]] and m2.tolist() == [[1, 1, 0, 1]]
    multi, m3 = uncertainty(raw, "multiclass", blank="ignore")
    assert (
        multi.dtype == np.int64
        and multi.tolist() == [[1, 0, 2, 0]]
        and m3.tolist() == [[1, 1, 1, 0]]
    )
    with pytest.raises(meddata.MeddataError):
        uncertainty(raw, "maybe")


def test_multiclass_labels_are_int64(cxr: meddata.Dataset) -> None:
    batch = first(
        cxr.torch(None, preset="chexpert", size=32, batch_size=8, uncertainty="multiclass")
    )
    assert batch["labels"].dtype == torch.int64
    assert set(batch["labels"].unique().tolist()) <= {0, 1, 2}


def test_xrv_preset_convention(cxr: meddata.Dataset) -> None:
    batch = first(cxr.torch(None, preset="xrv", batch_size=6, shuffle=False))
    image = batch["image"]
    assert image.shape == (6, 1, 224, 224) and image.dtype == torch.float32
    assert -1024 <= float(image.min()) < float(image.max()) <= 1024
    labels, mask = batch["labels"], batch["label_mask"]
    assert torch.equal(mask, (~torch.isnan(labels)).float())
    assert not bool((labels == -1).any())
    healthy = labels[:, CHEXPERT_LABELS.index("no_finding")] == 1
    others = labels[healthy][:, 1:]
    assert bool((others == 0).all())


def test_text_preset_with_and_without_tokenizer(cxr: meddata.Dataset) -> None:
    batch = first(cxr.torch(None, preset="text", batch_size=5, shuffle=False))
    assert len(batch["text"]) == 5 and all(t.startswith("FINDINGS") for t in batch["text"])
    assert batch["labels"].shape == (5, 14)

    tokens = first(
        cxr.torch(None, preset="text", batch_size=5, shuffle=False, tokenizer=word_lengths)
    )
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    assert ids.shape == mask.shape and ids.dtype == torch.int64
    lengths = [len(t.split()) for t in tokens["text"]]
    assert mask.sum(1).tolist() == lengths and ids.shape[1] == max(lengths)


def word_lengths(texts: list[str]) -> list[list[int]]:
    return [[len(w) for w in t.split()] for t in texts]


def test_custom_preset_registered_by_name(cxr: meddata.Dataset) -> None:
    class Thumb(ImagePreset):
        """16×16 in [0, 1]."""

        name = "thumb-test"

        def __init__(self) -> None:
            super().__init__(size=16)

        def finish(self, batch):  # type: ignore[no-untyped-def]
            batch["image"] = batch["image"].float() / 255
            return batch

    register_preset(Thumb)
    batch = first(cxr.torch(None, preset="thumb-test", batch_size=2))
    assert batch["image"].shape == (2, 1, 16, 16) and float(batch["image"].max()) <= 1
    assert isinstance(get_preset("thumb-test"), Thumb)


def test_dataset_without_labels(tmp_path: Path) -> None:
    ds = meddata.load(
        write_cxr_dataset(tmp_path, n=6, size=SIZE, codec="zstd", labels=False, with_notes=False)
    )
    with pytest.warns(UserWarning, match="has no task labels.*fine for inference"):
        loader = ds.torch(None, preset="chexpert", size=32, batch_size=3)
    batch = first(loader)
    assert batch["labels"].shape == (3, 0) and batch["label_mask"].shape == (3, 0)
    result = quick_train(ds, steps=2, batch_size=3, size=32)
    assert result["steps"] == 2 and result["labels"] == 0 and result["samples_per_s"] > 0


def test_quick_train_on_labelled_data(cxr: meddata.Dataset) -> None:
    result = quick_train(cxr, steps=3, batch_size=4, size=32)
    assert result["split"] == "train" and result["steps"] == 3
    assert np.isfinite(result["loss_last"])


def test_cache_fills_then_serves_identical_tensors(cxr: meddata.Dataset, tmp_path: Path) -> None:
    opts = dict(preset="chexpert", size=32, batch_size=5, shuffle=False)
    plain = by_sample(cxr.torch(None, **opts))
    loader = cxr.torch(None, cache=tmp_path, num_workers=2, **opts)
    epoch1 = by_sample(loader)
    cache = loader.stream.cache
    assert cache is not None and cache.complete
    epoch2 = by_sample(loader)
    assert torch.equal(plain, epoch1) and torch.equal(epoch1, epoch2)


def by_sample(loader) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Images of an epoch in sample_id order (worker interleaving differs by worker count)."""
    pairs = [
        (i, img) for b in loader for i, img in zip(b["sample_id"].tolist(), b["image"], strict=True)
    ]
    return torch.stack([img for _, img in sorted(pairs, key=lambda p: p[0])])


def test_cache_invalidated_when_preset_or_dataset_changes(tmp_path: Path) -> None:
    out, cache_dir = tmp_path / "data", tmp_path / "cache"
    ds = meddata.load(write_cxr_dataset(out, n=8, size=SIZE, seed=1, with_notes=False))
    loader = ds.torch(None, preset="chexpert", size=32, batch_size=4, cache=cache_dir)
    list(loader)
    entry = loader.stream.cache
    assert entry is not None and entry.complete
    key1 = json.loads((entry.directory / "key.json").read_text())

    bigger = ds.torch(None, preset="chexpert", size=48, batch_size=4, cache=cache_dir)
    assert bigger.stream.cache is not None and bigger.stream.cache.directory != entry.directory
    assert not bigger.stream.cache.complete  # other options: another entry, built afresh
    list(bigger)
    assert entry.complete  # ... and the first configuration's entry is left intact

    changed = meddata.load(write_cxr_dataset(out, n=8, size=SIZE, seed=2, with_notes=False))
    again = changed.torch(None, preset="chexpert", size=48, batch_size=4, cache=cache_dir)
    assert again.stream.cache is not None and not again.stream.cache.complete
    key3 = json.loads((again.stream.cache.directory / "key.json").read_text())
    assert key3["dataset"] != key1["dataset"]
    fresh = torch.cat([b["image"] for b in again])
    nocache = torch.cat(
        [b["image"] for b in changed.torch(None, preset="chexpert", size=48, batch_size=4)]
    )
    assert torch.equal(fresh, nocache)


def test_cache_entries_that_can_never_be_served_are_removed(tmp_path: Path) -> None:
    out, cache_dir = tmp_path / "data", tmp_path / "cache"
    ds = meddata.load(write_cxr_dataset(out, n=8, size=SIZE, seed=1, with_notes=False))
    small = ds.torch(None, preset="chexpert", size=32, batch_size=4, cache=cache_dir)
    xrv = ds.torch(None, preset="xrv", size=32, batch_size=4, cache=cache_dir)
    list(small), list(xrv)
    assert small.stream.cache is not None and xrv.stream.cache is not None
    old_chexpert, old_xrv = small.stream.cache.directory, xrv.stream.cache.directory
    dead = cache_dir / f".{old_chexpert.name}.crashed"
    young = cache_dir / f".{old_chexpert.name}.building"
    dead.mkdir(), young.mkdir()
    os.utime(dead, (time.time() - 7200, time.time() - 7200))

    # Converted again (other content, same name and version): the old chexpert entry is dead.
    changed = meddata.load(write_cxr_dataset(out, n=8, size=SIZE, seed=2, with_notes=False))
    again = changed.torch(None, preset="chexpert", size=32, batch_size=4, cache=cache_dir)
    assert again.stream.cache is not None
    assert again.stream.cache.directory.exists()
    assert not old_chexpert.exists() and not dead.exists()
    assert young.exists()  # a build in progress elsewhere is left alone
    assert old_xrv.exists()  # another preset's entry is pruned only when that preset rebuilds


def test_gpu_decode_mode_leaves_monochrome1_jpegs_to_the_cpu(tmp_path: Path) -> None:
    """The GPU JPEG decoder only decodes; an inverted (MONOCHROME1) image must be decoded and
    inverted on the CPU so both paths give the same picture."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from meddata.torch.presets import arrow_column

    ds = meddata.load(write_cxr_dataset(tmp_path, n=4, size=SIZE, codec="jpeg", with_notes=False))
    shard = ds.manifest["tables"]["image"]["shards"][0]["path"]
    table = pq.read_table(Path(ds.root) / shard)
    payload = {c: arrow_column(table, c) for c in table.column_names}
    preset = get_preset("chexpert", size=32)
    preset.gpu_decode = True
    assert preset.prepare(payload, 0).ndim == 1  # MONOCHROME2: raw JPEG bytes for the GPU
    payload["photometric_interpretation"] = pa.array(["MONOCHROME1"] * table.num_rows)
    inverted = preset.prepare(payload, 0)
    preset.gpu_decode = False
    assert inverted.shape == (1, preset.resize, preset.resize)
    assert np.array_equal(inverted, preset.prepare(payload, 0))  # exactly the CPU path


def test_gpu_decode_mode_collates_batches_without_jpegs_on_the_cpu(tmp_path: Path) -> None:
    """A GPU-decode batch with nothing for the GPU decoder (PNG cells) is stacked in the worker
    like a CPU batch; a mixed one ships its CPU-decoded planes as writable tensors."""
    import warnings

    import pyarrow.parquet as pq

    from meddata.torch.presets import arrow_column

    ds = meddata.load(write_cxr_dataset(tmp_path, n=4, size=SIZE, codec="png", with_notes=False))
    shard = ds.manifest["tables"]["image"]["shards"][0]["path"]
    table = pq.read_table(Path(ds.root) / shard)
    payload = {c: arrow_column(table, c) for c in table.column_names}
    preset = get_preset("chexpert", size=32)
    items = [preset.prepare(payload, i) for i in range(table.num_rows)]
    cpu = preset.collate(items, None)
    preset.gpu_decode = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable NumPy array" warning either
        gpu = preset.collate(items, None)
        mixed = preset.collate([torch.zeros(10, dtype=torch.uint8), *items[1:]], None)
    assert set(gpu) == set(cpu) and torch.equal(gpu[preset.key], cpu[preset.key])
    planes = mixed["_jpeg"][3]
    assert planes[0].ndim == 1 and all(
        torch.equal(p, torch.tensor(x[0])) for p, x in zip(planes[1:], items[1:], strict=True)
    )


def test_cache_entries_of_two_copies_of_a_dataset_do_not_prune_each_other(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    a = meddata.load(write_cxr_dataset(tmp_path / "a", n=8, size=SIZE, seed=1, with_notes=False))
    b = meddata.load(write_cxr_dataset(tmp_path / "b", n=8, size=SIZE, seed=2, with_notes=False))
    first = a.torch(None, preset="chexpert", size=32, batch_size=4, cache=cache_dir)
    list(first)
    second = b.torch(None, preset="chexpert", size=32, batch_size=4, cache=cache_dir)
    list(second)  # same name and version, other content and location
    assert first.stream.cache is not None and second.stream.cache is not None
    assert first.stream.cache.directory != second.stream.cache.directory
    assert first.stream.cache.directory.exists() and first.stream.cache.complete
