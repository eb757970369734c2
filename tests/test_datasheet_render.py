"""Markdown and self-contained HTML rendering; the HTML in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from meddata.dataset import Dataset
from meddata.datasheet import (
    Healthsheet,
    build_healthsheet,
    packaged_sheet,
    render_html,
    render_markdown,
)
from meddata.datasheet.svg import LABEL_COLORS, PALETTE
from tests.test_datasheet_fixtures import mini  # noqa: F401

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def sheet(mini: Dataset) -> Healthsheet:  # noqa: F811
    answers = packaged_sheet("chexpert-plus")
    assert answers is not None
    answers.uses.limitations = "Beware <script>alert(1)</script> and **bold** text."
    return build_healthsheet(mini, answers)


def test_markdown_has_all_sections_statistics_and_unanswered(sheet: Healthsheet) -> None:
    text = render_markdown(sheet)
    assert text.startswith("# Healthsheet: CheXpert Plus")
    numbered = re.findall(r"^## (\d+)\. ", text, flags=re.M)
    assert numbered == [str(i) for i in range(1, 15)]
    assert "### Labels: train" in text and "uncertain (-1)" in text and "missing (null)" in text
    assert "### Demographics: sex" in text and "(missing)" in text
    assert "### Split report: fair" in text and "persons in more than one split: 0" in text
    assert "_Unanswered._" in text and "`collection.irb_approved`" in text


def test_html_is_self_contained_and_escapes_answers(sheet: Healthsheet) -> None:
    page = render_html(sheet)
    assert page.count("<svg") == 3 + 6  # 3 attributes; labels for all + 3 official + 2 fair
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<strong>bold</strong>" in page  # answers are Markdown


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Chromium not installed at {CHROMIUM}")
def test_html_renders_in_headless_chromium_with_plots(sheet: Healthsheet, tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / "datasheet.html"
    page.write_text(render_html(sheet), "utf-8")
    shot = tmp_path / "shot.png"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,1600",
        f"--screenshot={shot}",
        page.as_uri(),
    ]
    subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    image = Image.open(shot).convert("RGB")
    pixels = {rgb for _, rgb in image.getcolors(maxcolors=1 << 24) or []}
    wanted = {PALETTE[0], PALETTE[1], LABEL_COLORS["positive"], LABEL_COLORS["negative"]}
    for color in wanted:
        rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in pixels, f"plot colour {color} not on the page"
