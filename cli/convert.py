"""``meddata convert`` and ``meddata sample``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from meddata.convert import convert as run_convert
from meddata.convert import parse_options
from meddata.registry import get_adapter


@click.command()
@click.argument("adapter")
@click.argument("source", type=click.Path(path_type=Path))
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
    "--strict", is_flag=True, help="Fail on the first unreadable input instead of quarantining it."
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted conversion of the same version."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing version of the dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of the path.")
def convert(
    adapter: str,
    source: Path,
    out: str,
    options: tuple[str, ...],
    name: str | None,
    version: str | None,
    workers: int | None,
    engine: str,
    strict: bool,
    resume: bool,
    overwrite: bool,
    as_json: bool,
) -> int:
    """Convert SOURCE with ADAPTER into a published meddata dataset."""
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
        show_progress=None if not as_json else False,
    )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        click.echo(summary.path)
        if summary.quarantined:
            click.echo(
                f"{summary.quarantined} input(s) quarantined: see {summary.quarantine_path}",
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
    root = get_adapter(adapter).synthesize(dest, n=n, seed=seed)
    click.echo(str(root))
    return 0
