"""`validate` names every kind of damage: flipped bytes, missing shards, row counts, dangling keys."""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meddata import storage
from meddata.validate import validate
from tests.conftest import manifest_json as _manifest
from tests.conftest import save_manifest_json as _save


def test_valid_dataset_passes(dataset: Path) -> None:
    report = validate(str(dataset))
    assert report.ok, report.problems
    assert report.checked["foreign_keys"] >= 4


@pytest.mark.parametrize("table", ["person", "image_occurrence", "image", "samples"])
def test_flipped_byte_in_any_shard_is_named(dataset: Path, table: str) -> None:
    shard = dataset / _manifest(dataset)["tables"][table]["shards"][0]["path"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    report = validate(str(dataset))
    assert any(f"table {table}" in p and "checksum" in p for p in report.problems), report.problems


def test_missing_shard_is_named(dataset: Path) -> None:
    rel = _manifest(dataset)["tables"]["image"]["shards"][0]["path"]
    (dataset / rel).unlink()
    report = validate(str(dataset))
    assert any(rel in p and "missing" in p for p in report.problems)


def test_row_count_mismatch_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    manifest["tables"]["samples"]["shards"][0]["rows"] += 1
    manifest["tables"]["samples"]["rows"] += 1
    _save(dataset, manifest)
    report = validate(str(dataset))
    assert any("samples" in p and "rows" in p for p in report.problems)


def _replace_person_shard(root: Path, edit: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite the person shard with ``edit`` and update the manifest so only keys are wrong."""
    manifest = _manifest(root)
    shard = manifest["tables"]["person"]["shards"][0]
    path = root / shard["path"]
    table = edit(pq.read_table(path))
    pq.write_table(table, path, compression="zstd")
    shard.update(
        rows=table.num_rows,
        bytes=path.stat().st_size,
        sha256=storage.sha256_file(*storage.open_fs(path)),
    )
    manifest["tables"]["person"]["rows"] = table.num_rows
    manifest["tables"]["person"]["bytes"] = sum(
        s["bytes"] for s in manifest["tables"]["person"]["shards"]
    )
    _save(root, manifest)


def test_dangling_foreign_key_is_named(dataset: Path) -> None:
    _replace_person_shard(dataset, lambda t: t.slice(1))  # a person that images still refer to
    report = validate(str(dataset))
    assert report.problems and all("dangling" in p for p in report.problems), report.problems
    assert any("image.person_id" in p or "table image:" in p for p in report.problems)


def test_duplicate_primary_key_is_named(dataset: Path) -> None:
    _replace_person_shard(dataset, lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    assert any("duplicate value" in p for p in validate(str(dataset)).problems)


def test_broken_manifest_is_reported(dataset: Path) -> None:
    manifest = _manifest(dataset)
    del manifest["tables"]["person"]["shards"][0]["sha256"]
    _save(dataset, manifest)
    assert any("manifest" in p and "sha256" in p for p in validate(str(dataset)).problems)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"format": "med\xdfata"}', "not valid UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"null", "not a JSON object"),
        (None, "cannot be read"),  # a folder where the file should be
    ],
)
def test_a_damaged_manifest_is_reported_not_a_crash(
    dataset: Path, content: bytes | None, expected: str
) -> None:
    import meddata
    from meddata.errors import SchemaError

    target = dataset / "meddata.json"
    target.unlink()
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    report = validate(str(dataset))
    assert not report.ok and any(expected in p for p in report.problems), report.problems
    with pytest.raises(SchemaError, match=expected):
        meddata.load(str(dataset))


def _with_split(dataset: Path) -> None:
    """Add a split set 'fair' made by meddata's splitter."""
    import meddata
    from meddata.publish import add_split
    from meddata.splits import make_splits

    ds = meddata.load(str(dataset))
    result = make_splits(ds.table("samples").collect(), seed=0)
    add_split(ds, "fair", result.assignments, strategy=result.strategy, report=result.report)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: pa.concat_tables(  # the first person again, in another split
                [t, t.slice(0, 1).set_column(1, "split", pa.array([_other_split(t)]))]
            ),
            "appear in more than one split (leakage)",
        ),
        (
            lambda t: pa.concat_tables([t, t.slice(0, 1)]),  # again in the same split
            "repeat a person in the same split (duplicates",
        ),
        (
            lambda t: t.set_column(
                0, "person_id", pa.array([10**12 + i for i in range(t.num_rows)])
            ),
            "are not in table person",
        ),
        (lambda t: t.rename_columns(["who", "split"]), "needs columns person_id and split"),
    ],
)
def test_split_file_content_is_checked_not_only_its_checksum(
    dataset: Path, edit: Callable[[pa.Table], pa.Table], expected: str
) -> None:
    _with_split(dataset)
    assert validate(str(dataset)).ok
    table = pq.read_table(dataset / _manifest(dataset)["splits"]["fair"]["path"])
    table = table.cast(pa.schema([("person_id", pa.int64()), ("split", pa.string())]))
    _replace_split_file(dataset, edit(table))  # only the content is wrong
    report = validate(str(dataset))
    assert any(expected in p for p in report.problems), report.problems


def _other_split(t: pa.Table) -> str:
    """A split the first person of ``t`` is not in."""
    return "train" if t.column("split")[0].as_py() != "train" else "test"


def _replace_split_file(dataset: Path, table: pa.Table, name: str = "fair") -> None:
    """Write ``table`` as split set ``name``'s file, named and checksummed as SPEC §8 says."""
    manifest = _manifest(dataset)
    old = dataset / manifest["splits"][name]["path"]
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    old.unlink()
    rel = f"splits/{name}-{digest[:12]}.parquet"
    (dataset / rel).write_bytes(data)
    manifest["splits"][name].update(path=rel, sha256=digest)
    _save(dataset, manifest)


def test_manifest_edits_cannot_hide_a_damaged_side_file(dataset: Path) -> None:
    manifest = _manifest(dataset)
    manifest["tables"]["person"]["bytes"] += 1
    _save(dataset, manifest)
    assert any("its shards hold" in p for p in validate(str(dataset)).problems)

    manifest["tables"]["person"]["bytes"] -= 1
    manifest["quarantine"] = {"count": 0, "path": "quarantine/report.jsonl", "sha256": None}
    _save(dataset, manifest)
    assert any("quarantine" in p and "sha256" in p for p in validate(str(dataset)).problems)


def test_files_the_manifest_does_not_list_are_named(dataset: Path) -> None:
    shard = dataset / _manifest(dataset)["tables"]["person"]["shards"][0]["path"]
    shutil.copy(shard, shard.with_name("part-00099.parquet"))  # a glob would read it twice
    problems = validate(str(dataset)).problems
    assert any("tables/person/part-00099.parquet is not in the manifest" in p for p in problems)
