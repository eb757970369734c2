"""``meddata quickstart``: the main job end to end on built-in sample data."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from meddata.cli.split import render_report
from meddata.convert import convert as run_convert
from meddata.dataset import load
from meddata.datasheet import publish
from meddata.errors import UsageError
from meddata.publish import add_split
from meddata.registry import list_adapters
from meddata.splits import make_splits
from meddata.validate import validate as run_validate
from meddata.writer import phi_items_replaced


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
    default=10,
    show_default=True,
    type=click.IntRange(min=3),
    help="Patients per sample source (at least 3: train, val and test each get one).",
)
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=1), help="Worker processes."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def quickstart(directory: Path, n: int, workers: int, as_json: bool) -> int:
    """For every adapter: synthesize a sample source, convert, validate and split it; then publish a datasheet and train a few steps."""
    console = Console(stderr=as_json, soft_wrap=True)  # piped lines are not cut at 80 columns
    marker = directory / ".meddata-quickstart"
    if directory.exists() and any(directory.iterdir()) and not marker.exists():
        raise UsageError(
            f"{directory} exists and was not made by `meddata quickstart`; refusing to replace it.",
            "Pass --dir with a new or empty folder.",
        )
    if directory.exists():
        shutil.rmtree(directory)
    sources, out = directory / "sources", directory / "datasets"
    directory.mkdir(parents=True)
    marker.write_text("made by meddata quickstart; the whole folder is replaced on the next run\n")
    key = secrets.token_bytes(
        32
    )  # a throwaway key: the sample data is de-identified like real data
    (directory / "quickstart.deid-key").write_bytes(key)
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
            cls.name,
            src,
            out,
            workers=workers,
            deid_key=key,
            show_progress=not as_json and None,
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
                "phi_replaced": _phi_count(summary.deid),
                "split_report": split,
            }
        )
    ok = all(r["valid"] for r in results)
    sheet_files = (
        publish(load(results[0]["dataset"]), ["all"], directory / "datasheet") if results else {}
    )
    training = _train(results[0]["dataset"]) if results else None
    if as_json:
        files = {k: str(v) for k, v in sheet_files.items()}
        click.echo(
            json.dumps(
                {"ok": ok, "datasets": results, "datasheet": files, "training": training}, indent=2
            )
        )
        return 0 if ok else 1
    # Compact enough for an 80-column pipe (CI logs): names are never cut.
    table = Table(padding=(0, 1), box=None, header_style="bold")
    table.add_column(
        "adapter", no_wrap=True, min_width=max([7, *(len(r["adapter"]) for r in results)])
    )
    for name in ("tables", "persons", "samples", "PHI replaced", "quarantined", "valid", "s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in results:
        table.add_row(
            r["adapter"],
            str(len(r["tables"])),
            str(r["tables"].get("person", 0)),
            str(r["tables"].get("samples", 0)),
            str(r["phi_replaced"]),
            str(r["quarantined"]),
            "yes" if r["valid"] else "NO",
            f"{r['seconds']:.1f}",
        )
    console.print(table)
    first = results[0]["dataset"] if results else str(out)
    if "html" in sheet_files:
        console.print(
            f"\nDatasheet of {results[0]['adapter']} (md, html, Croissant, HF card) in {directory / 'datasheet'}"
        )
        console.print(
            f"  open {Path(sheet_files['html']).resolve().as_uri()} in a browser",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    if training:
        console.print(
            f"\nTrained a compact CNN for {training['steps']} steps on {results[0]['adapter']} "
            f"(preset chexpert): {training['samples_per_s']:.0f} samples/s, loss "
            f"{training['loss_first']:.3f} → {training['loss_last']:.3f}"
        )
    console.print("\n[bold]Try next[/bold]")
    # Commands are printed unwrapped (the terminal wraps them) so they copy as one line.
    for command in (
        f"meddata info {first}",
        f"python -c \"import meddata; ds = meddata.load('{first}'); "
        "print(ds.table('samples').collect())\"",
        "meddata list   # every adapter; `meddata convert ADAPTER SOURCE -o OUT` on a real release",
    ):
        console.print(f"  {command}", soft_wrap=True, markup=False, highlight=False)
    return 0 if ok else 1


def _split(path: str) -> dict[str, Any]:
    """Split a sample dataset by person, stratified jointly; returns the split report."""
    ds = load(path)
    result = make_splits(ds.table("samples").collect(), seed=0)
    add_split(ds, "fair", result.assignments, strategy=result.strategy, report=result.report)
    return result.report


def _train(path: str) -> dict[str, Any] | None:
    """A few training steps through the torch loader (skipped when torch is not installed)."""
    try:
        from meddata.torch import quick_train
    except ImportError:
        return None
    return quick_train(load(path), steps=5, batch_size=8)


def _phi_count(deid: dict[str, Any] | None) -> int:
    """PHI items replaced in one conversion (0 without de-identification)."""
    return phi_items_replaced((deid or {}).get("counts", {}))
