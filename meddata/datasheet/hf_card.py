"""A Hugging Face dataset card: ``README.md`` + the samples table as per-split Parquet files.

``datasets.load_dataset(DIR)`` reads ``DIR/data/<split>-00000-of-00001.parquet`` through the
card's ``configs``. Only the ``samples`` table is exported: it is the ML view (ids, labels,
sensitive attributes). Columns Hugging Face cannot type from this card (tensor cells and other
nested columns) are dropped and listed in the card; payloads stay in the meddata dataset.
Samples without an official split go to ``train`` when no split exists at all, otherwise to
``unassigned``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from meddata.dataset import Dataset
from meddata.datasheet.model import Healthsheet
from meddata.datasheet.render_md import CITATION, format_answer, markdown_table
from meddata.datasheet.stat_tables import demographics, labels, overview
from meddata.datasheet.stats import order_splits

_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
_NUMBERS = {
    **{f"{s}int{b}": f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)},
    "halffloat": "float16",
    "float": "float32",
    "double": "float64",
}


def hf_dtype(dtype: pa.DataType) -> str | None:
    """The ``datasets`` Value dtype of an Arrow type (``None`` when not a plain value)."""
    if pa.types.is_large_string(dtype) or pa.types.is_string(dtype):
        return "string"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        return _NUMBERS.get(str(dtype))
    if pa.types.is_date32(dtype):
        return "date32"
    if pa.types.is_timestamp(dtype):
        unit = dtype.unit  # type: ignore[attr-defined]
        tz = dtype.tz  # type: ignore[attr-defined]
        return f"timestamp[{unit}, tz={tz}]" if tz else f"timestamp[{unit}]"
    return None


def split_tables(ds: Dataset) -> tuple[dict[str, pa.Table], list[str]]:
    """The samples table cut by official split, and the columns dropped."""
    table = ds.arrow("samples").to_table()
    keep = [f.name for f in table.schema if hf_dtype(f.type) is not None]
    dropped = [f.name for f in table.schema if f.name not in keep]
    table = table.select(keep)
    table = table.cast(pa.schema([_plain_field(f) for f in table.schema]))
    if "split" not in table.column_names or table.column("split").null_count == table.num_rows:
        return {"train": table}, dropped
    names = order_splits(
        str(n) for n in pc.unique(table.column("split")).to_pylist() if n is not None
    )
    out: dict[str, pa.Table] = {}
    for name in names:
        out[_safe_split(name)] = table.filter(pc.equal(table.column("split"), name))
    unassigned = table.filter(pc.is_null(table.column("split")))
    if unassigned.num_rows:
        out["unassigned"] = unassigned
    return out, dropped


def write_hf_card(ds: Dataset, sheet: Healthsheet, out_dir: Path) -> Path:
    """Write ``out_dir/README.md`` and ``out_dir/data/*.parquet`` (replacing Parquet files
    already there); returns the README path."""
    splits, dropped = split_tables(ds)
    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob("*.parquet"):
        old.unlink()
    files = []
    for name, table in splits.items():
        path = data / f"{name}-00000-of-00001.parquet"
        pq.write_table(table, path)
        files.append({"split": name, "path": f"data/{name}-*.parquet"})
    schema = next(iter(splits.values())).schema
    header: dict[str, Any] = {
        "pretty_name": sheet.general.title or ds.manifest.get("title") or ds.name,
        "tags": ["medical", "meddata", "healthsheet"],
        "size_categories": [_size_category(sum(t.num_rows for t in splits.values()))],
        "configs": [{"config_name": "default", "data_files": files, "default": True}],
        "dataset_info": {
            "features": [{"name": f.name, "dtype": hf_dtype(f.type)} for f in schema],
            "splits": [
                {"name": name, "num_examples": t.num_rows, "num_bytes": t.nbytes}
                for name, t in splits.items()
            ],
        },
    }
    header.update(_license(sheet))
    body = _body(ds, sheet, dropped)
    text = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n" + body
    readme = out_dir / "README.md"
    readme.write_text(text, "utf-8")
    return readme


def _plain_field(field: pa.Field) -> pa.Field:
    if pa.types.is_large_string(field.type):
        return pa.field(field.name, pa.string(), field.nullable)
    return field


def _safe_split(name: str) -> str:
    clean = re.sub(r"\W+", "_", name).strip("_") or "split"
    return clean if _SPLIT_NAME.match(clean) else "split_" + clean


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "10M<n<100M"


def _license(sheet: Healthsheet) -> dict[str, Any]:
    d = sheet.distribution
    if not (d.license or d.license_url):
        return {"license": "unknown"}
    out: dict[str, Any] = {"license": "other"}
    if d.license:
        out["license_name"] = re.sub(r"[^a-z0-9-]+", "-", d.license.lower()).strip("-")[:64]
    if d.license_url:
        out["license_link"] = d.license_url
    return out


def _body(ds: Dataset, sheet: Healthsheet, dropped: list[str]) -> str:
    g, u = sheet.general, sheet.uses
    title = g.title or ds.manifest.get("title") or ds.name
    lines = [f"# {title}", "", format_answer(g.summary), ""]
    lines += [
        f"Converted with [meddata](https://meddata.dev) (`{ds.name}` {ds.version}). The full "
        f"Healthsheet ({CITATION}) is in `healthsheet.json` / `datasheet.html` next to this "
        "card.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("path/to/this/folder")',
        "```",
        "",
        "Labels are `label_<name>` columns: 1 positive, 0 negative, -1 uncertain, null not "
        "mentioned.",
    ]
    if dropped:
        lines.append(
            f"Columns left out of these files (nested or tensor payloads): {', '.join(dropped)}."
        )
    stats = sheet.statistics
    if stats is not None:
        lines += ["", "## Statistics", ""]
        for table in [overview(stats), *demographics(stats), *labels(stats)]:
            if table.rows:
                lines += [markdown_table(table), ""]
    lines += ["## Uses", "", "**Intended uses**", "", format_answer(u.intended_uses), ""]
    lines += ["**Out-of-scope uses**", "", format_answer(u.out_of_scope_uses), ""]
    lines += ["## Bias, risks and limitations", "", format_answer(u.biases), ""]
    lines += [format_answer(u.limitations), ""]
    lines += ["## Access and license", "", format_answer(sheet.inclusion.access_procedure), ""]
    lines += [format_answer(sheet.distribution.license), ""]
    if g.citations:
        lines += ["## Citation", ""] + [f"- {c.text}" for c in g.citations] + [""]
    return "\n".join(lines).rstrip() + "\n"
