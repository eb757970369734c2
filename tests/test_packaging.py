"""A wheel built from the repo contains the core, schemas, adapters, datasheets and CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_every_part(tmp_path: Path) -> None:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is needed to build the wheel offline")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("meddata-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "meddata/__init__.py",
        "meddata/schemas/SPEC.md",
        "meddata/schemas/manifest.schema.json",
        "meddata/schemas/tables/person.json",
        "meddata/schemas/tables/samples.json",
        "meddata/adapters/dicom_folder.py",
        "meddata/cli/main.py",
        "meddata/datasheets/__init__.py",
        "meddata/datasheets/chexpert-plus.yaml",
        "meddata/schemas/healthsheet.schema.json",
        "meddata/data/dicom_basic_profile.json",
        "meddata/deid/__init__.py",
        "meddata/datasheet/__init__.py",
        "meddata/torch/__init__.py",
        "meddata/adapters/chexpert_plus.py",
        "meddata/adapters/mimic_cxr_jpg.py",
    ):
        assert required in names, required
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "meddata = meddata.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
