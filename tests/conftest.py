"""Shared fixtures: synthetic sources, real-file locations, and CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def pydicom_test_files() -> Path:
    """The real DICOM files shipped in the pydicom wheel."""
    return Path(str(resources.files("pydicom") / "data" / "test_files"))


def nibabel_dicoms() -> Path:
    """The Siemens/Philips DICOMs shipped in the nibabel wheel."""
    return Path(str(resources.files("nibabel") / "nicom" / "tests" / "data"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `meddata` command as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "meddata.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def interrupt_after_units(
    cmd: list[str], journal: Path, units: int, sig: int, *, capture: bool = False
) -> tuple[int, str]:
    """Run ``cmd`` (a conversion) and send it ``sig`` once ``units`` work units are in its
    journal; returns its exit code and (with ``capture``) its stderr."""
    import os
    import time

    err = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= units:
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.fail(
            "the conversion finished before it could be interrupted; make the source larger"
        )
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr or ""


@pytest.fixture(scope="session")
def dicom_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthesized DICOM folder (6 patients) shared by read-only tests."""
    from meddata.adapters.dicom_folder import DicomFolderAdapter

    return DicomFolderAdapter.synthesize(tmp_path_factory.mktemp("src") / "dicoms", n=6, seed=1)


@pytest.fixture
def dataset(dicom_dataset: Path, tmp_path: Path) -> Path:
    """A writable copy of ``dicom_dataset`` at ``tmp_path/dicom-folder/1.0``."""
    import shutil

    copy = tmp_path / "dicom-folder" / "1.0"
    shutil.copytree(dicom_dataset, copy)
    return copy


def splits_at_once(path: str, names: list[str]) -> None:
    """Add one manual split set per name (every person in ``train``) from as many threads at
    once, each with its own loaded Dataset; fails with what any thread raised."""
    import threading

    import polars as pl

    import meddata
    from meddata.publish import add_split

    loaded = [meddata.load(path) for _ in names]
    assignments = [
        ds.table("person")
        .select("person_id")
        .collect()
        .with_columns(pl.lit("train").alias("split"))
        for ds in loaded
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(len(names))

    def work(i: int) -> None:
        start.wait()
        try:
            add_split(loaded[i], names[i], assignments[i], strategy={"kind": "manual"}, report={})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def manifest_json(root: Path) -> dict[str, Any]:
    """The manifest of the dataset at ``root`` as parsed JSON (to edit it in a test)."""
    import json

    return dict(json.loads((root / "meddata.json").read_text()))


def save_manifest_json(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` over the dataset's manifest as is (no checks: tests break it)."""
    import json

    (root / "meddata.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="session")
def dicom_dataset(dicom_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That source converted once (read-only for tests)."""
    from meddata.convert import convert

    out = tmp_path_factory.mktemp("out")
    return Path(
        convert("dicom-folder", dicom_source, out, workers=1, show_progress=False, deid=False).path
    )
