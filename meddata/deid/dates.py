"""Shift a date written in text by a number of days, keeping how it was written.

Handles numeric (M/D/Y, D.M.Y, Y-M-D, YYYYMMDD, M/D, M/YYYY), month-name (full, abbreviated,
any case, with weekday and ordinal), partial (month + year, month + day, day only) and
same-month range ("March 3-5, 2021") forms. Text it cannot parse becomes ``[DATE]``.
A date moved before ``min_year`` is written in that year (HIPAA Safe Harbor: a date that
tells an age over 89 is aggregated, see :func:`shift_date_text`).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import TypeVar

PLACEHOLDER = "[DATE]"
_D = TypeVar("_D", date, datetime)
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_TOKEN_RE = re.compile(r"\d+|[A-Za-z]+")
# The year of a date written without one, when the note gives none: a common year after a common
# year, so that a shift of up to a year crosses no 29 February and a yearless date moves by the
# same day of the year as a dated one (in three years out of four; with the note's own year, in
# all). "29 February" takes the leap year after it.
_REFERENCE_YEAR = 2023
_REFERENCE_LEAP_YEAR = 2024

# Holidays, as a regex (used by the recogniser) and by the rule that gives their date in a year.
HOLIDAY = (
    r"(?:christmas(?:[ \t]+(?:day|eve))?|new[ \t]+year(?:['’]?s)?(?:[ \t]+(?:day|eve))?|"
    r"thanksgiving(?:[ \t]+day)?|easter(?:[ \t]+(?:sunday|monday))?|good[ \t]+friday|halloween|"
    r"independence[ \t]+day|fourth[ \t]+of[ \t]+july|memorial[ \t]+day|labou?r[ \t]+day|"
    r"veterans['’]?[ \t]+day|valentine(?:['’]?s)?[ \t]+day|mother(?:['’]?s)?[ \t]+day|"
    r"father(?:['’]?s)?[ \t]+day|st\.?[ \t]+patrick(?:['’]?s)?[ \t]+day|"
    r"(?:martin[ \t]+luther[ \t]+king(?:,?[ \t]+jr\.?)?|mlk)[ \t]+day|"
    r"presidents['’]?[ \t]+day|juneteenth|columbus[ \t]+day|boxing[ \t]+day)"
)
_HOLIDAY_TEXT_RE = re.compile(
    rf"({HOLIDAY})(?:,?[ \t]+(?:of[ \t]+)?|[ \t]+(?=['’]))(\d{{4}}|['’]\d\d)", re.IGNORECASE
)


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


def current_year() -> int:
    """This year, by the clock: the default of ``DeidOptions.reference_year`` (read once, when
    the options are made, and recorded with them). De-identification itself never reads the
    clock: it counts ages to the options' reference year."""
    return date.today().year


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The ``n``-th ``weekday`` (0 = Monday) of a month; the last one when ``n`` is -1."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    lt = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * lt) // 451
    month, day = divmod(h + lt - 7 * m + 114, 31)
    return date(year, month, day + 1)


def holiday_date(name: str, year: int) -> date | None:
    """The date of a US holiday (as written: "Christmas Day", "Thanksgiving") in ``year``."""
    key = " ".join(name.lower().replace("’", "'").replace("'", "").replace(".", "").split())
    fixed = {
        "christmas": (12, 25), "christmas day": (12, 25), "christmas eve": (12, 24),
        "new year": (1, 1), "new years": (1, 1), "new year day": (1, 1), "new years day": (1, 1),
        "new year eve": (12, 31), "new years eve": (12, 31), "halloween": (10, 31),
        "independence day": (7, 4), "fourth of july": (7, 4), "veterans day": (11, 11),
        "valentine day": (2, 14), "valentines day": (2, 14), "st patrick day": (3, 17),
        "st patricks day": (3, 17), "juneteenth": (6, 19), "boxing day": (12, 26),
    }  # fmt: skip
    if key in fixed:
        return date(year, *fixed[key])
    if key.startswith("easter") or key == "good friday":
        offset = {"easter monday": 1, "good friday": -2}.get(key, 0)
        return _easter(year) + timedelta(days=offset)
    rules = {
        "thanksgiving": (11, 3, 4), "memorial": (5, 0, -1), "labor": (9, 0, 1),
        "labour": (9, 0, 1), "mother": (5, 6, 2), "mothers": (5, 6, 2), "father": (6, 6, 3),
        "fathers": (6, 6, 3), "presidents": (2, 0, 3), "columbus": (10, 0, 2),
        "martin": (1, 0, 3), "mlk": (1, 0, 3),
    }  # fmt: skip
    rule = rules.get(key.split()[0])
    return _nth_weekday(year, *rule) if rule else None


def _shift_holiday(text: str, days: int, min_year: int | None = None) -> str | None:
    """ "Christmas Day 2020" moved ``days`` back, written as a date ("November 3, 2020")."""
    m = _HOLIDAY_TEXT_RE.fullmatch(text.strip())
    if m is None:
        return None
    digits = m.group(2).lstrip("'’")
    year = int(digits) if len(digits) == 4 else _century(int(digits))
    day = holiday_date(m.group(1), year)
    if day is None:
        return None
    shifted = aggregated(day - timedelta(days=days), min_year)
    out = f"{_MONTHS[shifted.month - 1].capitalize()} {shifted.day}, {shifted.year}"
    return out.upper() if m.group(1).isupper() else out


def date_year(text: str) -> int | None:
    """The year written in ``text`` (one date as written), or None when it has none."""
    m = _HOLIDAY_TEXT_RE.fullmatch(text.strip())
    if m is not None:
        digits = m.group(2).lstrip("'’")
        return int(digits) if len(digits) == 4 else _century(int(digits))
    p = _parse(list(_TOKEN_RE.finditer(text)), text)
    return p.year[1] if p is not None and p.year is not None else None


def _century(year2: int) -> int:
    return 2000 + year2 if year2 < 50 else 1900 + year2


def aggregated(day: _D, min_year: int | None) -> _D:
    """``day``, or when it falls before ``min_year`` the same day of ``min_year`` (28 February
    for the 29th): the year of a date that tells an age over 89 is the reference year less 90,
    as a year of birth's is (HIPAA Safe Harbor's "90 or older")."""
    if min_year is None or day.year >= min_year:
        return day
    if (day.month, day.day) == (2, 29) and not _leap(min_year):
        return day.replace(year=min_year, day=28)
    return day.replace(year=min_year)


def shift_date_text(
    text: str, days: int, year: int | None = None, *, min_year: int | None = None
) -> str:
    """``text`` (one date as written) moved ``days`` days back, in the same format; a holiday
    with its year becomes the date it fell on, moved back ("Christmas Day 2020").

    ``year`` is the year of a date written without one (the year of the note's other dates), so
    that "Mar 4" moves like "3/4/21" in the same note; without it, a common year is used.
    A date written with a year that moves before ``min_year`` is written in ``min_year`` (see
    :func:`aggregated`); a date without a year shows none and moves as it would otherwise.
    """
    holiday = _shift_holiday(text, days, min_year)
    if holiday is not None:
        return holiday
    tokens = list(_TOKEN_RE.finditer(text))
    p = _parse(tokens, text)
    if p is None:
        return PLACEHOLDER
    month = p.month[1] if p.month else 1
    day_values = [d for _, d in p.days] or [15]
    leap_day = (month, day_values[0]) == (2, 29)
    if p.year:
        year = p.year[1]
    elif year is None or (leap_day and not _leap(year)):
        year = _REFERENCE_LEAP_YEAR if leap_day else _REFERENCE_YEAR
    try:
        first = date(year, month, day_values[0])
    except ValueError:
        return PLACEHOLDER
    shifted = first - timedelta(days=days)
    if p.year:
        shifted = aggregated(shifted, min_year)
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
