"""``meddata deid text`` and ``meddata deid dicom``: standalone de-identification."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import click

from meddata.deid import BurnedInAnnotationError, Deidentifier, DeidOptions, load_or_create_key
from meddata.deid.dicom import quiet_pydicom
from meddata.deid.keys import generate_key, read_key
from meddata.errors import UsageError


@click.group()
def deid() -> None:
    """De-identify clinical text or DICOM files with a secret key."""


@deid.command("text")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Secret key file (hex). Without it a one-off key is used and pseudonyms change.",
)
@click.option("--person-id", default="", help="Source person id (for consistent date shifts).")
@click.option("--spans", "show_spans", is_flag=True, help="Print JSON with the text and spans.")
def text_cmd(key_file: Path | None, person_id: str, show_spans: bool) -> None:
    """Read text on stdin, write it de-identified on stdout."""
    if key_file is None:
        click.echo("warning: no --key-file: surrogates are not stable across runs.", err=True)
        key = generate_key()
    else:
        key = read_key(key_file)
    result = Deidentifier(key).text(sys.stdin.read(), person_id)
    if show_spans:
        click.echo(json.dumps({"text": result.text, "spans": result.spans_as_dicts()}))
    else:
        click.echo(result.text, nl=False)


def _options(
    retain_dates: bool,
    retain_patient_characteristics: bool,
    retain_device_identity: bool,
    clean_descriptors: bool,
    allow_burned_in: bool,
) -> DeidOptions:
    return DeidOptions(
        retain_longitudinal_dates=retain_dates,
        retain_patient_characteristics=retain_patient_characteristics,
        retain_device_identity=retain_device_identity,
        clean_descriptors=clean_descriptors,
        allow_burned_in=allow_burned_in,
    )


@deid.command("dicom")
@click.argument("in_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Secret key file (hex). Without it one is created beside OUT_DIR.",
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
def dicom_cmd(
    in_dir: Path,
    out_dir: Path,
    key_file: Path | None,
    retain_dates: bool,
    retain_patient_characteristics: bool,
    retain_device_identity: bool,
    clean_descriptors: bool,
    allow_burned_in: bool,
) -> None:
    """De-identify every DICOM file under IN_DIR into OUT_DIR (named by the new SOP UID)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if out_dir.resolve() == in_dir.resolve() or in_dir.resolve() in out_dir.resolve().parents:
        raise UsageError("OUT_DIR must not be IN_DIR or inside it.", "Choose another folder.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI prints its own warning below
        key, key_path, created = load_or_create_key(key_file, out_dir)
    if created:
        click.echo(
            f"warning: created a new key at {key_path}; keep it secret and reuse it "
            "(--key-file) so pseudonyms stay stable.",
            err=True,
        )
    options = _options(
        retain_dates,
        retain_patient_characteristics,
        retain_device_identity,
        clean_descriptors,
        allow_burned_in,
    )
    engine = Deidentifier(key, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: Counter[str] = Counter()
    quarantine: list[dict[str, str]] = []
    for path in sorted(p for p in in_dir.rglob("*") if p.is_file()):
        # Keyed, so a quarantine entry cannot be matched to a guessed file name without the key.
        rel = str(path.relative_to(in_dir)).encode()
        ref = "hmac-sha256:" + hmac.new(key, rel, hashlib.sha256).hexdigest()[:32]
        with quiet_pydicom():  # pydicom's warnings can quote header values (PHI)
            try:
                ds = pydicom.dcmread(path)
            except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
                summary["skipped_not_dicom"] += 1
                quarantine.append({"file": ref, "reason": f"unreadable ({type(exc).__name__})"})
                continue
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
                summary["quarantined_error"] += 1
                quarantine.append({"file": ref, "reason": f"unreadable ({type(exc).__name__})"})
                continue
            try:
                result = engine.dicom(ds)
                if "modality_often_burned_in" in result.flags:
                    summary["flagged_modality_often_burned_in"] += 1
                uid = str(ds.SOPInstanceUID)
                ds.save_as(out_dir / f"{uid}.dcm", enforce_file_format=False)
            except BurnedInAnnotationError:
                summary["quarantined_burned_in"] += 1
                quarantine.append({"file": ref, "reason": "BurnedInAnnotation=YES"})
                continue
            except Exception as exc:  # noqa: BLE001 - the type only: messages can quote PHI
                summary["quarantined_error"] += 1
                quarantine.append({"file": ref, "reason": f"error ({type(exc).__name__})"})
                continue
        summary["written"] += 1
    if quarantine:
        with open(out_dir / "quarantine.jsonl", "w") as fh:
            for row in quarantine:
                fh.write(json.dumps(row) + "\n")
    counts = engine.take_counts()
    click.echo(json.dumps({"files": dict(summary), "counts": counts, **engine.profile_summary()}))
