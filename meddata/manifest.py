"""The manifest (``meddata.json``): the single publish point of a dataset version."""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import fsspec

from meddata import storage
from meddata.errors import FormatVersionError, SchemaError

FORMAT = "meddata"
FORMAT_VERSION = "1.0"
MANIFEST_NAME = "meddata.json"

Manifest = dict[str, Any]


@cache
def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of the manifest (``schemas/manifest.schema.json``)."""
    text = resources.files("meddata.schemas").joinpath("manifest.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def check_format_version(manifest: Manifest, where: str) -> None:
    """Refuse manifests of another format or of a major version this meddata does not know."""
    if manifest.get("format") != FORMAT:
        raise SchemaError(
            f"{where} is not a meddata manifest.", "Point meddata at a dataset directory."
        )
    version = str(manifest.get("format_version", ""))
    major = version.split(".", 1)[0]
    if major != FORMAT_VERSION.split(".", 1)[0]:
        raise FormatVersionError(
            f"Dataset at {where} uses meddata format {version or '?'}, but this meddata reads "
            f"format {FORMAT_VERSION.split('.')[0]}.x.",
            "Upgrade meddata (pip install -U meddata) to read it.",
        )


def schema_problems(manifest: Manifest) -> list[str]:
    """Every way ``manifest`` breaks the manifest JSON Schema, as readable lines. Formats the
    schema names (``created``: ``date-time``) are checked too."""
    import jsonschema  # ~0.05 s: only when a manifest is checked

    validator = jsonschema.Draft202012Validator(
        manifest_json_schema(), format_checker=_format_checker()
    )
    return [
        f"manifest {'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    ]


#: RFC 3339 ``date-time`` (JSON Schema's ``format: date-time``): a date, ``T``, a time and an
#: offset (``Z`` or ``+HH:MM``).
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def is_date_time(value: object) -> bool:
    """True for an RFC 3339 date-time string with a real date and time (non-strings pass: the
    schema's ``type`` reports them)."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.match(value):
        return False
    try:
        dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # 2026-02-30, 25:00...
        return False
    return True


@cache
def _format_checker() -> Any:
    """The formats the manifest schema uses, checked without optional packages (jsonschema's
    own ``date-time`` check silently passes when ``rfc3339-validator`` is not installed)."""
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time")(is_date_time)
    return checker


def read_manifest(
    fs: fsspec.AbstractFileSystem, root: str, *, check_schema: bool = True
) -> Manifest:
    """Read and version-check the manifest of the dataset version at ``root``; with
    ``check_schema`` (the default) a manifest that breaks its JSON Schema is refused too."""
    path = storage.join(root, MANIFEST_NAME)
    where = storage.url_of(fs, path)
    hint = "Run `meddata validate` on it; re-run the conversion, or restore meddata.json."
    try:
        with fs.open(path, "rb") as fh:
            manifest: Manifest = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"The manifest at {where} is not valid UTF-8 JSON.", hint) from exc
    except OSError as exc:  # a folder where the file should be, permissions...
        raise SchemaError(
            f"The manifest at {where} cannot be read ({type(exc).__name__}).", hint
        ) from exc
    if not isinstance(manifest, dict):
        raise SchemaError(f"The manifest at {where} is not a JSON object.", hint)
    check_format_version(manifest, storage.url_of(fs, root))
    if check_schema:
        problems = schema_problems(manifest)
        if problems:
            raise SchemaError(
                f"The manifest at {where} is invalid: {'; '.join(problems[:3])}.", hint
            )
    return manifest


def write_manifest(fs: fsspec.AbstractFileSystem, root: str, manifest: Manifest) -> None:
    """Validate and atomically publish ``manifest`` as ``root/meddata.json``."""
    problems = schema_problems(manifest)
    if problems:
        raise SchemaError("Refusing to publish an invalid manifest: " + "; ".join(problems[:3]))
    data = json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8")
    storage.atomic_write_bytes(fs, storage.join(root, MANIFEST_NAME), data)
