"""``meddata convert`` and ``meddata sample``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from meddata import storage
from meddata.convert import convert as run_convert
from meddata.convert import parse_options, quarantine_map_path
from meddata.errors import UsageError
from meddata.registry import get_adapter


@click.command()
@click.argument("adapter")
@click.argument("source")
@click.option(
    "-o",
    "--out",
    required=True,
    help="Output root (path or fsspec URL); writes OUT/<name>/<version>/.",
)
@click.option(
    "-O",
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Adapter option (repeatable).",
)
@click.option("--name", help="Dataset name (default: the adapter's).")
@click.option("--version", "version", help="Dataset version (default: the adapter's).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: all CPUs).")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Process pool here, or Ray Data (a local Ray, or the cluster RAY_ADDRESS names).",
)
@click.option(
    "--strict", is_flag=True, help="Fail on the first unreadable input instead of quarantining it."
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted conversion of the same version."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing version of the dataset.")
@click.option(
    "--deid-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Secret key for pseudonyms, date shifts and UIDs (default: created beside the output).",
)
@click.option(
    "--no-deid",
    is_flag=True,
    help="Do not de-identify (only for sources that are already de-identified).",
)
@click.option("--allow-burned-in", is_flag=True, help="Keep images flagged with burned-in text.")
@click.option(
    "--retain-device-identity", is_flag=True, help="Keep device serials and manufacturer."
)
@click.option(
    "--retain-patient-characteristics",
    is_flag=True,
    help="Keep sex, age, size and weight in DICOM.",
)
@click.option(
    "--reference-year",
    type=click.IntRange(1900, 9999),
    help="Year ages are counted to when de-identifying (default: this year; recorded).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of the path.")
def convert(
    adapter: str,
    source: str,
    out: str,
    options: tuple[str, ...],
    name: str | None,
    version: str | None,
    workers: int | None,
    engine: str,
    strict: bool,
    resume: bool,
    overwrite: bool,
    deid_key_file: Path | None,
    no_deid: bool,
    allow_burned_in: bool,
    retain_device_identity: bool,
    retain_patient_characteristics: bool,
    reference_year: int | None,
    as_json: bool,
) -> int:
    """Convert SOURCE with ADAPTER into a published, de-identified meddata dataset.

    De-identification runs inside each work unit before any row is written: person ids become
    keyed pseudonyms, dates shift by a per-person offset, DICOM headers follow the PS3.15
    Annex E Basic profile and free text goes through the PHI recogniser. The key comes from
    --deid-key-file, or is created beside (never inside) OUT/<name> with a warning.
    """
    if not storage.shared_between_processes(storage.open_fs(out)[0]):
        raise UsageError(
            f"{out} lives only as long as this command, so the dataset would be lost at exit.",
            "Give a folder or an object-store URL (memory:// is for Python, in one process).",
        )
    if no_deid and deid_key_file is not None:
        raise UsageError(
            "--no-deid and --deid-key-file contradict each other.", "Give one or the other."
        )
    deid_options: dict[str, object] = {
        "allow_burned_in": allow_burned_in,
        "retain_device_identity": retain_device_identity,
        "retain_patient_characteristics": retain_patient_characteristics,
    }
    if reference_year is not None:
        deid_options["reference_year"] = reference_year
    with warnings.catch_warnings():  # a new key is announced below, in the CLI's words
        warnings.filterwarnings("ignore", message="No de-identification key was given")
        summary = run_convert(
            adapter,
            source,
            out,
            options=parse_options(list(options)),
            name=name,
            version=version,
            workers=workers,
            engine=engine,
            strict=strict,
            resume=resume,
            overwrite=overwrite,
            deid=not no_deid,
            deid_key=deid_key_file,
            deid_options=None if no_deid else deid_options,
            show_progress=None if not as_json else False,
        )
    if summary.deid_key_created and not as_json:
        click.echo(
            f"warning: created a new de-identification key at {summary.deid_key_created}. Keep "
            "it secret and pass it with --deid-key-file to later runs so pseudonyms and date "
            "shifts stay stable.",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(summary.path)
        if summary.quarantined:
            where = ""
            if summary.deid:
                where = (
                    "; the source paths behind its ids are in "
                    f"{quarantine_map_path(summary.path, summary.name, summary.version)}"
                )
            click.echo(
                f"{summary.quarantined} input(s) quarantined: see {summary.quarantine_path}{where}",
                err=True,
            )
    return 0


@click.command()
@click.argument("adapter")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--n", "n", default=8, show_default=True, type=click.IntRange(min=1), help="Size (patients)."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
def sample(adapter: str, dest: Path, n: int, seed: int) -> int:
    """Write a small synthetic source for ADAPTER, in its exact upstream layout, to DEST."""
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is a file.", "Give a folder for the sample source.")
    if dest.is_dir() and any(dest.iterdir()):
        raise UsageError(
            f"{dest} is not empty: a sample mixed into other files would not be the adapter's "
            "upstream layout.",
            "Give a new or empty folder.",
        )
    root = get_adapter(adapter).synthesize(dest, n=n, seed=seed)
    click.echo(str(root))
    return 0
