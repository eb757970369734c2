"""The ``meddata`` command. Exit codes: 0 ok, 1 invalid data or failed run, 2 usage error."""

from __future__ import annotations

import sys
import traceback

import click
from meddata.cli import convert as convert_cmd
from meddata.cli import datasheet as datasheet_cmd
from meddata.cli import deid as deid_cmd
from meddata.cli import inspect as inspect_cmd
from meddata.cli import quickstart as quickstart_cmd
from meddata.cli import split as split_cmd

from meddata.errors import MeddataError

_DEBUG = {"on": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="meddata")
def cli(debug: bool) -> None:
    """meddata: machine-learning-ready medical datasets.

    Convert raw releases into one typed, OMOP-aligned Parquet format, validate and inspect
    them, and load them back with `meddata.load(...)`.
    """
    _DEBUG["on"] = debug


for command in (
    convert_cmd.convert,
    convert_cmd.sample,
    inspect_cmd.validate,
    inspect_cmd.info,
    inspect_cmd.list_adapters_cmd,
    quickstart_cmd.quickstart,
    split_cmd.split,
    datasheet_cmd.datasheet,
    deid_cmd.deid,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) its exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = cli.main(args=args, prog_name="meddata", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 1
    except MeddataError as exc:
        if _DEBUG["on"] or "--debug" in args:
            traceback.print_exc()
        click.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"  → {exc.hint}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    if argv is None:
        sys.exit(code)
    return code
