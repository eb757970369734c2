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


RAY_CRASH = """
import json, sys
import meddata.registry as registry
registry.BUILTIN["crashing"] = "tests._crashing_adapter:CrashingAdapter"
from meddata.convert import convert
if __name__ == "__main__":
    s = convert("crashing", sys.argv[1], sys.argv[2], engine="ray", workers=2,
                show_progress=False, deid=False)
    print(json.dumps({"tables": s.tables, "quarantined": s.quarantined, "path": s.path}))
"""


def test_a_unit_that_kills_its_ray_worker_is_quarantined_not_retried_for_ever(
    tmp_path: Path,
) -> None:
    """Run in a fresh interpreter: Ray's workers must import the test adapter from the repo."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    script = tmp_path / "run.py"
    script.write_text(RAY_CRASH)
    (tmp_path / "src").mkdir()
    env = {**os.environ, "PYTHONPATH": str(repo), "RAY_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "src"), str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "constructor arguments in the object store" not in done.stderr  # Ray's C++ log line
    assert "ray_remote_args" not in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["tables"] == {"person": 2} and summary["quarantined"] == 1
    report = (Path(summary["path"]) / "quarantine" / "report.jsonl").read_text()
    assert "worker process died" in report and '"item": "boom"' in report
