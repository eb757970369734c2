"""Convert to, read from and validate on an S3-compatible object store (a local moto server)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import meddata
from meddata.convert import convert
from meddata.validate import validate
from tests.conftest import run_cli, splits_at_once

moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the S3 tests")
s3fs = pytest.importorskip("s3fs", reason="s3fs is needed for the S3 tests")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "FSSPEC_S3_ENDPOINT_URL": endpoint,
    }.items():
        mp.setenv(key, value)
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="test", secret="test")
    fs.mkdir("meddata-test")
    try:
        yield endpoint
    finally:
        mp.undo()
        server.stop()


def test_convert_load_validate_on_s3(s3: str, dicom_source: Path) -> None:
    summary = convert(
        "dicom-folder",
        dicom_source,
        "s3://meddata-test/datasets",
        workers=2,
        show_progress=False,
        deid=False,
    )
    assert summary.path == "s3://meddata-test/datasets/dicom-folder/1.0"
    ds = meddata.load("s3://meddata-test/datasets/dicom-folder")
    assert ds.table("samples").collect().height == summary.tables["samples"]
    assert ds.arrow("image").count_rows() == summary.tables["image"]
    report = validate(summary.path)
    assert report.ok, report.problems
    fs = s3fs.S3FileSystem(endpoint_url=s3, key="test", secret="test")
    assert not fs.exists("meddata-test/datasets/dicom-folder/1.0/_staging")


def test_load_takes_storage_options_instead_of_the_environment(
    s3: str, dicom_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = convert(
        "dicom-folder", dicom_source, "s3://meddata-test/opts", workers=1, show_progress=False,
        deid=False,
    )  # fmt: skip
    for name in ("AWS_ENDPOINT_URL", "FSSPEC_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    options = {"endpoint_url": s3, "key": "test", "secret": "test"}
    ds = meddata.load(summary.path, storage_options=options)
    assert ds.table("person").collect().height == summary.tables["person"]
    assert ds.fs.storage_options["endpoint_url"] == s3


def _s3fs(endpoint: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        endpoint_url=endpoint, key="test", secret="test", skip_instance_cache=True
    )


def test_concurrent_splits_on_s3_all_land(s3: str, dicom_source: Path) -> None:
    """The version's lock is a conditionally created object, so amendments made at once
    (each a read-modify-write of the manifest) all land, as they do on a local disk."""

    summary = convert(
        "dicom-folder", dicom_source, "s3://meddata-test/locks", workers=1, show_progress=False,
        deid=False,
    )  # fmt: skip
    names = [f"s{i}" for i in range(3)]
    splits_at_once(summary.path, names)
    assert set(names) <= set(meddata.load(summary.path).splits)
    assert validate(summary.path).ok
    assert not _s3fs(s3).exists("meddata-test/locks/dicom-folder/1.0.lock")


def test_a_lock_left_on_s3_by_a_killed_run_is_named_with_what_to_do(
    s3: str, dicom_source: Path
) -> None:
    from meddata.errors import IncompleteDatasetError

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    lock = "meddata-test/killed/dicom-folder/1.0.lock"
    fs = _s3fs(s3)
    fs.pipe_file(lock, f"{socket.gethostname()} {dead}".encode())
    with pytest.raises(IncompleteDatasetError) as refused:
        convert(
            "dicom-folder", dicom_source, "s3://meddata-test/killed", workers=1,
            show_progress=False, deid=False,
        )  # fmt: skip
    assert f"pid {dead}, which is no longer running" in refused.value.message
    assert f"Remove the lock object {lock}" in (refused.value.hint or "")
    fs.rm_file(lock)
    summary = convert(
        "dicom-folder", dicom_source, "s3://meddata-test/killed", workers=1, show_progress=False,
        deid=False,
    )  # fmt: skip
    assert validate(summary.path).ok and not fs.exists(lock)


def _cli_without_a_store(args: list[str], credentials: bool) -> subprocess.CompletedProcess[str]:
    """``meddata ARGS`` with S3 pointed at a closed local port, with or without credentials
    (no credential files, no instance metadata: nothing leaves this machine)."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FSSPEC_S3"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        FSSPEC_S3_ENDPOINT_URL=endpoint,
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",  # one refused connection is enough to know
    )
    if credentials:
        env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    return subprocess.run(
        [sys.executable, "-m", "meddata.cli", *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        (False, "error: No credentials for the object store were found."),
        (True, "error: The object store could not be reached."),
    ],
)
def test_an_unusable_object_store_is_one_clear_error(
    tmp_path: Path, credentials: bool, expected: str
) -> None:
    assert run_cli("sample", "dicom-folder", str(tmp_path / "src"), "--n", "2").returncode == 0
    command = ["convert", "dicom-folder", str(tmp_path / "src"), "-o", "s3://bucket/x"]
    out = _cli_without_a_store([*command, "--no-deid"], credentials)
    assert out.returncode == 1 and expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "→" in out.stderr
    # Without a key, de-identification is refused before the store is reached at all.
    keyless = _cli_without_a_store(command, credentials)
    assert keyless.returncode == 2
    assert "A de-identification key is needed for a remote output." in keyless.stderr


def test_a_missing_bucket_is_named_as_such(s3: str, tmp_path: Path) -> None:
    assert run_cli("sample", "dicom-folder", str(tmp_path / "src"), "--n", "2").returncode == 0
    out = run_cli(
        "convert", "dicom-folder", str(tmp_path / "src"), "-o", "s3://no-such-bucket/x",
        "--no-deid",
    )  # fmt: skip
    assert out.returncode == 1
    assert "error: The bucket named in the URL does not exist." in out.stderr, out.stderr


def test_the_path_map_on_s3_is_written_once_however_many_units_quarantine(
    s3: str, dicom_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object store cannot append: the map used to be put whole again for every unit with
    a quarantined input (growing with the square of the run). Each unit's ids are now a part
    of their own, merged once; a run stopped by --strict leaves the map whole too."""
    import shutil

    from meddata import storage
    from meddata.errors import StrictModeError

    src = tmp_path / "src"
    shutil.copytree(dicom_source, src)
    for i in range(4):
        (src / f"Doe_John_{i}.txt").write_text("not DICOM")
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    out = "s3://meddata-test/pathmap"
    mapping = "meddata-test/pathmap/dicom-folder-1.0.quarantine-paths.jsonl"
    writes: list[str] = []
    atomic = storage.atomic_write_bytes

    def counted(fs: Any, path: str, data: bytes, **kw: Any) -> None:
        writes.append(path)
        atomic(fs, path, data, **kw)

    monkeypatch.setattr(storage, "atomic_write_bytes", counted)
    options = {"files_per_unit": "1"}
    summary = convert(
        "dicom-folder", src, out, options=options, workers=1, show_progress=False, deid_key=key
    )
    assert summary.quarantined == 4
    assert writes.count(mapping) == 1
    fs = _s3fs(s3)
    rows = [json.loads(line) for line in fs.cat_file(mapping).decode().splitlines()]
    assert sorted(r["path"] for r in rows) == [f"Doe_John_{i}.txt" for i in range(4)]
    assert not fs.exists(mapping + ".parts")
    with pytest.raises(StrictModeError) as stopped:
        convert(
            "dicom-folder", src, out, options=options, workers=1, show_progress=False,
            deid_key=key, version="2.0", strict=True,
        )  # fmt: skip
    strict_map = mapping.replace("1.0", "2.0")
    assert strict_map in (stopped.value.hint or "")
    assert "Doe_John_" in fs.cat_file(strict_map).decode()
    assert not fs.exists(strict_map + ".parts")
