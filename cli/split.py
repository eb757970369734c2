"""``meddata split``: leakage-free, jointly stratified (or out-of-distribution) splits."""

from __future__ import annotations

import json
from pathlib import Path

import click

from meddata.dataset import load
from meddata.errors import UsageError
from meddata.publish import add_split
from meddata.splits import make_splits, parse_fractions, to_meds_names


def _parse_holdout(values: tuple[str, ...]) -> dict[str, list[str]] | None:
    out: dict[str, list[str]] = {}
    for text in values:
        column, sep, value = text.partition("=")
        if not sep or not column:
            raise UsageError(
                f"--holdout {text!r} is not COLUMN=VALUE.", "Write it like --holdout site=B."
            )
        out.setdefault(column.strip(), []).extend(v.strip() for v in value.split("|"))
    return out or None


@click.command()
@click.argument("target")
@click.option("--name", required=True, help="Name of the split set (splits/NAME.parquet).")
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
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--version", "version", help="Dataset version (default: the latest).")
@click.option("--overwrite", is_flag=True, help="Replace an existing split set of that name.")
@click.option(
    "--export-meds",
    type=click.Path(path_type=Path),
    help="Also write MEDS subject_splits (train/tuning/held_out) here.",
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
        holdout=_parse_holdout(holdout),
        time_column=time_column,
        time_holdout_fraction=time_fraction,
        seed=seed,
    )
    ds = add_split(
        ds,
        name,
        result.assignments,
        strategy=result.strategy,
        report=result.report,
        overwrite=overwrite,
    )
    if export_meds is not None:
        export_meds.parent.mkdir(parents=True, exist_ok=True)
        to_meds_names(result.assignments).write_parquet(export_meds)
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


def render_report(report: dict) -> str:  # type: ignore[type-arg]
    """A short plain-text view of a split report."""
    lines = []
    for split_name, info in (report.get("splits") or {}).items():
        lines.append(
            f"  {split_name:<10} {info.get('persons', 0):>7} persons {info.get('samples', 0):>8} samples ({info.get('fraction_persons', 0):.1%})"
        )
    dev = report.get("max_deviation") or {}
    if dev:
        lines.append(
            f"  largest subgroup deviation: {dev.get('value', 0):.4f} ({dev.get('attribute')}={dev.get('group')} in {dev.get('split')})"
        )
    leak = (report.get("leakage") or {}).get("persons_in_multiple_splits", 0)
    lines.append(f"  persons in more than one split: {leak}")
    return "\n".join(lines)
