"""Building a dataset's Healthsheet and writing it: into the dataset, or published to a folder."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meddata import storage
from meddata.dataset import Dataset, check_relative
from meddata.datasheet.croissant import to_croissant
from meddata.datasheet.hf_card import write_hf_card
from meddata.datasheet.model import Healthsheet
from meddata.datasheet.render_html import render_html
from meddata.datasheet.render_md import render_markdown
from meddata.datasheet.sheet import sheet_for_manifest, unanswered
from meddata.datasheet.stats import compute_statistics
from meddata.datasheet.stats_model import Statistics
from meddata.errors import DatasetChangedError, SchemaError, UsageError
from meddata.manifest import read_manifest

#: Where datasets written before the datasheet files were named by content keep the sheet.
HEALTHSHEET_PATH = "datasheet/healthsheet.json"
FORMATS = ("json", "md", "html", "croissant", "hf")
FILE_NAMES = {
    "json": "healthsheet.json",
    "md": "datasheet.md",
    "html": "datasheet.html",
    "croissant": "croissant.json",
    "hf": "README.md",
}


def build_healthsheet(
    ds: Dataset, sheet: Healthsheet | None = None, statistics: Statistics | None = None
) -> Healthsheet:
    """``sheet`` (default: the packaged answers for ``ds``) with ``statistics`` (default:
    computed from ``ds``)."""
    answers = sheet if sheet is not None else sheet_for_manifest(ds.manifest)
    stats = statistics if statistics is not None else compute_statistics(ds)
    return answers.model_copy(update={"dataset": answers.dataset or ds.name, "statistics": stats})


def load_healthsheet(ds: Dataset) -> Healthsheet:
    """The sheet stored in ``ds`` (the file its manifest's ``datasheet.healthsheet`` names), or
    one built now."""
    stored = stored_healthsheet(ds)
    return stored if stored is not None else build_healthsheet(ds)


def stored_healthsheet(ds: Dataset) -> Healthsheet | None:
    """The sheet stored in ``ds``, or ``None`` when it has none."""
    rel = stored_healthsheet_path(ds.manifest)
    path = storage.join(ds.root, rel)
    if not ds.fs.exists(path):
        if rel != stored_healthsheet_path(read_manifest(ds.fs, ds.root, check_schema=False)):
            raise DatasetChangedError(
                f"The datasheet of {ds.name} {ds.version} was replaced after this Dataset was "
                "loaded (a split set was added).",
                "Load the dataset again (meddata.load) to read the current datasheet.",
            )
        return None
    with ds.fs.open(path, "rb") as fh:
        text = fh.read().decode("utf-8")
    try:
        return Healthsheet.model_validate_json(text)
    except ValueError as exc:
        raise SchemaError(
            f"{storage.url_of(ds.fs, path)} is not a valid Healthsheet ({exc}).",
            "Regenerate it with `meddata datasheet PATH --format json -o DIR`.",
        ) from None


def stored_healthsheet_path(manifest: dict[str, Any]) -> str:
    """Where the dataset's Healthsheet JSON is, relative to its root (datasets written before
    the files were named by content keep it at ``datasheet/healthsheet.json``)."""
    entry = manifest.get("datasheet")
    rel = entry.get("healthsheet") if isinstance(entry, dict) else None
    if not isinstance(rel, str) or not rel:
        return HEALTHSHEET_PATH
    check_relative(rel)
    return rel


def to_json(sheet: Healthsheet) -> str:
    """The sheet as indented JSON (what ``healthsheet.json`` holds)."""
    return sheet.model_dump_json(indent=2) + "\n"


def write_dataset_datasheet(
    ds: Dataset, sheet: Healthsheet | None = None, statistics: Statistics | None = None
) -> dict[str, Any]:
    """Write the Healthsheet of ``ds`` into it: ``datasheet/healthsheet-<sha12>.json`` and
    ``datasheet/datasheet-<sha12>.md`` (the first 12 hex digits of each file's SHA-256).

    ``sheet`` gives the answers (default: the packaged ones); ``statistics`` default to those
    computed from ``ds``. As for split sets, a new content gets a new name, so a published file is never
    rewritten: a reader, or a crash, between these writes and the manifest's sees the old
    datasheet or the new one. Returns the manifest entry: paths, their sha256 and the number
    of unanswered questions.
    """
    built = build_healthsheet(ds, sheet, statistics)
    contents = {
        "healthsheet": to_json(built).encode("utf-8"),
        "markdown": render_markdown(built).encode("utf-8"),
    }
    stems = {"healthsheet": ("healthsheet", "json"), "markdown": ("datasheet", "md")}
    files: dict[str, bytes] = {}
    entry: dict[str, Any] = {}
    for key, data in contents.items():
        stem, ext = stems[key]
        rel = f"datasheet/{stem}-{hashlib.sha256(data).hexdigest()[:12]}.{ext}"
        files[rel] = data
        entry[key] = rel
    ds.fs.makedirs(storage.join(ds.root, "datasheet"), exist_ok=True)
    for rel, data in files.items():
        storage.atomic_write_bytes(ds.fs, storage.join(ds.root, rel), data)
    return {
        **entry,
        "sha256": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()},
        "unanswered": len(unanswered(built)),
    }


def resolve_formats(formats: str | Iterable[str]) -> list[str]:
    """Expand ``all`` and check names; order follows :data:`FORMATS`. One name may be given
    as a plain string (``"md"``), or several comma-separated (``"md,html"``)."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    wanted: set[str] = set()
    for name in formats:
        if name == "all":
            wanted.update(FORMATS)
        elif name in FORMATS:
            wanted.add(name)
        else:
            raise UsageError(
                f"Unknown datasheet format {name!r}.",
                f"Choose from {', '.join(FORMATS)} or all.",
            )
    return [f for f in FORMATS if f in wanted]


def publish(
    ds: Dataset,
    formats: str | Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    sheet: Healthsheet | None = None,
    base_url: str | None = None,
) -> dict[str, Path]:
    """Write the requested formats (``json md html croissant hf`` or ``all``) into ``out_dir``.

    ``sheet`` defaults to :func:`load_healthsheet` (computed statistics included); a sheet
    without statistics gets them computed. ``base_url`` is where the Croissant file finds the
    dataset root (default: the relative path from ``out_dir`` for a local dataset, else its URL).
    Returns format → written file.
    """
    chosen = resolve_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sheet = sheet if sheet is not None else load_healthsheet(ds)
    # Statistics are always recomputed: split sets added after conversion must appear.
    sheet = build_healthsheet(ds, sheet)
    written: dict[str, Path] = {}
    for fmt in chosen:
        path = out / FILE_NAMES[fmt]
        if fmt == "hf":
            written[fmt] = write_hf_card(ds, sheet, out)
            continue
        if fmt == "json":
            text = to_json(sheet)
        elif fmt == "md":
            text = render_markdown(sheet)
        elif fmt == "html":
            text = render_html(sheet)
        else:
            base = base_url if base_url is not None else _default_base(ds, out)
            text = json.dumps(to_croissant(ds, sheet, base), indent=2) + "\n"
        path.write_text(text, "utf-8")
        written[fmt] = path
    return written


def _default_base(ds: Dataset, out: Path) -> str:
    if storage.is_local(ds.fs):
        return Path(os.path.relpath(ds.root, out.resolve())).as_posix()
    return ds.path
