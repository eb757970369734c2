"""The format standard: schema files against OMOP CDM 5.4, and the registry's behaviour."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pytest

from meddata.errors import FormatVersionError, SchemaError
from meddata.schema import all_schemas, get_schema, resolve_ref
from meddata.tensor import TENSOR_TYPE

OMOP_CSV = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "OMOP_CDMv5.4_Field_Level.csv"
)
OMOP_TYPES = {"integer": "int64", "float": "float64", "date": "date32", "datetime": "timestamp[us]"}


def test_all_design_tables_have_schemas() -> None:
    expected = {
        "person",
        "visit_occurrence",
        "condition_occurrence",
        "measurement",
        "observation",
        "death",
        "note",
        "note_nlp",
        "image_occurrence",
        "image",
        "volume",
        "signal",
        "video",
        "pose",
        "samples",
    }
    assert expected <= set(all_schemas())


@pytest.mark.skipif(not OMOP_CSV.exists(), reason=f"OMOP field list not found at {OMOP_CSV}")
def test_omop_schemas_match_cdm_field_list() -> None:
    rows = list(csv.DictReader(OMOP_CSV.open(encoding="utf-8-sig")))
    checked = 0
    for name, schema in all_schemas().items():
        if (
            schema.kind != "omop" or name == "image_occurrence"
        ):  # imaging extension: not in the CDM list
            continue
        fields = [r for r in rows if r["cdmTableName"].lower() == name]
        assert fields, f"{name} is not an OMOP CDM 5.4 table"
        cdm_names = [r["cdmFieldName"].strip('"') for r in fields]
        ours = [c.name for c in schema.columns if not c.extension]
        assert ours == cdm_names, f"{name}: columns differ from the CDM (order and names)"
        for r in fields:
            col = schema.column(r["cdmFieldName"].strip('"'))
            assert col is not None
            cdm_type = r["cdmDatatype"].lower()
            want = "string" if cdm_type.startswith("varchar") else OMOP_TYPES[cdm_type]
            assert col.type == want, f"{name}.{col.name}: {col.type} != {want}"
            assert col.required == (r["isRequired"] == "Yes"), f"{name}.{col.name} required flag"
            checked += 1
        for col in schema.columns:
            if col.extension:
                assert col.name not in cdm_names
    assert checked > 100


def test_image_occurrence_follows_imaging_extension() -> None:
    names = [c.name for c in get_schema("image_occurrence").columns if not c.extension]
    assert names[:2] == ["image_occurrence_id", "person_id"]
    for col in (
        "image_study_uid",
        "image_series_uid",
        "modality_concept_id",
        "anatomic_site_concept_id",
        "wadors_uri",
        "local_path",
    ):
        assert col in names


def test_payload_tables_use_the_tensor_cell() -> None:
    for name, col in [
        ("image", "pixels"),
        ("volume", "voxels"),
        ("signal", "samples"),
        ("video", "frames"),
        ("pose", "keypoints"),
    ]:
        assert get_schema(name).column(col).arrow_type == TENSOR_TYPE  # type: ignore[union-attr]


def test_ids_are_int64_and_primary_keys_not_null() -> None:
    for schema in all_schemas().values():
        for col in schema.columns:
            if col.name.endswith("_id") and col.type.startswith("int"):
                assert col.type == "int64", f"{schema.name}.{col.name}"
        if schema.primary_key:
            pk = schema.column(schema.primary_key)
            assert pk is not None and not pk.nullable


def test_conform_fills_optional_columns_and_keeps_extras() -> None:
    table = pa.table(
        {
            "person_id": [1, 2],
            "gender_concept_id": [8507, 8532],
            "race_concept_id": [0, 0],
            "ethnicity_concept_id": [0, 0],
            "hobby": ["a", "b"],
        }
    )
    out = get_schema("person").conform(table)
    assert out.column_names[:3] == ["person_id", "gender_concept_id", "year_of_birth"]
    assert out.column_names[-1] == "hobby"
    assert out.column("year_of_birth").null_count == 2


def test_conform_refuses_null_primary_key_and_bad_types() -> None:
    with pytest.raises(SchemaError, match="person_id"):
        get_schema("person").conform(pa.table({"person_id": pa.array([None], pa.int64())}))
    with pytest.raises(SchemaError, match="year_of_birth"):
        get_schema("person").conform(pa.table({"person_id": [1], "year_of_birth": ["nineteen"]}))


def test_unknown_major_version_is_refused() -> None:
    assert resolve_ref("omop/person@1").name == "person"
    with pytest.raises(FormatVersionError, match="Upgrade meddata"):
        resolve_ref("omop/person@2")
