"""``meddata validate``, ``meddata info`` and ``meddata list``."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from meddata import registry
from meddata.convert import quarantine_map_path
from meddata.dataset import load
from meddata.validate import validate as run_validate
from meddata.writer import phi_items_replaced


@click.command()
@click.argument("target")
@click.option("--version", "version", help="Version to check (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(target: str, version: str | None, as_json: bool) -> int:
    """Check a dataset: schemas, checksums, row counts and references between tables."""
    report = run_validate(target, version)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        checked = ", ".join(f"{v} {k}" for k, v in report.checked.items())
        click.echo(f"valid: {report.path} ({checked})")
    else:
        click.echo(f"INVALID: {report.path}", err=True)
        for problem in report.problems:
            click.echo(f"  - {problem}", err=True)
    return 0 if report.ok else 1


@click.command()
@click.argument("target")
@click.option("--version", "version", help="Version (default: the latest).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def info(target: str, version: str | None, as_json: bool) -> int:
    """Describe a dataset given by path, URL or registered name."""
    ds = load(target, version)
    if as_json:
        click.echo(json.dumps(ds.manifest, indent=2))
        return 0
    m = ds.manifest
    console = Console()
    console.print(f"[bold]{ds.name}[/bold] {ds.version}  ({m.get('title', '')})  {ds.path}")
    console.print(
        f"adapter {m['adapter']['name']} v{m['adapter']['version']}, created {m['created']}, format {m['format_version']}"
    )
    table = Table("table", "schema", "rows", "shards", "bytes")
    for name, entry in m["tables"].items():
        table.add_row(
            name,
            entry["schema"],
            str(entry["rows"]),
            str(len(entry["shards"])),
            f"{entry['bytes']:,}",
        )
    console.print(table)
    if m.get("splits"):
        for name, split in m["splits"].items():
            line = f"split set [bold]{name}[/bold]: {split['strategy'].get('kind', '')}"
            report = split.get("report") or {}
            if report.get("splits"):
                parts = [
                    f"{k}={v.get('persons', '?')} person{'' if v.get('persons') == 1 else 's'}"
                    for k, v in report["splits"].items()
                ]
                line += " — " + ", ".join(parts)
            if report.get("max_deviation"):
                dev = report["max_deviation"]
                line += f"; largest subgroup deviation {dev.get('value', 0):.3f} ({dev.get('attribute')}={dev.get('group')} in {dev.get('split')})"
            console.print(line)
    if m.get("deid"):
        replaced = phi_items_replaced(m["deid"].get("counts", {}))
        console.print(
            f"de-identified (key {m['deid'].get('key_fingerprint')}): {replaced} PHI items replaced"
        )
    quarantine = m["quarantine"]
    line = f"quarantined inputs: {quarantine['count']}"
    if quarantine.get("path"):
        line += f" (report: {quarantine['path']})"
        path_map = quarantine_map_path(ds.root, ds.name, ds.version)
        if m.get("deid") and ds.fs.exists(path_map):
            line += f"; source paths behind its ids, for the operator: {path_map}"
    console.print(line, soft_wrap=True)
    return 0


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_adapters_cmd(as_json: bool) -> int:
    """List the adapters meddata knows and their status."""
    infos = registry.list_adapters()
    rows = [
        {
            "name": i.name,
            "status": i.status,
            "origin": i.origin,
            "dataset": i.adapter.dataset_name if i.adapter else None,
            "source": i.adapter.source_release if i.adapter else None,
        }
        for i in infos
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 0
    table = Table("adapter", "status", "dataset", "reads", "origin")
    for r in rows:
        table.add_row(r["name"], r["status"], r["dataset"] or "", r["source"] or "", r["origin"])
    Console().print(table)
    return 0
