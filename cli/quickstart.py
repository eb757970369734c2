"""``meddata quickstart``: the main job end to end on built-in sample data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click
from meddata.cli.split import render_report
from rich.console import Console
from rich.table import Table

from meddata.convert import convert as run_convert
from meddata.dataset import load
from meddata.publish import add_split
from meddata.registry import list_adapters
from meddata.splits import make_splits
from meddata.validate import validate as run_validate


@click.command()
@click.option(
    "--dir",
    "directory",
    default="meddata-quickstart",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Working folder (recreated).",
)
@click.option(
    "--n",
    "n",
    default=6,
    show_default=True,
    type=click.IntRange(min=2),
    help="Patients per sample source.",
)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Worker processes."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def quickstart(directory: Path, n: int, workers: int, as_json: bool) -> int:
    """For every adapter: synthesize a sample source, convert it, validate it; then summarise."""
    console = Console(stderr=as_json)
    if directory.exists():
        shutil.rmtree(directory)
    sources, out = directory / "sources", directory / "datasets"
    results: list[dict[str, Any]] = []
    for info in list_adapters():
        if info.adapter is None:
            continue
        cls = info.adapter
        console.print(
            f"[bold]{cls.name}[/bold]: synthesizing {n} patients → converting → validating"
        )
        src = cls.synthesize(sources / cls.name, n=n, seed=0)
        summary = run_convert(
            cls.name, src, out, workers=workers, show_progress=not as_json and None
        )
        split = _split(summary.path)
        if not as_json:
            console.print(
                "  split set 'fair' (person-grouped, stratified on labels and sensitive attributes):"
            )
            console.print(render_report(split))
        report = run_validate(summary.path)
        results.append(
            {
                "adapter": cls.name,
                "dataset": summary.path,
                "tables": summary.tables,
                "quarantined": summary.quarantined,
                "valid": report.ok,
                "problems": report.problems,
                "seconds": summary.seconds,
                "split_report": split,
            }
        )
    ok = all(r["valid"] for r in results)
    if as_json:
        click.echo(json.dumps({"ok": ok, "datasets": results}, indent=2))
        return 0 if ok else 1
    table = Table("adapter", "rows per table", "quarantined", "valid", "seconds")
    for r in results:
        rows = ", ".join(f"{t}={c}" for t, c in r["tables"].items())
        table.add_row(
            r["adapter"],
            rows,
            str(r["quarantined"]),
            "yes" if r["valid"] else "NO",
            f"{r['seconds']:.1f}",
        )
    console.print(table)
    first = results[0]["dataset"] if results else str(out)
    console.print("\n[bold]Try next[/bold]")
    console.print(f"  meddata info {first}")
    console.print(
        f"  python -c \"import meddata; ds = meddata.load('{first}'); print(ds.table('samples').collect())\""
    )
    console.print(
        "  meddata list   # every adapter; `meddata convert ADAPTER SOURCE -o OUT` on a real release"
    )
    return 0 if ok else 1


def _split(path: str) -> dict[str, Any]:
    """Split a sample dataset by person, stratified jointly; returns the split report."""
    ds = load(path)
    result = make_splits(ds.table("samples").collect(), seed=0)
    add_split(ds, "fair", result.assignments, strategy=result.strategy, report=result.report)
    return result.report
