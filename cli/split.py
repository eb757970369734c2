"""``meddata split``: leakage-free, jointly stratified (or out-of-distribution) splits."""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import click
import polars as pl

from meddata.dataset import load
from meddata.errors import MeddataError, UsageError
from meddata.publish import add_split
from meddata.splits import make_splits, parse_fractions, to_meds_names

# The MEDS file name; a MEDS dataset keeps it at $MEDS_ROOT/metadata/subject_splits.parquet.
MEDS_SPLITS_FILE = "subject_splits.parquet"


def _parse_holdout(values: tuple[str, ...]) -> dict[str, list[str]] | None:
    """``COLUMN=VALUE[|VALUE]`` options as ``{column: [values]}``."""
    out: dict[str, list[str]] = {}
    for text in values:
        column, sep, value = text.partition("=")
        wanted = [v.strip() for v in value.split("|") if v.strip()]
        if not sep or not column.strip() or not wanted:
            raise UsageError(
                f"--holdout {text!r} is not COLUMN=VALUE.", "Write it like --holdout site=B."
            )
        out.setdefault(column.strip(), []).extend(wanted)
    return out or None


def _meds_target(path: Path) -> Path:
    """The file ``--export-meds PATH`` writes: PATH, or PATH/subject_splits.parquet for a folder."""
    target = path / MEDS_SPLITS_FILE if path.is_dir() else path
    if target.is_dir():
        raise UsageError(
            f"--export-meds cannot write {target}: it is a folder.",
            f"Give a file path, or a folder without a {MEDS_SPLITS_FILE} folder in it.",
        )
    blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UsageError(
            f"--export-meds cannot write {target}: {blocker} is a file, not a folder.",
            "Choose a path under a folder.",
        )
    return target


def _write_staged(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to disk."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _stage_meds(frame: pl.DataFrame, target: Path) -> Path:
    """Write the MEDS export beside ``target`` under a temporary name, and return that name."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_staged(tmp, buffer.getvalue())
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MeddataError(
            f"Cannot write the MEDS export to {target}: {exc.strerror or exc}.",
            "Nothing was recorded; free space or fix permissions, or choose another "
            "--export-meds path, then rerun.",
        ) from exc
    return tmp


@click.command()
@click.argument("target")
@click.option(
    "--name", required=True, help="Name of the split set (written to splits/NAME-<hash>.parquet)."
)
@click.option(
    "--by", default="person_id", show_default=True, help="Grouping column: no group in two splits."
)
@click.option(
    "--stratify",
    help="Comma list of attributes and/or 'labels' (default: all labels and sensitive attributes; '' for none).",
)
@click.option("--fractions", help="e.g. train=0.8,val=0.1,test=0.1 (the default).")
@click.option(
    "--folds", type=click.IntRange(min=2), help="k folds (fold0..fold{k-1}) instead of fractions."
)
@click.option(
    "--holdout",
    multiple=True,
    metavar="COLUMN=VALUE[|VALUE]",
    help="Send whole sites/devices to test (repeatable).",
)
@click.option(
    "--time-column", help="Hold out the persons whose earliest value of this column is latest."
)
@click.option(
    "--time-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Fraction held out by time.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Random seed of the assignment (a non-negative int; the same seed, same split).",
)
@click.option("--version", "version", help="Dataset version (default: the latest).")
@click.option("--overwrite", is_flag=True, help="Replace an existing split set of that name.")
@click.option(
    "--export-meds",
    type=click.Path(path_type=Path),
    help="Also write MEDS subject_splits (train/tuning/held_out) to this file; a folder gets "
    f"{MEDS_SPLITS_FILE} inside it (for a MEDS dataset, pass its metadata/ folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the split report as JSON.")
def split(
    target: str,
    name: str,
    by: str,
    stratify: str | None,
    fractions: str | None,
    folds: int | None,
    holdout: tuple[str, ...],
    time_column: str | None,
    time_fraction: float | None,
    seed: int,
    version: str | None,
    overwrite: bool,
    export_meds: Path | None,
    as_json: bool,
) -> int:
    """Split a dataset by person, stratified on labels and sensitive attributes; record it."""
    if fractions and folds:
        raise UsageError("--fractions and --folds cannot be used together.", "Pick one.")
    if (time_column is None) != (time_fraction is None):
        raise UsageError("--time-column and --time-fraction go together.", "Give both, or neither.")
    holdout_values = _parse_holdout(holdout)
    meds_target = _meds_target(export_meds) if export_meds is not None else None
    ds = load(target, version)
    samples = ds.table("samples").collect()
    result = make_splits(
        samples,
        by=by,
        stratify=None
        if stratify is None
        else [s.strip() for s in stratify.split(",") if s.strip()],
        fractions=parse_fractions(fractions) if fractions else None,
        folds=folds,
        holdout=holdout_values,
        time_column=time_column,
        time_holdout_fraction=time_fraction,
        seed=seed,
    )
    # The export is written (under a temporary name) before the split set is recorded, and
    # moved into place after: a failed export records nothing, a refused record exports nothing.
    staged = None
    if meds_target is not None:
        staged = _stage_meds(to_meds_names(result.assignments), meds_target)
    try:
        ds = add_split(
            ds,
            name,
            result.assignments,
            strategy=result.strategy,
            report=result.report,
            overwrite=overwrite,
        )
    except BaseException:
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    if staged is not None and meds_target is not None:
        try:
            os.replace(staged, meds_target)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise MeddataError(
                f"Split set {name!r} was recorded, but its MEDS export could not be moved to "
                f"{meds_target}: {exc.strerror or exc}.",
                "Rerun with --overwrite and the same options to write the export again.",
            ) from exc
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": ds.path,
                    "name": name,
                    "strategy": result.strategy,
                    "report": result.report,
                },
                indent=2,
            )
        )
        return 0
    click.echo(f"{ds.path}/{ds.splits[name]['path']}")
    click.echo(render_report(result.report))
    return 0


def render_report(report: dict[str, Any]) -> str:
    """A short plain-text view of a split report."""
    splits = report.get("splits") or {}
    lines = [f"  {'split':<10} {'persons':>7} {'samples':>8}  share of persons"] if splits else []
    for split_name, info in splits.items():
        persons, samples = info.get("persons", 0), info.get("samples", 0)
        share = info.get("fraction_persons", 0)
        lines.append(f"  {split_name:<10} {persons:>7} {samples:>8}  {share:>16.1%}")
    dev = report.get("max_deviation") or {}
    if dev:
        where = ""
        if dev.get("split") is not None and dev.get("attribute") is not None:
            where = f" ({dev['attribute']}={dev.get('group')} in {dev['split']})"
        lines.append(f"  largest subgroup deviation: {dev.get('value', 0):.4f}{where}")
    leak = (report.get("leakage") or {}).get("persons_in_multiple_splits", 0)
    lines.append(f"  persons in more than one split: {leak}")
    return "\n".join(lines)
