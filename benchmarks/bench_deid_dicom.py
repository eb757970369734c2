"""DICOM de-identification: meddata vs dicognito, deid (pydicom/deid) and dicom-anonymizer.

Input: every file of the pydicom wheel's test files and nibabel's DICOMs that pydicom reads
(gzip files decompressed). Each tool de-identifies every file (read, de-identify, write) in one
process pinned to one core; we report files/s and the attributes left identifying in its output:
an element whose Basic-profile action is X, Z, D or U that still holds its original non-empty
value (values that already were dummies are not counted), plus every private element left.
Files a tool failed on are counted separately.

Peers run in their own virtual environment (see bench_deid_text.py for the install line):

    .venv/bin/python benchmarks/bench_deid_dicom.py
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_PYTHON = HERE / ".venv-deid" / "bin" / "python"


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def _run_files(files: list[Path], out_dir: Path, anonymise: Any) -> dict[str, Any]:
    import pydicom

    failed = 0
    started = time.perf_counter()
    for path in files:
        try:
            ds = pydicom.dcmread(path)
            anonymise(ds)
            ds.save_as(out_dir / path.name, enforce_file_format=False)
        except Exception:
            failed += 1
    return {"seconds": time.perf_counter() - started, "failed": failed}


def peer_main(peer: str, in_dir: Path, out_dir: Path, result: Path) -> None:
    """De-identify every file of ``in_dir`` with one peer (inside the peer venv)."""
    _pin_one_core()
    files = sorted(in_dir.iterdir())
    if peer == "dicognito":
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer()
        res = _run_files(files, out_dir, anonymizer.anonymize)
    elif peer == "dicom-anonymizer":
        from dicomanonymizer.simpledicomanonymizer import anonymize_dataset

        res = _run_files(files, out_dir, lambda ds: anonymize_dataset(ds, delete_private_tags=True))
    elif peer == "deid":
        import logging

        from deid.dicom import replace_identifiers
        from deid.logger import bot

        bot.level = 0
        logging.disable(logging.CRITICAL)
        failed = 0
        started = time.perf_counter()
        for path in files:
            try:
                replace_identifiers(
                    dicom_files=[str(path)],
                    save=True,
                    output_folder=str(out_dir),
                    overwrite=True,
                    remove_private=True,
                )
            except Exception:
                failed += 1
        res = {"seconds": time.perf_counter() - started, "failed": failed}
    else:
        raise SystemExit(f"unknown peer {peer}")
    result.write_text(json.dumps(res))


def _inputs(dst: Path) -> list[Path]:
    import pydicom

    pyd = Path(str(resources.files("pydicom") / "data" / "test_files"))
    nib = Path(str(resources.files("nibabel") / "nicom" / "tests" / "data"))
    sources = sorted(p for p in pyd.rglob("*") if p.is_file())
    sources += sorted(p for p in nib.iterdir() if p.name.endswith((".dcm", ".dcm.gz")))
    out = []
    for i, src in enumerate(sources):
        data = src.read_bytes()
        if src.name.endswith(".gz"):
            data = gzip.decompress(data)
        target = dst / f"{i:04d}.dcm"
        target.write_bytes(data)
        try:
            ds = pydicom.dcmread(target)
            list(ds.iterall())
            ds.save_as(Path(str(target) + ".check"), enforce_file_format=False)
            Path(str(target) + ".check").unlink()
        except Exception:
            target.unlink()
            continue
        out.append(target)
    return out


def _left_identifying(original: Path, produced: Path) -> int:
    import pydicom

    from meddata.deid import DeidOptions
    from meddata.deid.audit import kept_identifiers, private_tags_left

    after = pydicom.dcmread(produced, force=True)
    basic_only = DeidOptions(clean_descriptors=False)
    return private_tags_left(after) + len(
        kept_identifiers(pydicom.dcmread(original), after, basic_only)
    )


def main() -> None:
    """Run every tool and print a Markdown table."""
    sys.path.insert(0, str(HERE.parent))
    from meddata.deid import Deidentifier, DeidOptions

    _pin_one_core()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        in_dir = Path(tmp, "in")
        in_dir.mkdir()
        files = _inputs(in_dir)
        tools = ["meddata", "meddata (default options)", "dicognito", "deid", "dicom-anonymizer"]
        for tool in tools:
            out_dir = Path(tmp, tool.replace(" ", "_").replace("(", "").replace(")", ""))
            out_dir.mkdir()
            if tool.startswith("meddata"):
                # Peers never quarantine burned-in images: neither does meddata here.
                clean = "default" in tool
                opts = DeidOptions(clean_descriptors=clean, allow_burned_in=True)
                engine = Deidentifier(b"benchmark-key-0123456789abcdef!!", opts)
                res = _run_files(files, out_dir, engine.dicom)
            else:
                result = Path(tmp, f"{out_dir.name}.json")
                subprocess.run(
                    [
                        str(PEER_PYTHON),
                        __file__,
                        "--peer",
                        tool,
                        str(in_dir),
                        str(out_dir),
                        str(result),
                    ],
                    check=False,
                    timeout=3600,
                    capture_output=True,
                )
                res = (
                    json.loads(result.read_text())
                    if result.exists()
                    else {"seconds": 0, "failed": len(files)}
                )
            left = 0
            missing = 0
            files_with_left = 0
            for src in files:
                produced = out_dir / src.name
                if not produced.exists():
                    missing += 1
                    continue
                n = _left_identifying(src, produced)
                left += n
                files_with_left += n > 0
            done = len(files) - missing
            rows.append(
                (
                    tool,
                    done / res["seconds"] if res["seconds"] else 0.0,
                    left,
                    files_with_left,
                    missing,
                )
            )
    print(
        f"Input: {len(files)} DICOM files (pydicom test files + nibabel DICOMs that pydicom reads).\n"
    )
    print(
        "| tool | files/s (1 core) | identifying attributes left | files with any left | files not written |"
    )
    print("|---|---|---|---|---|")
    for tool, fps, left, with_left, missing in rows:
        print(f"| {tool} | {fps:,.0f} | {left} | {with_left} | {missing} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        peer_main(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
