"""Small, dependency-free SVG charts (stacked horizontal bars) for the HTML datasheet."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

#: Okabe-Ito palette (readable with colour-vision deficiencies), then greys.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#DDDDDD",
)
MISSING_COLOR = "#BBBBBB"
LABEL_COLORS = {
    "positive": "#D55E00",
    "negative": "#0072B2",
    "uncertain": "#E69F00",
    "missing": MISSING_COLOR,
}

_ROW_H = 22
_LABEL_W = 130
_BAR_W = 250
_PAD = 8


def stacked_bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    categories: Sequence[str],
    colors: Sequence[str] | None = None,
) -> str:
    """An SVG of one stacked bar per row; values are shares (0..1) of each category."""
    colors = list(colors or [PALETTE[i % len(PALETTE)] for i in range(len(categories))])
    legend_rows = _legend_layout(categories)
    height = 28 + len(rows) * _ROW_H + 10 + len(legend_rows) * 18 + _PAD
    width = _LABEL_W + _BAR_W + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_PAD}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    for i, (label, shares) in enumerate(rows):
        y = 28 + i * _ROW_H
        parts.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 15}" text-anchor="end" class="chart-label">'
            f"{escape(_short(label))}</text>"
        )
        parts.append(
            f'<rect x="{_LABEL_W}" y="{y + 2}" width="{_BAR_W}" height="{_ROW_H - 6}" '
            'fill="#f3f3f3"/>'
        )
        x = float(_LABEL_W)
        for j, share in enumerate(shares):
            w = max(0.0, min(1.0, float(share))) * _BAR_W
            if w <= 0:
                continue
            tip = f"{label} · {categories[j]}: {100 * share:.1f}%"
            parts.append(
                f'<rect x="{x:.2f}" y="{y + 2}" width="{w:.2f}" height="{_ROW_H - 6}" '
                f'fill="{colors[j]}"><title>{escape(tip)}</title></rect>'
            )
            x += w
        total = sum(shares)
        parts.append(
            f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 15}" class="chart-label">'
            f"{100 * total:.0f}%</text>"
        )
    y0 = 28 + len(rows) * _ROW_H + 10
    for r, line in enumerate(legend_rows):
        x = float(_PAD)
        for j, name, width_px in line:
            y = y0 + r * 18
            parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colors[j]}"/>')
            parts.append(
                f'<text x="{x + 16}" y="{y + 10}" class="chart-legend">{escape(name)}</text>'
            )
            x += width_px
    parts.append("</svg>")
    return "".join(parts)


def _legend_layout(categories: Sequence[str]) -> list[list[tuple[int, str, float]]]:
    lines: list[list[tuple[int, str, float]]] = [[]]
    used = 0.0
    limit = _LABEL_W + _BAR_W + 40
    for j, name in enumerate(categories):
        shown = _short(name)
        w = 24 + 7 * len(shown)
        if lines[-1] and used + w > limit:
            lines.append([])
            used = 0.0
        lines[-1].append((j, shown, w))
        used += w
    return [line for line in lines if line]


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
