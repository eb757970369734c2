"""``meddata deid text`` and ``meddata deid dicom``: standalone de-identification."""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import click

from meddata.deid import BurnedInAnnotationError, Deidentifier, DeidOptions, load_or_create_key
from meddata.deid.dates import current_year
from meddata.deid.dicom import quiet_pydicom
from meddata.deid.keys import generate_key, path_id, read_key
from meddata.dicom_read import read_dicom
from meddata.errors import SourceError, UsageError


@click.group()
def deid() -> None:
    """De-identify clinical text or DICOM files with a secret key."""


def _reference_year_option(func: Any) -> Any:
    return click.option(
        "--reference-year",
        type=int,
        default=None,
        help="The year ages are counted to: a year of birth more than 89 years before it is "
        "an age over 89 (written as this year less 90). Default: this year. Give the same year "
        "to reproduce an earlier run's output exactly.",
    )(func)


@deid.command("text")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Secret key file (hex text or raw bytes, 16+ bytes). Without it a one-off key is "
    "used and pseudonyms change.",
)
@click.option("--person-id", default="", help="Source person id (for consistent date shifts).")
@click.option(
    "--spans",
    "show_spans",
    is_flag=True,
    help="Print JSON: the de-identified text, and the PHI spans found (type and offsets into "
    "the input text; never the values).",
)
@_reference_year_option
def text_cmd(
    key_file: Path | None, person_id: str, show_spans: bool, reference_year: int | None
) -> None:
    """Read text on stdin, write it de-identified on stdout."""
    options = DeidOptions(reference_year=_year(reference_year))
    if key_file is None:
        click.echo("warning: no --key-file: surrogates are not stable across runs.", err=True)
        key = generate_key()
    else:
        key = read_key(key_file)
    result = Deidentifier(key, options).text(sys.stdin.read(), person_id)
    if show_spans:
        spans = result.spans_as_dicts()
        click.echo(json.dumps({"text": result.text, "spans": spans, "spans_refer_to": "input"}))
    else:
        click.echo(result.text, nl=False)


def _year(reference_year: int | None) -> int:
    """``--reference-year``, or this year (read once, and reported with the options)."""
    return current_year() if reference_year is None else reference_year


def _options(
    retain_dates: bool,
    retain_patient_characteristics: bool,
    retain_device_identity: bool,
    clean_descriptors: bool,
    allow_burned_in: bool,
    reference_year: int | None,
) -> DeidOptions:
    return DeidOptions(
        retain_longitudinal_dates=retain_dates,
        retain_patient_characteristics=retain_patient_characteristics,
        retain_device_identity=retain_device_identity,
        clean_descriptors=clean_descriptors,
        allow_burned_in=allow_burned_in,
        reference_year=_year(reference_year),
    )


@deid.command("dicom")
@click.argument("in_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Secret key file (hex text or raw bytes, 16+ bytes). Without it one is created "
    "beside OUT_DIR.",
)
@click.option("--retain-dates", is_flag=True, help="Shift dates instead of removing them.")
@click.option("--retain-patient-characteristics", is_flag=True, help="Keep age, sex, size…")
@click.option("--retain-device-identity", is_flag=True, help="Keep device serials and names.")
@click.option(
    "--clean-descriptors/--no-clean-descriptors",
    default=True,
    help="Keep descriptions after removing PHI from them (default) or remove them.",
)
@click.option("--allow-burned-in", is_flag=True, help="Do not quarantine burned-in images.")
@_reference_year_option
def dicom_cmd(
    in_dir: Path,
    out_dir: Path,
    key_file: Path | None,
    retain_dates: bool,
    retain_patient_characteristics: bool,
    retain_device_identity: bool,
    clean_descriptors: bool,
    allow_burned_in: bool,
    reference_year: int | None,
) -> None:
    """De-identify every DICOM file under IN_DIR into OUT_DIR (named by the new SOP UID).

    Files that share a SOP Instance UID get a numeric suffix (UID-1.dcm, …) in sorted input
    order; files without one are named by a keyed id of their input path. Inputs that could not
    be de-identified are listed, by id, in OUT_DIR/quarantine.jsonl. The id → input path map is
    written beside OUT_DIR as OUT_DIR.quarantine-paths.jsonl, readable by its owner only (paths
    can name patients).
    """
    from pydicom.errors import InvalidDicomError

    options = _options(  # first: a bad --reference-year is refused before anything is made
        retain_dates,
        retain_patient_characteristics,
        retain_device_identity,
        clean_descriptors,
        allow_burned_in,
        reference_year,
    )
    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise UsageError("OUT_DIR must not be IN_DIR or inside it.", "Choose another folder.")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise UsageError(
            f"OUT_DIR {out_dir} is not empty: files of an earlier run would mix with this one's.",
            "Give a new or empty folder.",
        )
    paths = sorted(p for p in in_dir.rglob("*") if p.is_file())
    if not paths:
        raise SourceError(
            "IN_DIR holds no files: there is nothing to de-identify.",
            "Check that IN_DIR is the folder that holds the DICOM files (subfolders are searched).",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI prints its own warning below
        key, key_path, created = load_or_create_key(key_file, out_dir)
    if created:
        click.echo(
            f"warning: created a new key at {key_path}; keep it secret and reuse it "
            "(--key-file) so pseudonyms stay stable.",
            err=True,
        )
    engine = Deidentifier(key, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: Counter[str] = Counter()
    quarantine: list[dict[str, str]] = []
    id_paths: dict[str, str] = {}  # id → relative input path of each id in OUT_DIR (operator only)
    used: set[str] = set()
    for path in paths:
        rel = str(path.relative_to(in_dir))
        # Keyed, so an id cannot be matched to a guessed file name without the key.
        ref = path_id(key, rel)
        digest = ref.removeprefix("path:")
        id_paths[ref] = rel  # dropped below if it is written under its UID
        with quiet_pydicom():  # pydicom's warnings can quote header values (PHI)
            try:
                with open(path, "rb") as fh:
                    ds = read_dicom(fh)
            except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
                summary["skipped_not_dicom"] += 1
                quarantine.append({"file": ref, "reason": f"unreadable ({type(exc).__name__})"})
                continue
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
                summary["quarantined_error"] += 1
                quarantine.append({"file": ref, "reason": f"unreadable ({type(exc).__name__})"})
                continue
            part: Path | None = None
            try:
                result = engine.dicom(ds)
                if "modality_often_burned_in" in result.flags:
                    summary["flagged_modality_often_burned_in"] += 1
                uid = str(ds.get("SOPInstanceUID") or "")
                named_by_uid = _UID.fullmatch(uid) is not None
                name = _unique_name(uid if named_by_uid else digest, used)
                part = out_dir / f"{name}.part"  # nothing half-written gets a .dcm name
                _as_part10(ds)
                ds.save_as(part, enforce_file_format=False)
                part.replace(out_dir / name)
            except BurnedInAnnotationError:
                summary["quarantined_burned_in"] += 1
                quarantine.append({"file": ref, "reason": "BurnedInAnnotation=YES"})
                continue
            except Exception as exc:  # noqa: BLE001 - the type only: messages can quote PHI
                if part is not None:
                    part.unlink(missing_ok=True)
                summary["quarantined_error"] += 1
                quarantine.append({"file": ref, "reason": f"error ({type(exc).__name__})"})
                continue
        used.add(name)
        if named_by_uid:
            del id_paths[ref]
        else:
            summary["written_named_by_id"] += 1
        summary["written"] += 1
    report = out_dir / "quarantine.jsonl"
    if quarantine:
        report.write_text("".join(json.dumps(row) + "\n" for row in quarantine))
        click.echo(f"{len(quarantine)} input(s) quarantined: see {report}", err=True)
    else:
        report.unlink(missing_ok=True)  # a stale report from an earlier run
    map_path = _paths_map_path(out_dir)
    if id_paths:
        _write_private(map_path, id_paths)
        click.echo(
            f"The input path of each id is in {map_path} (owner-only: paths can name patients).",
            err=True,
        )
    else:
        map_path.unlink(missing_ok=True)
    counts = engine.take_counts()
    click.echo(json.dumps({"files": dict(summary), "counts": counts, **engine.profile_summary()}))
    if not summary["written"]:
        raise SourceError(
            f"No input could be de-identified: all {len(paths)} were quarantined ({report}).",
            "Check that IN_DIR holds DICOM files; the report gives each file's reason.",
        )


_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")  # a UID is safe as a file name; anything else is not


def _as_part10(ds: Any) -> None:
    """Give a dataset read without preamble or file meta what a DICOM file (Part 10) needs,
    taken from its own (already de-identified) SOP class and instance."""
    if ds.preamble is None:
        ds.preamble = b"\0" * 128
    meta = ds.file_meta
    for meta_key, key in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        if meta_key not in meta and key in ds:
            setattr(meta, meta_key, ds[key].value)


def _unique_name(stem: str, used: set[str]) -> str:
    """``<stem>.dcm``, or ``<stem>-N.dcm`` with the smallest N >= 1 not in ``used``."""
    name, n = f"{stem}.dcm", 0
    while name in used:
        n += 1
        name = f"{stem}-{n}.dcm"
    return name


def _paths_map_path(out_dir: Path) -> Path:
    """``<OUT_DIR>.quarantine-paths.jsonl`` beside OUT_DIR, never inside it."""
    out = out_dir.absolute()
    return out.with_name(out.name + ".quarantine-paths.jsonl")


def _write_private(path: Path, id_paths: dict[str, str]) -> None:
    """Write ``{"id": ..., "path": ...}`` lines (as ``meddata convert`` does), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an existing file keeps its old mode through open()
        for id_, rel in sorted(id_paths.items()):
            fh.write(json.dumps({"id": id_, "path": rel}) + "\n")
