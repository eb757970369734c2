"""``meddata datasheet``: render, check and publish a dataset's Healthsheet."""

from __future__ import annotations

import json
from pathlib import Path

import click

from meddata import storage
from meddata.dataset import load
from meddata.datasheet import (
    FORMATS,
    build_healthsheet,
    load_healthsheet,
    load_healthsheet_yaml,
    publish,
    render_markdown,
    unanswered,
)
from meddata.errors import UsageError


@click.command()
@click.argument("target")
@click.option("--version", "version", help="Version (default: the latest).")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice([*FORMATS, "all"]),
    help="Output format; repeat for several (default: md). hf = Hugging Face card.",
)
@click.option("-o", "--out", help="Folder (a path or file:// URL on this machine).")
@click.option(
    "--sheet",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Healthsheet YAML to use instead of the dataset's own answers.",
)
@click.option("--check", is_flag=True, help="List the questions left unanswered.")
@click.option("--strict", is_flag=True, help="With --check: exit 1 if any is unanswered.")
@click.option("--base-url", help="Where the Croissant file finds the dataset root.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def datasheet(
    target: str,
    version: str | None,
    formats: tuple[str, ...],
    out: str | None,
    sheet: Path | None,
    check: bool,
    strict: bool,
    base_url: str | None,
    as_json: bool,
) -> int:
    """Render a dataset's Healthsheet (Markdown, HTML), publish it (Croissant JSON-LD, Hugging
    Face card) or check which questions are unanswered.

    Without -o the Markdown is printed. Answers come from --sheet, else the datasheet stored
    in the dataset, else the packaged datasheets/<name>.yaml.
    """
    folder = storage.local_path(out, "The datasheet folder (-o)") if out is not None else None
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {out} is a file.", "Give a folder for the datasheet files.")
    if strict and not check:
        raise UsageError("--strict only applies to --check.", "Add --check, or drop --strict.")
    ds = load(target, version)
    # Stored answers (or --sheet), with statistics recomputed: split sets added since count.
    doc = build_healthsheet(ds, load_healthsheet_yaml(sheet) if sheet else load_healthsheet(ds))
    missing = unanswered(doc)
    written: dict[str, Path] = {}
    if folder is not None:
        written = publish(ds, formats or ("md",), folder, sheet=doc, base_url=base_url)
    elif formats and set(formats) != {"md"}:
        raise UsageError(
            f"Format(s) {', '.join(formats)} write files.", "Give a folder with -o DIR."
        )
    if as_json:
        summary = {
            "dataset": ds.path,
            "unanswered": [q.path for q in missing],
            "written": {k: str(v) for k, v in written.items()},
        }
        click.echo(json.dumps(summary, indent=2))
    elif check:
        click.echo(f"{ds.name} {ds.version}: {len(missing)} unanswered question(s)")
        for q in missing:
            click.echo(f"  - {q.path}: {q.question}")
    elif folder is None:
        click.echo(render_markdown(doc), nl=False)
    for fmt, path in written.items():
        if not as_json:
            click.echo(f"{fmt}: {path}", err=check)
    if "html" in written and not as_json:
        click.echo(f"Open {written['html'].resolve().as_uri()} in a browser.", err=check)
    return 1 if check and strict and missing else 0
