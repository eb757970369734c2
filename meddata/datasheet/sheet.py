"""Reading human answers (``datasheets/<name>.yaml``) and checking a sheet for completeness."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from meddata.datasheet.model import SECTION_TITLES, Healthsheet
from meddata.errors import SchemaError

PACKAGE = "meddata.datasheets"


@dataclass(frozen=True)
class Question:
    """One question of the sheet: where it is, what it asks."""

    path: str
    question: str
    section: str


def parse_healthsheet(data: Any, source: str) -> Healthsheet:
    """Validate answers (a mapping) into a :class:`Healthsheet`; errors name ``section.field``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SchemaError(
            f"{source} must hold a mapping of Healthsheet sections, not {type(data).__name__}.",
            f"Start from a copy of {_installed('meddata.datasheets', 'dicom-folder.yaml')}.",
        )
    if "statistics" in data:
        raise SchemaError(
            f"{source}: statistics are computed from the data and may not be typed by hand.",
            "Remove the `statistics` key.",
        )
    try:
        return Healthsheet.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(err) for err in exc.errors()]
        raise SchemaError(
            f"{source} is not a valid Healthsheet: " + "; ".join(problems),
            "Fix the listed fields (every question is in "
            f"{_installed('meddata.schemas', 'healthsheet.schema.json')}).",
        ) from None


def _installed(package: str, name: str) -> str:
    """Where a file shipped with meddata is on this machine (for hints a user can follow)."""
    return str(resources.files(package).joinpath(name))


def load_healthsheet_yaml(path: str | Path) -> Healthsheet:
    """Read a Healthsheet YAML file (``yaml.safe_load`` only)."""
    text = Path(path).read_text("utf-8")
    return parse_healthsheet(_safe_load(text, str(path)), str(path))


def packaged_sheet(name: str) -> Healthsheet | None:
    """The sheet shipped as ``datasheets/<name>.yaml``, or ``None`` when there is none."""
    resource = resources.files(PACKAGE).joinpath(f"{name}.yaml")
    if not resource.is_file():
        return None
    source = f"datasheets/{name}.yaml"
    return parse_healthsheet(_safe_load(resource.read_text("utf-8"), source), source)


def sheet_for_manifest(manifest: dict[str, Any]) -> Healthsheet:
    """The packaged sheet of the dataset, else of its adapter, else an empty sheet."""
    names = [manifest.get("name"), (manifest.get("adapter") or {}).get("name")]
    for name in names:
        if isinstance(name, str) and name:
            sheet = packaged_sheet(name)
            if sheet is not None:
                return sheet
    return Healthsheet(dataset=str(manifest.get("name") or "") or None)


def questions() -> list[Question]:
    """Every question of the Healthsheet, in order."""
    return [q for q, _ in _walk(Healthsheet())]


def unanswered(sheet: Healthsheet) -> list[Question]:
    """The questions ``sheet`` leaves unanswered (``None``), in order."""
    return [q for q, value in _walk(sheet) if value is None]


def _walk(sheet: Healthsheet) -> list[tuple[Question, Any]]:
    out: list[tuple[Question, Any]] = []
    for key, title, section in sheet.sections():
        out += _walk_model(section, key, title)
    return out


def _walk_model(model: BaseModel, prefix: str, title: str) -> list[tuple[Question, Any]]:
    return [
        (Question(f"{prefix}.{name}", field.description or name, title), getattr(model, name))
        for name, field in type(model).model_fields.items()
    ]


def _safe_load(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{source} is not valid YAML ({exc}).", "Fix the YAML syntax.") from None


def _describe(err: Any) -> str:
    loc = err.get("loc", ())
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        section = str(loc[0]) if loc else ""
        known = _known_keys(section) if len(loc) == 2 else list(SECTION_TITLES)
        hint = f" (known: {', '.join(known)})" if known else ""
        return f"{path or '(root)'}: unknown key{hint}"
    return f"{path or '(root)'}: {err.get('msg', 'invalid')}"


def _known_keys(section: str) -> list[str]:
    field = Healthsheet.model_fields.get(section)
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []
