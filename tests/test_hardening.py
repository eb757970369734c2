"""Regression tests for failure paths found in review: resume safety, write errors, strict mode,
in-process stores, safe overwrite, early usage errors, and hostile manifests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import meddata
from meddata import tensor
from meddata.convert import convert
from meddata.errors import (
    IncompleteDatasetError,
    SchemaError,
    SourceError,
    StrictModeError,
    UsageError,
)
from meddata.validate import validate
from tests.conftest import run_cli


def _broken_source(dicom_source: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(dicom_source, src)
    (src / "zz-notes.txt").write_text("not DICOM")  # lands in the last unit
    return src


def test_resume_refuses_another_deid_key(dicom_source: Path, tmp_path: Path) -> None:
    src = _broken_source(dicom_source, tmp_path)
    with pytest.raises(StrictModeError):
        convert(
            "dicom-folder",
            src,
            tmp_path / "o",
            workers=1,
            strict=True,
            deid_key=b"a" * 32,
            show_progress=False,
        )
    with pytest.raises(IncompleteDatasetError, match="source, de-identification key"):
        convert(
            "dicom-folder",
            src,
            tmp_path / "o",
            workers=1,
            resume=True,
            deid_key=b"b" * 32,
            show_progress=False,
        )


def test_strict_still_fails_on_resume(dicom_source: Path, tmp_path: Path) -> None:
    src = _broken_source(dicom_source, tmp_path)
    for _ in range(2):
        with pytest.raises(StrictModeError, match="zz-notes.txt"):
            convert(
                "dicom-folder",
                src,
                tmp_path / "o",
                workers=1,
                strict=True,
                resume=True,
                show_progress=False,
                deid=False,
            )


def test_write_errors_stop_the_run_instead_of_quarantining(
    dicom_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meddata.writer import UnitStager

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(UnitStager, "add", disk_full)
    with pytest.raises(OSError, match="No space left"):
        convert(
            "dicom-folder", dicom_source, tmp_path / "o", workers=1, show_progress=False, deid=False
        )
    assert not (tmp_path / "o" / "dicom-folder" / "1.0" / "meddata.json").exists()


def test_memory_store_works_with_several_workers(dicom_source: Path) -> None:
    summary = convert(
        "dicom-folder",
        dicom_source,
        "memory://hardening/out",
        workers=2,
        show_progress=False,
        deid=False,
    )
    assert meddata.load(summary.path).table("image").collect().height == summary.tables["image"]


def test_failed_overwrite_keeps_the_published_version(dicom_source: Path, tmp_path: Path) -> None:
    first = convert(
        "dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False
    )
    src = _broken_source(dicom_source, tmp_path)
    with pytest.raises(StrictModeError):
        convert(
            "dicom-folder",
            src,
            tmp_path,
            workers=1,
            strict=True,
            overwrite=True,
            show_progress=False,
            deid=False,
        )
    assert validate(first.path).ok  # still published and whole


def test_split_overwrite_never_rewrites_a_published_file(
    dicom_dataset: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ds" / "1.0"
    shutil.copytree(dicom_dataset, root)
    assert run_cli("split", str(root), "--name", "fair", "--seed", "1").returncode == 0
    first = meddata.load(str(root)).splits["fair"]["path"]
    assert (
        run_cli("split", str(root), "--name", "fair", "--seed", "2", "--overwrite").returncode == 0
    )
    second = meddata.load(str(root)).splits["fair"]["path"]
    assert first != second and not (root / first).exists() and (root / second).exists()
    assert validate(str(root)).ok


def test_bad_name_is_a_usage_error_before_any_work(dicom_source: Path, tmp_path: Path) -> None:
    for name in ("My_Data", "../escape"):
        with pytest.raises(UsageError, match="cannot name a dataset"):
            convert(
                "dicom-folder", dicom_source, tmp_path, name=name, show_progress=False, deid=False
            )
    assert not any(tmp_path.iterdir())
    out = run_cli(
        "convert",
        "dicom-folder",
        str(dicom_source),
        "-o",
        str(tmp_path),
        "--name",
        "Bad Name",
        "--no-deid",
    )
    assert out.returncode == 2


def test_nothing_is_published_when_every_input_is_quarantined(tmp_path: Path) -> None:
    src = tmp_path / "junk"
    src.mkdir()
    (src / "a.txt").write_text("x")
    (src / "b.txt").write_text("y")
    with pytest.raises(SourceError, match="Every input"):
        convert("dicom-folder", src, tmp_path / "o", workers=1, show_progress=False, deid=False)
    assert not (tmp_path / "o" / "dicom-folder" / "1.0" / "meddata.json").exists()
    # nothing worth resuming was kept: the same call fails the same way, not as "unfinished"
    with pytest.raises(SourceError, match="Every input"):
        convert("dicom-folder", src, tmp_path / "o", workers=1, show_progress=False, deid=False)


def test_a_malformed_manifest_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x" / "1.0").mkdir(parents=True)
    (tmp_path / "x" / "1.0" / "meddata.json").write_text(
        '{"format": "meddata", "format_version": "1.0", "tables": 7}'
    )
    out = run_cli("info", str(tmp_path / "x" / "1.0"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "meddata.json is invalid" in out.stderr and "meddata validate" in out.stderr


def test_manifest_paths_outside_the_dataset_are_refused(
    dicom_dataset: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ds" / "1.0"
    shutil.copytree(dicom_dataset, root)
    manifest = json.loads((root / "meddata.json").read_text())
    manifest["tables"]["person"]["shards"][0]["path"] = "../../../etc/passwd"
    (root / "meddata.json").write_text(json.dumps(manifest))
    with pytest.raises(SchemaError, match="outside the dataset"):
        meddata.load(str(root))
    assert any("outside the dataset" in p for p in validate(str(root)).problems)


def test_quickstart_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    out = run_cli("quickstart", "--dir", str(tmp_path), "--n", "3")
    assert out.returncode == 2 and (tmp_path / "thesis.tex").exists()
    assert str(tmp_path) in out.stderr and "--n" not in out.stderr  # refused for the folder


def test_zstd_cells_cannot_claim_more_memory_than_their_shape() -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor().compress(b"\0" * 10_000_000)
    with pytest.raises(tensor.TensorDecodeError):
        tensor.decode({"data": bomb, "codec": "zstd", "dtype": "uint8", "shape": [10]})
    ok = tensor.encode(np.arange(10, dtype=np.uint8), "zstd")
    assert tensor.decode(ok).tolist() == list(range(10))


def test_a_unit_that_kills_its_worker_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import meddata.registry

    monkeypatch.setitem(
        meddata.registry.BUILTIN, "crashing", "tests._crashing_adapter:CrashingAdapter"
    )
    (tmp_path / "src").mkdir()
    summary = convert(
        "crashing", tmp_path / "src", tmp_path / "out", workers=2, show_progress=False, deid=False
    )
    assert summary.tables == {"person": 2} and summary.quarantined == 1
    report = (Path(summary.path) / "quarantine" / "report.jsonl").read_text()
    assert "worker process died" in report and '"item": "boom"' in report


def test_a_second_conversion_of_the_same_version_is_refused(
    dicom_source: Path, tmp_path: Path
) -> None:
    import os
    import socket

    lock = tmp_path / "dicom-folder" / "1.0.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{socket.gethostname()} {os.getpid()}")  # a live holder
    with pytest.raises(IncompleteDatasetError, match="Another meddata process"):
        convert("dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False)
    lock.write_text(f"{socket.gethostname()} 999999999")  # its process is gone: taken over
    summary = convert(
        "dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False
    )
    assert validate(summary.path).ok and not lock.exists()


def test_a_lock_held_by_a_killed_but_unreaped_process_is_taken_over(
    dicom_source: Path, tmp_path: Path
) -> None:
    """SIGKILL leaves a zombie until its parent reaps it; it answers signal 0 like a live
    process, but it can no longer be converting."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # not reaped: wait until the kernel marks it Z
            if Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                break
            time.sleep(0.01)
        else:
            pytest.skip("the killed child did not become a zombie here")
        lock = tmp_path / "dicom-folder" / "1.0.lock"
        lock.parent.mkdir(parents=True)
        lock.write_text(f"{socket.gethostname()} {child.pid}")
        summary = convert(
            "dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False
        )
        assert validate(summary.path).ok and not lock.exists()
    finally:
        child.wait()


def test_the_version_lock_is_held_by_flock_and_freed_when_its_holder_is_killed(
    tmp_path: Path,
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from meddata import storage

    lock = tmp_path / "1.0.lock"
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time; from meddata import storage\n"
            "with storage.exclusive(storage.open_fs(sys.argv[1])[0], sys.argv[1]):\n"
            "    print('held', flush=True); time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        fs = storage.open_fs(tmp_path)[0]
        with pytest.raises(IncompleteDatasetError, match=f"pid {holder.pid}"):
            with storage.exclusive(fs, str(lock)):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        time.sleep(0.05)
        with storage.exclusive(fs, str(lock)):  # the kernel let go of the dead holder's lock
            assert lock.read_text().split()[1] == str(os.getpid())
        assert not lock.exists()
    finally:
        holder.kill()
        holder.wait()
