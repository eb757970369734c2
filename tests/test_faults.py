"""A conversion killed at a random point publishes nothing, keeps older versions intact, and
`--resume` completes it with tables identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import meddata
from meddata.adapters.dicom_folder import DicomFolderAdapter
from meddata.convert import convert
from meddata.errors import IncompleteDatasetError
from meddata.validate import validate
from tests.conftest import interrupt_after_units


def _hashes(root: Path) -> dict[str, str]:
    manifest = json.loads((root / "meddata.json").read_text())
    return {s["path"]: s["sha256"] for t in manifest["tables"].values() for s in t["shards"]}


# Several work units from a small source (the default is 128 files per unit).
SMALL: dict = {"options": {"files_per_unit": "32"}, "deid": False}


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return DicomFolderAdapter.synthesize(tmp_path_factory.mktemp("big") / "src", n=30, seed=3)


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_then_resume(big_source: Path, tmp_path: Path, attempt: int) -> None:
    out = tmp_path / "out"
    reference = Path(
        convert(
            "dicom-folder", big_source, tmp_path / "ref", workers=1, show_progress=False, **SMALL
        ).path
    )
    convert("dicom-folder", big_source, out, version="1.0", workers=1, show_progress=False, **SMALL)
    units = len(list(DicomFolderAdapter(big_source, SMALL["options"]).discover()))
    kill_after = random.Random(attempt).randint(1, units - 1)
    cmd = [
        sys.executable,
        "-m",
        "meddata.cli",
        "convert",
        "dicom-folder",
        str(big_source),
        "-o",
        str(out),
        "--version",
        "2.0",
        "--workers",
        "1",
        "--no-deid",
        "-O",
        "files_per_unit=32",
    ]
    journal = out / "dicom-folder" / "2.0" / "_staging" / "journal.jsonl"
    interrupt_after_units(cmd, journal, kill_after, signal.SIGKILL)

    new = out / "dicom-folder" / "2.0"
    assert not (new / "meddata.json").exists()
    assert (
        meddata.load(str(out / "dicom-folder")).version == "1.0"
    )  # the previous version still serves
    assert validate(str(out / "dicom-folder" / "1.0")).ok
    with pytest.raises(IncompleteDatasetError, match="--resume"):
        meddata.load(str(new))
    with pytest.raises(IncompleteDatasetError, match="--resume"):
        convert(
            "dicom-folder",
            big_source,
            out,
            version="2.0",
            workers=1,
            show_progress=False,
            deid=False,
        )

    summary = convert(
        "dicom-folder",
        big_source,
        out,
        version="2.0",
        workers=2,
        resume=True,
        show_progress=False,
        **SMALL,
    )
    assert summary.units_resumed >= 1
    assert _hashes(new) == _hashes(reference)
    assert validate(str(new)).ok


def test_resume_refuses_a_different_source(
    big_source: Path, dicom_source: Path, tmp_path: Path
) -> None:
    staged = tmp_path / "dicom-folder" / "1.0" / "_staging"
    staged.mkdir(parents=True)
    (staged / "run.json").write_text(json.dumps({"adapter": "other"}))
    with pytest.raises(IncompleteDatasetError, match="same command line"):
        convert(
            "dicom-folder",
            dicom_source,
            tmp_path,
            resume=True,
            workers=1,
            show_progress=False,
            deid=False,
        )


def test_resume_redoes_units_whose_staged_files_are_torn(big_source: Path, tmp_path: Path) -> None:
    """The journal is not fsynced per unit, so after a power cut a journal line can outlive its
    staged file's data. Resume re-checks every staged file and redoes the torn units."""
    reference = Path(
        convert(
            "dicom-folder", big_source, tmp_path / "ref", workers=1, show_progress=False, **SMALL
        ).path
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "meddata.cli", "convert", "dicom-folder", str(big_source)]
    cmd += ["-o", str(out), "--workers", "1", "--no-deid", "-O", "files_per_unit=32"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = out / "dicom-folder" / "1.0" / "_staging"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        journal = staging / "journal.jsonl"
        if journal.exists() and journal.read_text().count("\n") >= 3:
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.fail("the conversion finished before it could be killed; make the source larger")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    shard = sorted((staging / "shards").glob("*.image.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # torn payload shard
    small = sorted((staging / "units").glob("*.person.arrow"))[1]
    small.write_bytes(small.read_bytes()[:10])  # torn small-table file

    summary = convert(
        "dicom-folder", big_source, out, workers=1, resume=True, show_progress=False, **SMALL
    )
    assert 1 <= summary.units_resumed <= summary.units - 2
    assert _hashes(out / "dicom-folder" / "1.0") == _hashes(reference)
    assert validate(str(out / "dicom-folder" / "1.0")).ok


def _staged_person_unit(root: Path) -> tuple[Path, Path]:
    """One staged unit of 20,000 person rows; returns (its IPC file, the journal)."""
    import fsspec

    from meddata.writer import JournalEntry, Staging, rows_to_table, stage_unit, unit_file

    fs = fsspec.filesystem("file")
    staging = Staging.open(fs, str(root), {"run": 1}, resume=False, overwrite=False)
    rows = [
        {"person_id": i, "gender_concept_id": 8507, "year_of_birth": 1950} for i in range(20000)
    ]
    counts, shards, files = stage_unit(
        fs, staging.path, 0, {"person": rows_to_table("person", rows)}
    )
    staging.record(
        JournalEntry(seq=0, key="u0", fingerprint="f", rows=counts, shards=shards, files=files)
    )
    return Path(unit_file(staging.path, 0, "person")), Path(staging._journal_path)


def _resumed(root: Path) -> bool:
    import fsspec

    from meddata.writer import Staging

    fs = fsspec.filesystem("file")
    return Staging.open(fs, str(root), {"run": 1}, resume=True, overwrite=False).done(0, "f")


@pytest.mark.parametrize("damage", ["footer", "body", "tail", "empty"])
def test_resume_redoes_small_table_files_damaged_anywhere(tmp_path: Path, damage: str) -> None:
    """A power cut can garble an IPC file's footer (pyarrow raises OSError) or zero its body
    while the footer still parses: both must be redone, never trusted or fatal."""
    path, _ = _staged_person_unit(tmp_path)
    assert _resumed(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "footer":
        data[-200:-20] = b"\xff" * 180
    elif damage == "body":
        data[4096 : len(data) - 2000] = bytes(len(data) - 2000 - 4096)
    elif damage == "tail":
        data = data[: len(data) // 2]
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    assert not _resumed(tmp_path)


def test_a_torn_journal_tail_is_dropped_and_never_glues_to_the_next_line(tmp_path: Path) -> None:
    import fsspec

    from meddata.writer import JournalEntry, Staging

    _, journal = _staged_person_unit(tmp_path)
    good = journal.read_bytes()
    journal.write_bytes(good + b'{"seq": 1, "key": "u1", "fing')  # a line cut by a power cut
    assert _resumed(tmp_path)
    fs = fsspec.filesystem("file")
    staging = Staging.open(fs, str(tmp_path), {"run": 1}, resume=True, overwrite=False)
    staging.record(JournalEntry(seq=1, key="u1", fingerprint="g", rows={}))
    again = Staging.open(fs, str(tmp_path), {"run": 1}, resume=True, overwrite=False)
    assert again.done(0, "f") and again.done(1, "g")

    journal.write_bytes(journal.read_bytes() + b"\xff\xfe\x80 not utf-8")
    assert _resumed(tmp_path)  # junk bytes are skipped, not fatal


def _cli_convert(src: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "meddata.cli", "convert", "dicom-folder", str(src), "-o", str(out),
        "-O", "files_per_unit=8", *extra,
    ]  # fmt: skip


def test_an_interrupted_overwrite_is_finished_by_overwrite_and_resume(
    big_source: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    convert("dicom-folder", big_source, out, workers=1, show_progress=False, **SMALL)
    journal = out / "dicom-folder" / "1.0" / "_staging" / "journal.jsonl"
    cmd = _cli_convert(big_source, out, "--no-deid", "--workers", "1", "--overwrite")
    interrupt_after_units(cmd, journal, 2, signal.SIGINT)
    assert validate(str(out / "dicom-folder" / "1.0")).ok  # the old version still serves
    done = subprocess.run([*cmd, "--resume", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["units_resumed"] >= 2
    assert validate(str(out / "dicom-folder" / "1.0")).ok


def test_a_run_started_in_python_resumes_from_the_cli(big_source: Path, tmp_path: Path) -> None:
    key = tmp_path / "site.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    out = tmp_path / "out"
    script = (
        "import sys; from meddata.convert import convert; "
        f"convert('dicom-folder', {str(big_source)!r}, {str(out)!r}, workers=1, "
        f"show_progress=False, deid_key={str(key)!r}, options={{'files_per_unit': '8'}})"
    )
    journal = out / "dicom-folder" / "1.0" / "_staging" / "journal.jsonl"
    interrupt_after_units([sys.executable, "-c", script], journal, 2, signal.SIGKILL)
    cmd = _cli_convert(big_source, out, "--deid-key-file", str(key), "--resume", "--json")
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["units_resumed"] >= 2


def test_workers_do_not_outlive_a_killed_conversion(big_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out-orphans"
    journal = out / "dicom-folder" / "1.0" / "_staging" / "journal.jsonl"
    cmd = _cli_convert(big_source, out, "--no-deid", "--workers", "2", "-O", "files_per_unit=2")
    interrupt_after_units(cmd, journal, 1, signal.SIGKILL)

    def survivors() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(out).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 15
    while survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert survivors() == []
