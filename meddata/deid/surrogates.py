"""Surrogate values: readable replacements derived from the key, so the same input always gets
the same surrogate (names word by word, ids by value, dates by the person's shift)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from meddata.deid.dates import current_year, date_year, shift_date_text
from meddata.deid.keys import derive, derive_int
from meddata.deid.lexicon import GIVEN_NAMES
from meddata.deid.names import MARKS, fold_word, possessive_base
from meddata.deid.spans import PhiSpan

_FAKE_GIVEN = (
    "Avery Blake Casey Dana Eden Finley Gale Harper Indigo Jules Kendall Lane Morgan Noel "
    "Oakley Parker Quinn Reese Sawyer Tatum Umber Vale Wren Yael Zion Arden Bellamy Carys "
    "Darcy Ellery Emery Hollis Isla Jessamy Keaton Linden Marlow Nova Orla Peyton Rowan Sloane "
    "Tamsin Ursa Verity Winslow Xanthe Yarrow Zephyr"
).split()
_FAKE_FAMILY = (
    "Ashby Barlow Calloway Dempsey Ellwood Fairbairn Gatling Hartwell Ingram Jessop Kingsley "
    "Lockhart Merriweather Northcott Oakhurst Pemberton Quimby Radcliffe Southgate Thackeray "
    "Underhill Vantongeren Whitcombe Yardley Zellweger Abernethy Blakemore Corrigan Draycott "
    "Eastwick Farrow Glenister Holloway Isherwood Jarrow Kilbride Langridge Mallory Nettleton "
    "Orpington Prewitt Rainsford Sherwin Tolliver Upshaw Varley Wetherby Yelland Zouche"
).split()
_FAKE_STREETS = "Alder Beacon Cobble Dune Ember Fern Garnet Heron Ivory Jasper Kestrel Lark".split()
_FAKE_SUFFIX = "Street Avenue Road Lane Drive Court".split()
_FAKE_CITIES = (
    "Northfield Eastbrook Westmere Southvale Millbrook Ashgrove Brightwater Elmstead".split()
)
_FAKE_INSTITUTIONS = (
    "Northfield General Hospital|Eastbrook Medical Center|Westmere Clinic|Southvale Hospital|"
    "Millbrook Imaging Center|Ashgrove Health Center|Brightwater Memorial Hospital|"
    "Elmstead Community Clinic"
).split("|")
# A word of any script, with its combining marks: "Smith", "O'Brien-Jones", "Müller", "张伟",
# "Иван"; a run of marks with no letter before it is a word too (and is dropped).
_WORD_RE = re.compile(rf"(?:[^\W\d_]|[{MARKS}])(?:[^\W\d_]|[{MARKS}'’-])*")
_MARK_RE = re.compile(rf"[{MARKS}]")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _case_like(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like.islower():
        return word.lower()
    return word


def _fake_word(key: bytes, word: str) -> str:
    """The fake of one name word: plain ASCII letters, never the word itself."""
    base = _MARK_RE.sub("", word)
    if not base:
        return ""  # stray combining marks: nothing to keep
    folded = fold_word(word)
    h = derive_int(key, "name", folded)
    if len(base) == 1 and (base.isupper() or base.islower()):  # an initial
        letter = _LETTERS[h % 26]
        if letter.lower() == folded:
            letter = _LETTERS[(h + 1) % 26]
        return letter if base.isupper() else letter.lower()
    pool = _FAKE_GIVEN if folded in GIVEN_NAMES else _FAKE_FAMILY
    fake = pool[h % len(pool)]
    if fake.lower() == folded:
        fake = pool[(h + 1) % len(pool)]
    return _case_like(fake, base)


def name(key: bytes, text: str) -> str:
    """A fake name with the shape of ``text``: each word replaced consistently by its own fake.

    Words of every script are replaced whole (the fake is plain ASCII), so no letter of a
    name like "Żółkiewski", "Иван" or "张伟" survives; separators, digits and spacing are kept.
    """
    return _WORD_RE.sub(lambda m: _fake_possessive(key, m.group(0)), text)


def _fake_possessive(key: bytes, word: str) -> str:
    """The fake of a name word; a possessive ending is kept after the fake of the name, so
    "Quenby's" gets the fake of "Quenby" (and its "'s")."""
    base = possessive_base(word)
    return _fake_word(key, base) + word[len(base) :]


def _shaped_chars(key: bytes, purpose: str, text: str) -> list[str]:
    """The replacement of each character of ``text`` (one entry per character): digits and
    letters of any script become key-derived ASCII ones, combining marks are dropped."""
    stream = b"".join(derive(key, purpose, f"{i}:{text}") for i in range(len(text) // 32 + 1))
    out = []
    for ch, r in zip(text, stream, strict=False):
        if ch.isdigit():
            out.append(str(r % 10))
        elif ch.isalpha():
            letter = _LETTERS[r % 26]
            out.append(letter if ch.isupper() else letter.lower())
        elif ch.isnumeric():  # "½", "Ⅻ"
            out.append(str(r % 10))
        elif unicodedata.category(ch)[0] == "M":
            out.append("")
        else:
            out.append(ch)
    return out


def shaped(key: bytes, purpose: str, text: str) -> str:
    """``text`` with every digit and letter replaced by a key-derived one (same shape)."""
    return "".join(_shaped_chars(key, purpose, text))


_EXT_WORD_RE = re.compile(r"(?<![^\W\d_])(?i:ext|extension|x)(?![^\W\d_])")


def phone(key: bytes, text: str) -> str:
    """A fake phone number with the same layout (the first digit of each group is 2–9)."""
    out = _shaped_chars(key, "phone", text)
    for m in _EXT_WORD_RE.finditer(text):  # "ext. 12" keeps its word, not "maa. 74"
        out[m.start() : m.end()] = list(m.group(0))
    first = True
    for i, ch in enumerate(text):
        if ch.isdigit():
            if first and out[i] in "01":
                out[i] = str(2 + int(out[i]))
            first = False
        else:
            first = True
    return "".join(out)


def email(key: bytes, text: str) -> str:
    """A fake e-mail address on the reserved example.org domain."""
    return f"user{derive_int(key, 'email', text.lower()) % 10**8:08d}@example.org"


def url(key: bytes, text: str) -> str:
    """A fake URL on the reserved example.org domain."""
    return f"https://example.org/r/{derive_int(key, 'url', text) % 16**8:08x}"


def ip(key: bytes, text: str) -> str:
    """An address from the documentation range 192.0.2.0/24."""
    return f"192.0.2.{1 + derive_int(key, 'ip', text) % 254}"


_UNIT_ONLY_RE = re.compile(r"(?i:apt|apartment|suite|ste|unit)\.?[ \t]*#?[ \t]*")


def address(key: bytes, text: str) -> str:
    """A fake street address; an apartment or suite alone ("Apt 5B") keeps its word and gets
    a fake number of the same shape."""
    unit = _UNIT_ONLY_RE.match(text)
    if unit is not None:
        return text[: unit.end()] + shaped(key, "address", text[unit.end() :])
    h = derive_int(key, "address", text.lower())
    street = f"{1 + h % 9899} {_FAKE_STREETS[(h >> 16) % len(_FAKE_STREETS)]} "
    return street + _FAKE_SUFFIX[(h >> 24) % len(_FAKE_SUFFIX)]


def city(key: bytes, text: str) -> str:
    """A fake city name (same case style)."""
    h = derive_int(key, "city", text.lower())
    return _case_like(_FAKE_CITIES[h % len(_FAKE_CITIES)], text)


def institution(key: bytes, text: str) -> str:
    """A fake institution name (same case style)."""
    h = derive_int(key, "institution", text.lower())
    return _case_like(_FAKE_INSTITUTIONS[h % len(_FAKE_INSTITUTIONS)], text)


# A year of birth as the recogniser finds it: the year, perhaps with what follows it.
_BIRTH_YEAR_SPAN_RE = re.compile(r"\d{4}(?:[ \t]*(?:or|to|-|–|/)[ \t]*\d{1,4})?", re.I)
# An old decade as the recogniser finds it ("early 1920s", "mid-’20's"): groups 1 the
# apostrophe of a two-digit decade, 2 its digits, 3 its "s" as written.
_DECADE_RE = re.compile(r"(?:(?:early|mid|late)[- \t]*)?(['’]?)(\d{2,4})(['’]?[sS])", re.I)
# An age decade ("late 90s", "100s", "late nineties"): the aggregate is "90s" ("nineties").
_AGE_DECADE_RE = re.compile(
    r"(?:(?:early|mid|late)[- \t]*)?(?:\d+(['’]?[sS])|(nineties|hundreds))", re.I
)


def age(text: str, reference_year: int | None = None) -> str:
    """Ages over 89 become 90 (the HIPAA Safe Harbor aggregate); a year of birth that implies
    one ("born in 1931") becomes the year of birth of a person aged 90 in ``reference_year``
    (``DeidOptions.reference_year``; this year when None, for a direct call only), a decade
    that does ("the 1920s", "'20s") the decade of that year ("the 1930s", "'30s" in 2025), and
    an age decade ("late 90s", "100s") "90s"."""
    year = current_year() if reference_year is None else reference_year
    if _BIRTH_YEAR_SPAN_RE.fullmatch(text):
        return str(year - 90)  # a year of birth, with what followed it ("1925/26", "1925-03")
    decade = _DECADE_RE.fullmatch(text)
    if decade is not None and (decade.group(1) or len(decade.group(2)) == 4):
        first = (year - 90) // 10 * 10
        digits = f"{first % 100:02d}" if decade.group(1) else str(first)
        return decade.group(1) + digits + decade.group(3)
    age_decade = _AGE_DECADE_RE.fullmatch(text)
    if age_decade is not None:
        words = age_decade.group(2)
        return _case_like("nineties", words) if words else "90" + age_decade.group(1)
    return "90"


def surrogate(
    key: bytes,
    phi_type: str,
    text: str,
    shift_days: int,
    year: int | None = None,
    *,
    reference_year: int | None = None,
) -> str:
    """The replacement of one PHI value of ``phi_type``; ``year`` is the year a date written
    without one is taken to be in (see :func:`surrogates_for`), ``reference_year`` the year
    ages are counted to (see :func:`age`)."""
    if phi_type == "NAME":
        return name(key, text)
    if phi_type == "DATE":
        floor = (current_year() if reference_year is None else reference_year) - 90
        return shift_date_text(text, shift_days, year, min_year=floor)
    if phi_type == "TIME":
        return text
    if phi_type == "PHONE":
        return phone(key, text)
    if phi_type == "EMAIL":
        return email(key, text)
    if phi_type == "URL":
        return url(key, text)
    if phi_type == "IP":
        return ip(key, text)
    if phi_type == "ADDRESS":
        return address(key, text)
    if phi_type == "CITY":
        return city(key, text)
    if phi_type == "INSTITUTION":
        return institution(key, text)
    if phi_type == "AGE":
        return age(text, reference_year)
    if phi_type == "DEVICE" and _MAC_SHAPE_RE.fullmatch(text):
        return mac(key, text)
    return shaped(key, phi_type.lower(), text)


_MAC_SHAPE_RE = re.compile(
    r"[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){2}"
)


def mac(key: bytes, text: str) -> str:
    """A fake network card address of the same layout and case (still hexadecimal)."""
    hexes = iter(derive(key, "mac", text.lower()).hex())
    out = "".join(ch if ch in ":-." else next(hexes) for ch in text)
    return out.upper() if any(ch.isupper() for ch in text) else out


def surrogates_for(
    key: bytes,
    text: str,
    spans: Sequence[PhiSpan],
    shift_days: int,
    *,
    reference_year: int | None = None,
) -> list[str]:
    """The replacement of each of ``spans`` (PHI found in ``text``), in order; a year of birth
    over 89 years before ``reference_year`` is written as that year less 90 (:func:`age`).

    A date written without a year ("Mar 4") is moved as a date of the year of the nearest date
    of the same text that has one ("3/4/21"), so both move by the same days of the calendar.
    """
    years: list[tuple[int, int]] = []  # (offset, year) of the dates with a year
    for span in spans:
        if span.type == "DATE":
            year = date_year(text[span.start : span.end])
            if year is not None:
                years.append((span.start, year))
    out = []
    for span in spans:
        value = text[span.start : span.end]
        year = None
        if span.type == "DATE" and years:
            year = min(years, key=lambda y: abs(y[0] - span.start))[1]
        out.append(
            surrogate(key, span.type, value, shift_days, year, reference_year=reference_year)
        )
    return out
