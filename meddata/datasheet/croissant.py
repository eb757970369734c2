"""Croissant 1.1 JSON-LD: file objects for every Parquet shard (with sha256), a record set per
table with typed fields, and the RAI vocabulary filled from the Healthsheet.

Paths are relative to the JSON-LD file: ``base_url`` is where the dataset root lies as seen
from it ("" when the file sits at the root, "../.." from ``datasheet/``, or an absolute URL).
A table in one shard is read from its FileObject, so it loads from anywhere. A table in several
shards is read through a FileSet (``includes: tables/<t>/*.parquet``); ``mlcroissant`` only
resolves local FileSets below the JSON-LD's folder, so load those from a copy at the root.

A tensor cell (SPEC section 6) is a field with one sub-field per part (``data``, ``codec``,
``dtype``, ``shape``), each read from the struct column by a JSON path; ``data`` is typed
``sc:ImageObject`` when the table holds image files only, so mlcroissant yields the images.
Lists and other nested columns are left out of the record sets (a Croissant field needs a
scalar type); they remain in the Parquet files the FileObjects point at.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from meddata.dataset import Dataset
from meddata.datasheet.model import Creator, Healthsheet
from meddata.datasheet.render_md import format_answer
from meddata.tensor import IMAGE_CODECS

CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
PARQUET = "application/x-parquet"

CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

_RAI: dict[str, Callable[[Healthsheet], Any]] = {
    "rai:dataCollection": lambda s: _join(s.collection.mechanism, s.collection.collectors),
    "rai:dataCollectionType": lambda s: s.collection.collection_types,
    "rai:dataCollectionTimeframe": lambda s: s.collection.timeframe,
    "rai:dataPreprocessingProtocol": lambda s: _join(
        s.preprocessing.preprocessing_steps,
        _labelled("De-identification", s.preprocessing.deidentification_method),
    ),
    "rai:dataAnnotationProtocol": lambda s: s.labelling.labelling_method,
    "rai:annotatorDemographics": lambda s: s.labelling.annotator_demographics,
    "rai:personalSensitiveInformation": lambda s: _join(
        _labelled("Sensitive categories", s.composition.sensitive_categories),
        _labelled("Demographic attributes", s.demographics.subgroups),
        s.composition.confidential_data,
    ),
    "rai:dataBiases": lambda s: _join(
        s.uses.biases, _labelled("Known confounders", s.challenges.confounders)
    ),
    "rai:dataLimitations": lambda s: s.uses.limitations,
    "rai:dataUseCases": lambda s: s.uses.intended_uses,
    "rai:dataSocialImpact": lambda s: s.uses.social_impact,
    "rai:dataReleaseMaintenancePlan": lambda s: s.maintenance.update_policy,
}


def croissant_type(dtype: pa.DataType) -> str | None:
    """The Croissant data type of an Arrow type (``None`` for nested or binary columns)."""
    checks: list[tuple[Callable[[pa.DataType], bool], str]] = [
        (pa.types.is_boolean, "sc:Boolean"),
        (pa.types.is_int8, "cr:Int8"),
        (pa.types.is_int16, "cr:Int16"),
        (pa.types.is_int32, "cr:Int32"),
        (pa.types.is_int64, "cr:Int64"),
        (pa.types.is_uint8, "cr:UInt8"),
        (pa.types.is_uint16, "cr:UInt16"),
        (pa.types.is_uint32, "cr:UInt32"),
        (pa.types.is_uint64, "cr:UInt64"),
        (pa.types.is_float16, "cr:Float16"),
        (pa.types.is_float32, "cr:Float32"),
        (pa.types.is_float64, "cr:Float64"),
        (pa.types.is_string, "sc:Text"),
        (pa.types.is_large_string, "sc:Text"),
        (pa.types.is_date, "sc:Date"),
        (pa.types.is_timestamp, "sc:DateTime"),
    ]
    for check, name in checks:
        if check(dtype):
            return name
    return None


def rai_properties(sheet: Healthsheet) -> dict[str, Any]:
    """The RAI properties the sheet answers (unanswered ones are left out)."""
    out: dict[str, Any] = {}
    for key, get in _RAI.items():
        value = get(sheet)
        if value not in (None, "", []):
            out[key] = value
    return out


def to_croissant(ds: Dataset, sheet: Healthsheet, base_url: str = "") -> dict[str, Any]:
    """The Croissant JSON-LD of ``ds``; shard ``contentUrl`` = ``base_url`` + shard path."""
    general = sheet.general
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": ds.name,
        "description": general.summary or general.title or ds.manifest.get("title") or ds.name,
        "version": _semver(ds.version),
        "url": general.homepage or ds.path,
    }
    published = release_date(sheet.versioning.release_date, ds.version)
    if published:
        doc["datePublished"] = published  # the source release's, as the sheet states it
    if ds.manifest.get("created"):
        doc["dateModified"] = str(ds.manifest["created"])[:10]  # converted by meddata
    license_ = sheet.distribution.license_url or sheet.distribution.license
    if license_:
        doc["license"] = license_
    if general.citations:
        doc["citeAs"] = general.citations[0].text
    if general.creators:
        doc["creator"] = [_creator(c) for c in general.creators]
    if general.keywords:
        doc["keywords"] = general.keywords
    doc.update(rai_properties(sheet))
    distribution: list[dict[str, Any]] = []
    record_sets: list[dict[str, Any]] = []
    for table, entry in ds.manifest["tables"].items():
        shards = entry.get("shards") or []
        if not shards:
            continue
        objects = [_file_object(shard, base_url) for shard in shards]
        distribution += objects
        if len(objects) == 1:
            source_ref = {"fileObject": {"@id": objects[0]["@id"]}}
        else:
            file_set = {
                "@type": "cr:FileSet",
                "@id": f"{table}-shards",
                "name": f"{table}-shards",
                "description": f"The {len(objects)} Parquet shards of table {table}.",
                "encodingFormat": PARQUET,
                "includes": _url(base_url, f"tables/{table}/*.parquet"),
            }
            distribution.append(file_set)
            source_ref = {"fileSet": {"@id": file_set["@id"]}}
        fields = _fields(ds, table, source_ref)
        if fields:
            record_sets.append(
                {
                    "@type": "cr:RecordSet",
                    "@id": table,
                    "name": table,
                    "description": f"Table {table} ({entry.get('schema', '')}).",
                    "field": fields,
                }
            )
    doc["distribution"] = distribution
    doc["recordSet"] = record_sets
    return doc


def release_date(answer: str | None, version: str = "") -> str | None:
    """The ISO 8601 date (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``) of the release in a
    ``versioning.release_date`` answer: the one labelled with ``version`` when the answer lists
    several (``2019-11-14 (2.0.0); 2024-03-12 (2.1.0)``), else the first; ``None`` if it holds
    no such date."""
    if not answer:
        return None
    found = [(m.group(1), m.group(2) or "") for m in _DATE.finditer(answer)]
    if not found:
        return None
    for date, label in found:
        if version and label.strip() == version:
            return date
    return found[0][0]


_DATE = re.compile(r"(?<![\d-])(\d{4}(?:-[01]\d(?:-[0-3]\d)?)?)(?![\d-])(?:\s*\(([^)]*)\))?")


def _creator(creator: str | Creator) -> dict[str, str]:
    if isinstance(creator, str):
        return {"@type": "sc:Person", "name": creator}
    kind = "sc:Organization" if creator.type == "organization" else "sc:Person"
    return {"@type": kind, "name": creator.name}


def _file_object(shard: dict[str, Any], base_url: str) -> dict[str, Any]:
    path = str(shard["path"])
    ident = path.removeprefix("tables/")
    return {
        "@type": "cr:FileObject",
        "@id": ident,
        "name": ident,
        "contentUrl": _url(base_url, path),
        "contentSize": f"{int(shard.get('bytes', 0))} B",
        "encodingFormat": PARQUET,
        "sha256": str(shard["sha256"]),
    }


def _field_id(table: str, column: str, taken: set[str]) -> str:
    """A Croissant ``@id`` for a column: ids may not contain whitespace (CheXpert labels do)."""
    base = table + "/" + re.sub(r"\s+", "_", column)
    field_id, n = base, 1
    while field_id in taken:
        n += 1
        field_id = f"{base}_{n}"
    taken.add(field_id)
    return field_id


def _fields(ds: Dataset, table: str, source_ref: dict[str, Any]) -> list[dict[str, Any]]:
    fields = []
    taken: set[str] = set()
    for column in ds.arrow(table).schema:
        if is_tensor_cell(column.type):
            fields.append(_tensor_field(ds, table, column.name, source_ref, taken))
            continue
        kind = croissant_type(column.type)
        if kind is None:
            continue
        fields.append(
            {
                "@type": "cr:Field",
                "@id": _field_id(table, column.name, taken),
                "name": column.name,
                "dataType": kind,
                "source": {**source_ref, "extract": {"column": column.name}},
            }
        )
    return fields


#: The parts of a tensor cell, with their Croissant types (``data`` is typed per table).
TENSOR_PARTS = {"data": None, "codec": "sc:Text", "dtype": "sc:Text", "shape": "cr:Int32"}


def is_tensor_cell(dtype: pa.DataType) -> bool:
    """True for the tensor cell struct (SPEC section 6: ``data, codec, dtype, shape``)."""
    return pa.types.is_struct(dtype) and [f.name for f in dtype] == list(TENSOR_PARTS)


def _tensor_field(
    ds: Dataset, table: str, column: str, source_ref: dict[str, Any], taken: set[str]
) -> dict[str, Any]:
    """A tensor cell as a field with one sub-field per part, each extracted from the struct
    column by a JSON path. ``data`` is an ``sc:ImageObject`` when every cell of the table is an
    image file (PNG, JPEG, JPEG 2000), an ``sc:VideoObject`` for MP4, else the bytes
    (``sc:Text``, as mlcroissant reads text), decoded with ``codec``, ``dtype`` and ``shape``."""
    parent = _field_id(table, column, taken)
    codecs = _codecs(ds, table, column)
    if codecs and codecs <= set(IMAGE_CODECS):
        data_type = "sc:ImageObject"
    elif codecs == {"mp4"}:
        data_type = "sc:VideoObject"
    else:
        data_type = "sc:Text"
    subfields = []
    for part, kind in TENSOR_PARTS.items():
        subfield: dict[str, Any] = {
            "@type": "cr:Field",
            "@id": f"{parent}/{part}",
            "name": part,
            "dataType": kind or data_type,
            "source": {
                **source_ref,
                "extract": {"column": column},
                "transform": {"jsonPath": part},
            },
        }
        if part == "shape":
            subfield["repeated"] = True
        subfields.append(subfield)
    return {
        "@type": "cr:Field",
        "@id": parent,
        "name": column,
        "description": (
            "A meddata tensor cell (format SPEC section 6): data holds the "
            f"{'/'.join(sorted(codecs)) or 'encoded'} bytes, and dtype and shape describe "
            "the decoded array (meddata.tensor.decode decodes a cell)."
        ),
        "subField": subfields,
    }


def _codecs(ds: Dataset, table: str, column: str) -> set[str]:
    """The codecs used in a tensor column (reads only that leaf of the struct)."""
    import pyarrow.compute as pc

    codes = ds.arrow(table).to_table(columns={"codec": pc.field(column, "codec")})["codec"]
    return {str(c) for c in pc.unique(codes).to_pylist() if c is not None}


def _url(base: str, path: str) -> str:
    if not base:
        return path
    return base.rstrip("/") + "/" + path if "://" in base else posixpath.join(base, path)


def _semver(version: str) -> str:
    parts = version.split(".")
    if all(p.isdigit() for p in parts) and 1 <= len(parts) <= 3:
        return ".".join(parts + ["0"] * (3 - len(parts)))
    return version


def _join(*parts: str | None) -> str | None:
    present = [p.strip() for p in parts if p]
    return "\n\n".join(present) or None


def _labelled(label: str, value: Any) -> str | None:
    if value is None:
        return None
    return f"{label}:\n{format_answer(value)}"
