"""Healthsheets: human answers (``datasheets/<name>.yaml``) + statistics computed from the data,
rendered to Markdown and HTML and published as Croissant JSON-LD and a Hugging Face card."""

from meddata.datasheet.croissant import rai_properties, to_croissant
from meddata.datasheet.hf_card import write_hf_card
from meddata.datasheet.model import SECTION_TITLES, Healthsheet, healthsheet_json_schema
from meddata.datasheet.publish import (
    FORMATS,
    build_healthsheet,
    load_healthsheet,
    publish,
    write_dataset_datasheet,
)
from meddata.datasheet.render_html import render_html
from meddata.datasheet.render_md import render_markdown
from meddata.datasheet.sheet import (
    Question,
    load_healthsheet_yaml,
    packaged_sheet,
    parse_healthsheet,
    questions,
    sheet_for_manifest,
    unanswered,
)
from meddata.datasheet.stats import compute_statistics
from meddata.datasheet.stats_model import Statistics

__all__ = [
    "FORMATS",
    "SECTION_TITLES",
    "Healthsheet",
    "Question",
    "Statistics",
    "build_healthsheet",
    "compute_statistics",
    "healthsheet_json_schema",
    "load_healthsheet",
    "load_healthsheet_yaml",
    "packaged_sheet",
    "parse_healthsheet",
    "publish",
    "questions",
    "rai_properties",
    "render_html",
    "render_markdown",
    "sheet_for_manifest",
    "to_croissant",
    "unanswered",
    "write_dataset_datasheet",
    "write_hf_card",
]
