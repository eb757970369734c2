"""The Ray Data engine publishes tables byte-identical to the local engine's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meddata.convert import convert

pytest.importorskip(
    "ray.data", reason="the ray extra (pip install 'meddata[ray]') is not installed"
)


def _hashes(path: str) -> dict[str, str]:
    manifest = json.loads((Path(path) / "meddata.json").read_text())
    return {s["path"]: s["sha256"] for t in manifest["tables"].values() for s in t["shards"]}


def test_ray_engine_matches_local(dicom_source: Path, tmp_path: Path) -> None:
    ray_run = convert(
        "dicom-folder",
        dicom_source,
        tmp_path / "ray",
        engine="ray",
        workers=2,
        show_progress=False,
        deid=False,
    )
    local = convert(
        "dicom-folder", dicom_source, tmp_path / "local", workers=1, show_progress=False, deid=False
    )
    assert ray_run.tables == local.tables
    assert _hashes(ray_run.path) == _hashes(local.path)
