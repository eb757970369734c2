"""The ``meddata`` command. Exit codes: 0 ok, 1 invalid data or failed run, 2 usage error."""

from __future__ import annotations

import importlib
import json
import sys
import traceback
import warnings

import click

from meddata.errors import MeddataError

# Command name → ("module:attribute", one-line help). Commands import on first use, so
# `meddata --help` and `meddata info` do not pay for pyarrow, polars, torch, the datasheet
# renderer or the de-identification lexicons; a test keeps each line equal to its command's.
COMMANDS = {
    "convert": (
        "meddata.cli.convert:convert",
        "Convert SOURCE with ADAPTER into a published, de-identified meddata dataset.",
    ),
    "sample": (
        "meddata.cli.convert:sample",
        "Write a small synthetic source for ADAPTER, in its exact upstream layout, to DEST.",
    ),
    "validate": (
        "meddata.cli.inspect:validate",
        "Check a dataset: schemas, checksums, row counts and references between tables.",
    ),
    "info": (
        "meddata.cli.inspect:info",
        "Describe a dataset given by path, URL or registered name.",
    ),
    "list": (
        "meddata.cli.inspect:list_adapters_cmd",
        "List the adapters meddata knows and their status.",
    ),
    "split": (
        "meddata.cli.split:split",
        "Split a dataset by person, stratified on labels and sensitive attributes; record it.",
    ),
    "datasheet": (
        "meddata.cli.datasheet:datasheet",
        "Render a dataset's Healthsheet (Markdown, HTML), publish it (Croissant JSON-LD, "
        "Hugging Face card) or check which questions are unanswered.",
    ),
    "deid": (
        "meddata.cli.deid:deid",
        "De-identify clinical text or DICOM files with a secret key.",
    ),
    "quickstart": (
        "meddata.cli.quickstart:quickstart",
        "For every adapter: synthesize a sample source, convert, validate and split it; then "
        "publish a datasheet and train a few steps.",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``COMMANDS``, without importing a single command."""
        rows = [(n, COMMANDS[n][1]) for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)  # wraps long lines under their command, never cuts them


_DEBUG = {"on": False}
_INTERRUPTED = (
    "Interrupted: nothing was published. A conversion goes on from where it stopped with the "
    "same command and --resume."
)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="meddata")
def cli(debug: bool) -> None:
    """meddata: machine-learning-ready medical datasets.

    Convert raw releases into one typed, OMOP-aligned Parquet format, validate and inspect
    them, and load them back with `meddata.load(...)`.
    """
    _DEBUG["on"] = debug


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    """Warnings in the CLI's own form: one line, no source file or line of meddata's code."""
    click.echo(f"warning: {message}", err=True)


def _report(exc: MeddataError, args: list[str]) -> int:
    """Print ``exc`` as one error line and its hint (and JSON with --json); its exit code."""
    if _DEBUG["on"] or "--debug" in args:
        traceback.print_exc()  # the exception being handled: for a translated one, its cause
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  → {exc.hint}", err=True)
    if "--json" in args:  # scripts read stdout: the failure is there too, as JSON
        click.echo(json.dumps({"ok": False, "error": exc.message, "hint": exc.hint}))
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) its exit code."""
    args = sys.argv[1:] if argv is None else argv
    warnings.showwarning = _show_warning
    if "--debug" in args[1:]:  # accepted after the command too: `meddata convert ... --debug`
        args = ["--debug", *[a for a in args if a != "--debug"]]
    try:
        result = cli.main(args=args, prog_name="meddata", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = 2
    except click.exceptions.Abort as exc:  # click turns Ctrl-C into Abort
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo(_INTERRUPTED, err=True)
            code = 130
        else:
            click.echo("Aborted.", err=True)
            code = 1
    except MeddataError as exc:
        code = _report(exc, args)
    except KeyboardInterrupt:
        click.echo(_INTERRUPTED, err=True)
        code = 130
    except Exception as exc:  # a bug or an environment failure: one line, no paths or values
        from meddata.storage import storage_error

        known = storage_error(exc)  # no credentials, no network, no bucket, no permission
        if known is not None:
            code = _report(known, args)
        else:
            if _DEBUG["on"] or "--debug" in args:
                traceback.print_exc()
            click.echo(f"error: meddata failed unexpectedly ({type(exc).__name__}).", err=True)
            click.echo(
                "  → Rerun with --debug for the traceback, and report it if it is a bug.", err=True
            )
            code = 1
    if argv is None:
        sys.exit(code)
    return code
