"""Shift a date written in text by a number of days, keeping how it was written.

Handles numeric (M/D/Y, D.M.Y, Y-M-D, YYYYMMDD, M/D, M/YYYY), month-name (full, abbreviated,
any case, with weekday and ordinal), partial (month + year, month + day, day only) and
same-month range ("March 3-5, 2021") forms. Text it cannot parse becomes ``[DATE]``.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

PLACEHOLDER = "[DATE]"
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_TOKEN_RE = re.compile(r"\d+|[A-Za-z]+")
_REFERENCE_YEAR = 2000  # a leap year, used when the text has no year


def _month_of(word: str) -> int | None:
    low = word.lower()
    if len(low) < 3:
        return None
    for i, name in enumerate(_MONTHS):
        if name.startswith(low) or (low == "sept" and i == 8):
            return i + 1
    return None


def _is_weekday(word: str) -> bool:
    low = word.lower()
    return len(low) >= 3 and any(d.startswith(low[:3]) for d in _WEEKDAYS)


def _styled(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like.islower():
        return word.lower()
    return word.capitalize()


def _ordinal(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


class _Parsed:
    def __init__(self) -> None:
        self.year: tuple[int, int] | None = None  # token index, value
        self.month: tuple[int, int] | None = None
        self.days: list[tuple[int, int]] = []
        self.weekday: int | None = None
        self.ordinals: dict[int, int] = {}  # day token index -> suffix token index


def _parse(tokens: list[re.Match[str]], text: str) -> _Parsed | None:
    p = _Parsed()
    nums: list[int] = []
    for i, t in enumerate(tokens):
        s = t.group(0)
        if s.isdigit():
            nums.append(i)
        elif _month_of(s) is not None and p.month is None:
            p.month = (i, _month_of(s) or 0)
        elif _is_weekday(s):
            p.weekday = i
        elif s.lower() in ("st", "nd", "rd", "th") and i > 0 and tokens[i - 1].group(0).isdigit():
            p.ordinals[i - 1] = i
        elif s.lower() in ("of", "to", "through", "the"):
            continue
        else:
            return None
    if p.month is not None:
        has_year4 = any(len(tokens[i].group(0)) == 4 for i in nums)
        for i in nums:
            s = tokens[i].group(0)
            if len(s) == 4:
                p.year = (i, int(s))
            elif (
                len(s) == 2
                and not has_year4
                and p.year is None
                and (
                    (p.days and p.days[0][0] < p.month[0] < i)
                    or text[max(0, tokens[i].start() - 1) : tokens[i].start()] in ("'", "’")
                )
            ):
                p.year = (i, 2000 + int(s) if int(s) < 50 else 1900 + int(s))
            elif len(s) <= 2 and len(p.days) < 2:
                p.days.append((i, int(s)))
            else:
                return None
        return p
    values = [tokens[i].group(0) for i in nums]
    if len(values) == 1 and len(values[0]) == 8:
        s = values[0]
        p.year, p.month, p.days = (
            (nums[0], int(s[:4])),
            (nums[0], int(s[4:6])),
            [(nums[0], int(s[6:]))],
        )
        return p
    if len(values) == 1 and nums[0] in p.ordinals:
        p.days = [(nums[0], int(values[0]))]
        return p
    if len(values) == 3:
        a, b, c = nums
        if len(values[0]) == 4:
            y, m, d = a, b, c
        elif "." in text or int(values[0]) > 12:
            d, m, y = a, b, c
        else:
            m, d, y = a, b, c
        yv = int(tokens[y].group(0))
        if len(tokens[y].group(0)) == 2:
            yv += 2000 if yv < 50 else 1900
        p.year, p.month, p.days = (
            (y, yv),
            (m, int(tokens[m].group(0))),
            [(d, int(tokens[d].group(0)))],
        )
        return p
    if len(values) == 2:
        if len(values[1]) == 4:
            p.month, p.year = (nums[0], int(values[0])), (nums[1], int(values[1]))
        elif int(values[0]) > 12:  # 14/3: day first
            p.days, p.month = [(nums[0], int(values[0]))], (nums[1], int(values[1]))
        else:
            p.month, p.days = (nums[0], int(values[0])), [(nums[1], int(values[1]))]
        return p
    return None


def shift_date_text(text: str, days: int) -> str:
    """``text`` (one date as written) moved ``days`` days back, in the same format."""
    tokens = list(_TOKEN_RE.finditer(text))
    p = _parse(tokens, text)
    if p is None:
        return PLACEHOLDER
    month = p.month[1] if p.month else 1
    year = p.year[1] if p.year else _REFERENCE_YEAR
    day_values = [d for _, d in p.days] or [15]
    try:
        first = date(year, month, day_values[0])
    except ValueError:
        return PLACEHOLDER
    shifted = first - timedelta(days=days)
    numbers = [t.group(0) for t in tokens if t.group(0).isdigit()]
    zero_style = any(len(n) == 2 and n[0] == "0" for n in numbers) or (
        len(numbers) == 3 and len(numbers[0]) == 4
    )
    replacements: dict[int, str] = {}
    if p.year:
        orig = tokens[p.year[0]].group(0)
        replacements[p.year[0]] = (
            str(shifted.year) if len(orig) == 4 else f"{shifted.year % 100:02d}"
        )
    if p.month and p.month[0] not in replacements:
        orig = tokens[p.month[0]].group(0)
        if orig.isdigit():
            replacements[p.month[0]] = f"{shifted.month:02d}" if zero_style else str(shifted.month)
        else:
            name = _MONTHS[shifted.month - 1]
            short = len(orig) <= 4 and orig.lower() not in ("june", "july")
            name = (
                (name[:4] if name == "september" and orig.lower() == "sept" else name[:3])
                if short
                else name
            )
            replacements[p.month[0]] = _styled(name, orig)
    elif p.month and len(tokens[p.month[0]].group(0)) == 8:
        replacements[p.month[0]] = shifted.strftime("%Y%m%d")
        return _render(text, tokens, replacements)
    for k, (i, value) in enumerate(p.days):
        orig = tokens[i].group(0)
        if k == 0:
            new_day = shifted.day
        else:
            new_day = (first + timedelta(days=value - day_values[0]) - timedelta(days=days)).day
        replacements[i] = f"{new_day:02d}" if zero_style else str(new_day)
        if i in p.ordinals:
            suffix = tokens[p.ordinals[i]].group(0)
            replacements[p.ordinals[i]] = _styled(_ordinal(new_day), suffix)
    if p.weekday is not None:
        orig = tokens[p.weekday].group(0)
        name = _WEEKDAYS[shifted.weekday()]
        replacements[p.weekday] = _styled(name if len(orig) > 3 else name[:3], orig)
    return _render(text, tokens, replacements)


def _render(text: str, tokens: list[re.Match[str]], replacements: dict[int, str]) -> str:
    out = []
    pos = 0
    for i, t in enumerate(tokens):
        if i in replacements:
            out.append(text[pos : t.start()])
            out.append(replacements[i])
            pos = t.end()
    out.append(text[pos:])
    return "".join(out)
