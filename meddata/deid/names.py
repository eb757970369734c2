"""Person-name detection from context (titles, signatures, field labels, credentials, relatives),
a small lexicon of common names, DICOM-style ``LAST^FIRST`` values and typist initials; every name
found is then looked for again in the rest of the document."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from meddata.deid.lexicon import (
    AMBIGUOUS,
    CLINICAL_WORDS,
    CREDENTIALS,
    GIVEN_NAMES,
    NOT_NAMES,
    SURNAMES,
    TITLES,
)
from meddata.deid.spans import PhiSpan

_I = re.IGNORECASE


def _mark_class(bmp_only: bool = False) -> str:
    """The combining marks (categories Mn, Mc, Me) as the body of a regex character class.

    ``\\w`` does not match them, so without them a decomposed "José" (e + U+0301) or a
    Devanagari name ("अमित", with a vowel sign) would end at its first mark and leak the rest.
    """
    category = unicodedata.category
    codes = [
        c for c in range(0x300, 0x10000 if bmp_only else 0x20000) if category(chr(c))[0] == "M"
    ]
    if not bmp_only:
        codes += range(0xE0100, 0xE01F0)  # variation selectors supplement
    parts: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(chr(start) if start == prev else f"{chr(start)}-{chr(prev)}")
        start = prev = code
    return "".join(parts)


# Combining marks: part of a word wherever a letter may continue it.
MARKS = _mark_class()
# Those of the BMP only: a class ``re`` tests in one look-up (one with characters beyond the BMP
# is tested range by range), for the look-behinds tried at many positions.
MARKS_BMP = _mark_class(bmp_only=True)
# A letter of any script (names are not all ASCII: "Núñez", "Müller").
_L = r"[^\W\d_]"
_LM = rf"(?:[^\W\d_]|[{MARKS}])"
_LA = rf"(?:[^\W\d_]|[{MARKS}'’])"
_LAH = rf"(?:[^\W\d_]|[{MARKS}'’-])"
_TOKEN_RE = re.compile(rf"[ \t]*(?:(?P<word>{_L}{_LA}*(?:-{_L}{_LA}*)*)(?P<dot>\.)?|(?P<sep>[,^]))")
_PARTICLE_BEFORE_RE = re.compile(r"(?<![^\W\d_])([^\W\d_]{2,5}) $")
_PARTICLES = frozenset("van der den de la le du von da di del della bin al el st saint".split())
_CREDENTIAL_SET = frozenset(c.lower().replace(".", "") for c in CREDENTIALS)
_CRED_ALT = "|".join(re.escape(c) for c in sorted(CREDENTIALS, key=len, reverse=True))

# A cue word starts where no letter, digit or combining mark comes before it: ``\b`` would also
# start one right after the accent of a decomposed "José" ("Jose\u0301son").
_WB = rf"\b(?<![{MARKS_BMP}])"
_WE = rf"(?![\w{MARKS}])"
_TITLE_RE = re.compile(
    rf"(?=[dmpDMP]){_WB}(?:dr|doctor|mr|mrs|ms|miss|prof|professor|mx){_WE}\.?[ \t]+", _I
)
_CUE_RE = re.compile(
    rf"(?=[dserpaictvgcnfhomDSERPAICTVGCNFHOM]){_WB}"
    r"(?:(?:dictated|signed|e-signed|read|reviewed|interpreted|approved|verified|transcribed|"
    r"performed|examined|authored|entered|reported|discussed|communicated|called|paged|notified|"
    r"consulted|referred|seen|relayed|given|conveyed|sent|d/w)[ \t]+(?:by|with|to)"
    rf"{_WE}[ \t]*:?"
    r"|(?:patient(?:'s)?[ \t]+name|pt[ \t]+name|name|patient|pt|attending(?:[ \t]+(?:physician|"
    r"radiologist))?|referring(?:[ \t]+(?:physician|provider|md|doctor|clinician))?|ordering"
    r"(?:[ \t]+(?:physician|provider|md))?|physician|provider|radiologist|resident|fellow|"
    r"technologist|author|signed|cc|pcp|primary[ \t]+care(?:[ \t]+(?:physician|provider))?|"
    r"surgeon|emergency[ \t]+contact|contact|guardian|nok|next[ \t]+of[ \t]+kin|interpreter|"
    r"transcriptionist|scribe|signature|radiologist[ \t]+signature)(?:[ \t]*[:#]|[ \t]+-[ \t])"
    r"|finali[sz]ed(?:[ \t]+on[ \t]+[\d/.-]{6,10})?(?:[ \t]+at[ \t]+[\d:]{3,8}(?:[ \t]*[ap]m)?)?"
    rf"[ \t]+by{_WE}[ \t]*:?"
    rf"|(?:hcp|poa|proxy)[ \t]+is{_WE}|to[ \t]+see{_WE}|seen[ \t]+by{_WE})[ \t]*",
    _I,
)
# Cues after which only a capitalised word is taken ("d/w Okonkwo", "nurse Ngozi Adeyemi").
_CAP_CUE_RE = re.compile(
    rf"(?=[dwtnDWTN]){_WB}"
    r"(?:(?i:d/w|dw|w/)[ \t]+(?:(?i:the[ \t]+)?(?i:referring|attending|ordering|"
    r"covering|on-call|primary)[ \t]+(?:(?i:physician|provider|md|doctor|radiologist|team)[ \t]+)?)?"
    r"|(?i:tech|technologist|nurse)[ \t]+|(?:RN|NP)[ \t]+)"
)
_SIGN_CUE_RE = re.compile(r"(?m)^[ \t]*(?:--+|/s/|(?i:signed))[ \t]*:?[ \t]*")
_RELATIVE_RE = re.compile(
    rf"(?=[dswhmfpngcaubDSWHMFPNGCAUB]){_WB}"
    r"(?:daughter|son|wife|husband|mother|father|sister|brother|spouse|partner|niece|nephew|"
    r"grandson|granddaughter|caregiver|neighbor|fiance|fiancee|aunt|uncle|cousin|"
    r"girlfriend|boyfriend)(?:'s[ \t]+name[ \t]+is|,)?[ \t]+",
    _I,
)
_CREDENTIAL_RE = re.compile(rf"(?=[A-Z])(?<![A-Za-z])(?:{_CRED_ALT})(?![A-Za-z])")
_CRED_LEAD_RE = re.compile(r"(?:,[ \t]*|[ \t]+)$")
_CARET_RE = re.compile(rf"(?<!\w){_L}{_LAH}*(?:\^{_L}(?:[^\W\d_]|[{MARKS}'’ -])*)+")
_INITIALS_RE = re.compile(
    rf"(?m)^[ \t]*((?:{_L}[{MARKS_BMP}]*){{2,3}})/((?:{_L}[{MARKS_BMP}]*){{2,3}})[ \t]*$"
)
# "J. Müller", "Ö. Ü. Kowalczyk": capitals and a capitalised surname, checked in code (re has
# no \p{Lu}); starts at an ASCII capital or any non-ASCII character, to skip fast.
_INITIAL_SURNAME_RE = re.compile(
    rf"(?=[A-Z\u00c0-\U0010ffff])(?<![\w{MARKS_BMP}])({_L})[{MARKS_BMP}]*\.[ \t]?"
    rf"(?:({_L})[{MARKS}]*\.[ \t]?)?({_L}[{MARKS}]*{_L}{_LAH}*{_LM})(?![\w{MARKS}])"
)
# Anchored at the start of a run of blanks, so a long run is scanned once, not once per blank.
_SUBJECT_RE = re.compile(r"(?<![ \t])[ \t]+is[ \t]+an?[ \t]+(?=\d|age)", _I)
_SUBJECT_WORD_RE = re.compile(rf"(?<!\w)({_L}{_LAH}+)$")
# Starts at an ASCII capital or any non-ASCII letter (checked by _capitalised): fast to skip.
_ANY_WORD_RE = re.compile(
    rf"(?=[A-Z\u00c0-\U0010ffff])(?<!\w){_L}{_LA}*(?:-{_L}{_LM}*)?(?![\w{MARKS}])"
)
_BACK_NAME_RE = re.compile(rf"((?:{_L}[\w{MARKS}'’-]*\.?[ \t]+){{0,3}}{_L}[\w{MARKS}'’-]*)[ \t]*$")


def _is_name_word(word: str, allow_lower: bool) -> bool:
    low = word.lower()
    if low in NOT_NAMES or low in _CREDENTIAL_SET:
        return False
    if word[0].isupper():
        return True
    # One letter of a script without case ("张 伟") is a name; one lower-case letter is not.
    return allow_lower and (len(word) > 1 or not word.islower())


def take_name(text: str, pos: int, allow_lower: bool, max_words: int = 4) -> int | None:
    """End offset of a person name that starts at ``pos`` (after spaces), or None."""
    end: int | None = None
    words = 0
    pending_sep = False
    skipped_title = False
    first_lower = False
    while words < max_words:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            break
        if m.group("sep"):
            if words != 1 or pending_sep:
                break
            pending_sep = True
            pos = m.end()
            continue
        word = m.group("word")
        low = word.lower()
        if words == 0 and not skipped_title and (low in TITLES or low + "." in TITLES):
            skipped_title = True
            pos = m.end()
            continue
        if low in _PARTICLES and words > 0:
            nxt = _TOKEN_RE.match(text, m.end())
            if nxt and nxt.group("word") and _is_name_word(nxt.group("word"), allow_lower):
                pos = m.end()
                continue
            break
        is_initial = (len(word) == 1 or not word.isascii() and len(_no_marks(word)) == 1) and (
            word[0].isupper()
        )  # "J.", and "Å." with its ring apart (decomposed)
        lower_ok = allow_lower and (not pending_sep or first_lower)
        if not is_initial and not _is_name_word(word, lower_ok):
            break
        if words == 0:
            first_lower = not word[0].isupper()  # lower case, or a script without case
        if is_initial and m.group("dot") is None and words > 0 and not allow_lower:
            break
        words += 1
        pending_sep = False
        pos = m.end()
        end = m.end() if (m.group("dot") and is_initial) else m.end("word")
        if m.group("dot") and not is_initial:
            break  # "Smith." ends the sentence and the name
        if word[-1] in "'’sS" and possessive_base(word) != word:
            break  # "Dr. Jones' car", "Dr. Smith's assistant": the name ends at the possessive
    if end is None:
        return None
    return end


def _no_marks(word: str) -> str:
    return "".join(c for c in word if unicodedata.category(c)[0] != "M")


def _start_of(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _after_cues(text: str) -> Iterator[PhiSpan]:
    for regex, lower in (
        (_TITLE_RE, True),
        (_CAP_CUE_RE, False),
        (_CUE_RE, True),
        (_SIGN_CUE_RE, True),
        (_RELATIVE_RE, True),
    ):
        for m in regex.finditer(text):
            end = take_name(text, m.end(), lower)
            if end is not None:
                start = _start_of(text, m.end())
                low = text[start:end].lower()
                if low.split(" ")[0].rstrip(".") in ("dr", "mr", "mrs", "ms", "miss", "doctor"):
                    start = _start_of(text, start + len(low.split(" ")[0]))
                if start < end:
                    yield PhiSpan("NAME", start, end)


def _before_credentials(text: str) -> Iterator[PhiSpan]:
    for m in _CREDENTIAL_RE.finditer(text):
        lead = _CRED_LEAD_RE.search(text, max(0, m.start() - 4), m.start())
        if lead is None or (m.group(0) in ("DO", "PA", "RT") and "," not in lead.group(0)):
            continue
        bm = _BACK_NAME_RE.search(text, max(0, lead.start() - 60), lead.start())
        if bm is None:
            continue
        words = list(_BACK_WORD_RE.finditer(bm.group(1)))
        keep: list[re.Match[str]] = []
        for w in reversed(words):
            token = w.group(0).rstrip(".")
            if token.lower() in NOT_NAMES or not token[0].isupper():
                break
            keep.append(w)
        if keep:
            yield PhiSpan("NAME", bm.start(1) + keep[-1].start(), bm.start(1) + keep[0].end())


_PART_SPLIT_RE = re.compile(r"['’-]")
_BACK_WORD_RE = re.compile(rf"{_L}[\w{MARKS}'’-]*\.?")


def fold_word(word: str) -> str:
    """``word`` without case, accents or width ("Núñez" -> "nunez", "STRASSE" and "Straße" ->
    "strasse"), for lexicon look-ups and as the key of a name word's surrogate (so every
    spelling of a name gets the same one)."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", word).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Letters that NFKD does not decompose into a base letter and a mark, spelled in ASCII for the
# word lists ("WIŁSON" is "wilson"). Used for look-ups only, never for a surrogate's key: the
# surrogates of names already released stay as they were.
_LOOKUP_LETTERS = str.maketrans(
    {
        "ł": "l",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ħ": "h",
        "ı": "i",
        "ŀ": "l",
        "ŧ": "t",
        "ŋ": "n",
        "ĸ": "k",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
    }
)


def lookup_fold(word: str) -> str:
    """``fold_word(word)`` with the letters NFKD keeps whole spelled in ASCII, for the lexicon
    ("WIŁSON", "Søren", "ĐORĐEVIĆ" -> "wilson", "soren", "dordevic")."""
    folded = fold_word(word)
    return folded if folded.isascii() else folded.translate(_LOOKUP_LETTERS)


def _capitalised(word: str) -> bool:
    """ "Smith", "Müller", "Smith-Jones" or an all-capitals word of two letters or more."""
    if not word[0].isupper():
        return False
    if len(word) > 1 and word.isupper():
        return True
    parts = [p for p in _PART_SPLIT_RE.split(word) if p]
    if len(parts[0]) < 2 and len(parts) == 1:
        return False
    return all(p[1:].islower() or len(p) == 1 for p in parts) and all(
        p[0].isupper() or p.islower() for p in parts[1:]
    )


def _lexicon(text: str, all_caps: bool) -> Iterator[PhiSpan]:
    for m in _ANY_WORD_RE.finditer(text):
        word = m.group(0)
        if not _capitalised(word):
            continue
        if word.isupper() and not all_caps and len(word) < 3:
            continue
        low = word.lower() if word.isascii() else lookup_fold(word)
        if low in AMBIGUOUS or low in NOT_NAMES:
            continue
        given = low in GIVEN_NAMES
        if given or low.replace("'", "").replace("’", "") in SURNAMES:
            start = m.start()
            back = _PREV_WORD_RE.search(text, max(0, start - 30), start)
            if back and _is_name_word(back.group(1), False) and back.group(1)[0].isupper():
                if (
                    back.group(1).lower() not in AMBIGUOUS
                    and not back.group(1).isupper()
                    or all_caps
                ):
                    start = back.start(1)
            end = take_name(text, m.start(), False, 3)
            if end is not None and end > m.end():
                yield PhiSpan("NAME", start, end)
            elif not (all_caps and given):
                yield PhiSpan("NAME", start, m.end())


def _structural(text: str) -> Iterator[PhiSpan]:
    if "^" in text:
        for m in _CARET_RE.finditer(text):
            # "ABDOMEN^LIVER", "Chest^Routine": a DICOM description, no person.
            if not all(_not_a_name(w) for w in _WORD_RE.findall(m.group(0))):
                start = m.start()
                while (back := _PARTICLE_BEFORE_RE.search(text, max(0, start - 8), start)) and (
                    back.group(1).lower() in _PARTICLES
                ):
                    start = back.start(1)  # "VAN DER BERG^JOHN"
                yield PhiSpan("NAME", start, m.start() + len(_caret_value(m.group(0))))
    if "/" in text:
        for m in _INITIALS_RE.finditer(text):
            yield PhiSpan("NAME", m.start(1), m.end(1))
            yield PhiSpan("NAME", m.start(2), m.end(2))
    for m in _INITIAL_SURNAME_RE.finditer(text):
        surname = "".join(c for c in m.group(3) if unicodedata.category(c)[0] != "M")
        initials = (m.group(1), m.group(2) or "A")
        if all(i.isupper() for i in initials) and surname[0].isupper() and surname[1].islower():
            yield PhiSpan("NAME", m.start(), m.end())
    yield from _signature_lines(text)
    for m in _SUBJECT_RE.finditer(text):
        back = _SUBJECT_WORD_RE.search(text, max(0, m.start() - 30), m.start())
        if back is None:
            continue
        word = back.group(1)
        if word[0].isupper() and word.lower() not in NOT_NAMES and word.lower() not in TITLES:
            yield PhiSpan("NAME", _subject_start(text, back.start(1)), back.end(1))


def _subject_start(text: str, start: int) -> int:
    """Where the name before "is a 45-year-old" starts: up to two more capitalised name words
    before its last one ("Xiomara Quenby", "QUENBY, XIOMARA", "Xiomara J. Quenby")."""
    for _ in range(2):
        m = _SUBJECT_PREV_RE.search(text, max(0, start - 40), start)
        if m is None:
            break
        word = m.group(1)
        if word.endswith(".") and len(word) > 2:
            break  # "Smith." ends a sentence
        word = word.rstrip(".")
        if not word[0].isupper() or _not_a_name(word) or word.lower() in TITLES:
            break
        start = m.start(1)
    return start


_SUBJECT_PREV_RE = re.compile(rf"({_L}{_LAH}*\.?)(?:,[ \t]*|[ \t]+)$")
_WORD_RE = re.compile(rf"{_L}{_LAH}+")
_DROP_LOWER = str.maketrans("", "", "abcdefghijklmnopqrstuvwxyz")
_DROP_UPPER = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PREV_WORD_RE = re.compile(rf"({_L}{_LAH}*)\.?,?[ \t]+$")
_NEXT_WORD_RE = re.compile(rf"(?:,[ \t]*|[ \t]+|\^)({_L}{_LAH}*)")
_SIGNATURE_LINE_RE = re.compile(
    rf"(?m)^[ \t]*({_L}{_LAH}+(?:[ \t]+{_L}\.?)?(?:[ \t]+{_L}{_LAH}+){{1,2}})"
    r"[ \t]*(?:,[^\n]*)?$"
)


def _caret_value(value: str) -> str:
    """A ``LAST^FIRST`` value without the blanks and the words of the sentence after it
    ("MURRAY^ISABELLA at 10:00", "KENNEDY^ANNA AT 10:00": not "at")."""
    while True:
        value = value.rstrip(" -'’")
        cut = value.rfind(" ")
        last = value[cut + 1 :]
        if cut <= value.rfind("^") or not value[0].isupper():
            return value
        if not last.islower() and last.lower() not in NOT_NAMES:
            return value
        value = value[:cut]


def _not_a_name(word: str) -> bool:
    low = lookup_fold(word)
    return low in NOT_NAMES or low in CLINICAL_WORDS


def _signature_lines(text: str) -> Iterator[PhiSpan]:
    """A short line of name words among the last lines of a note (a signature): after some
    other line (a value such as "MEDCOM RESAMPLED" is all of its text), with no word of a
    procedure or of anatomy."""
    tail_start = len(text)
    for _ in range(4):
        tail_start = text.rfind("\n", 0, max(0, tail_start - 1))
        if tail_start < 0:
            tail_start = 0
            break
    for m in _SIGNATURE_LINE_RE.finditer(text, tail_start):
        words = _WORD_RE.findall(m.group(1))
        if any(_not_a_name(w) or w.lower() in TITLES for w in words):
            continue
        capitalised = all(w[0].isupper() for w in words)
        known = any(lookup_fold(w) in GIVEN_NAMES or lookup_fold(w) in SURNAMES for w in words)
        first_line = not text[: m.start(1)].strip()
        if known or (capitalised and not first_line):
            yield PhiSpan("NAME", m.start(1), m.end(1))


def propagate(text: str, found: list[PhiSpan]) -> Iterator[PhiSpan]:
    """Every other occurrence, in the same text, of a name already found: the whole name, or
    one of its unambiguous words, extended over neighbouring words of the same names; also in
    its possessive ("Quenby's": the name, not the "'s") and in a hyphenated compound
    ("Quenby-Zylstra": the whole compound when each part is capitalised, else the name)."""
    known: set[str] = set()
    anchors: set[str] = set()
    phrases: set[tuple[str, ...]] = set()
    for span in found:
        words = [
            _name_key(possessive_base(w)) for w in _WORD_RE.findall(text[span.start : span.end])
        ]
        words = [w for w in words if w not in NOT_NAMES]
        if len(words) > 1:
            phrases.add(tuple(words))
        known.update(words)
        # A part of a hyphenated name is looked for alone when it is long enough not to be a
        # common syllable or unit ("Ferreira-Okafor": "okafor"; "Min-jun": not "min").
        parts = [p for w in words if "-" in w for p in w.split("-") if len(p) > 3]
        parts = [p for p in parts if p not in NOT_NAMES]
        # Two letters of a script without case ("张伟", "김철") are a whole name, not an initial.
        anchors.update(
            w
            for w in words + parts
            if (len(w) > 2 or len(w) == 2 and w.upper() == w) and w not in AMBIGUOUS
        )
    if not known:
        return
    if text.isascii():
        tokens = [(m.start(), m.end(), m.group(0).lower()) for m in _NAME_TOKEN_RE.finditer(text)]
    else:  # any spelling of the name: "José" and "Jose", "Łittle" and "ŁITTLE"
        tokens = [
            (m.start(), m.end(), _name_key(m.group(0))) for m in _NAME_TOKEN_RE.finditer(text)
        ]
    covered = bytearray(len(text) + 1)
    for span in found:
        covered[span.start : span.end] = b"\x01" * (span.end - span.start)
    i = 0
    while i < len(tokens):
        word = tokens[i][2]
        if word[-1] in "'’s" and ("'" in word or "’" in word):  # "Quenby's": the name
            start, end, _ = tokens[i]
            base = possessive_base(text[start:end])
            tokens[i] = (start, start + len(base), _name_key(base))
            word = tokens[i][2]
        hit = word in anchors
        if not hit and "-" in word:
            if not covered[tokens[i][0]]:
                yield from _compound_parts(text, tokens[i], anchors)
            i += 1
            continue
        if not hit and word in known:
            for phrase in phrases:
                k = len(phrase)
                if phrase[0] == word and tuple(t[2] for t in tokens[i : i + k]) == phrase:
                    if _adjacent(text, tokens[i : i + k]):
                        hit = True
                        break
        if not hit:
            i += 1
            continue
        lo = i
        while lo > 0 and i - lo < 2 and _joined(text, tokens[lo - 1], tokens[lo]):
            prev = tokens[lo - 1][2]
            initial = len(prev) == 1 and text[tokens[lo - 1][0] - 1 : tokens[lo - 1][0]] != "/"
            if prev in known or prev in GIVEN_NAMES or initial:
                lo -= 1
            else:
                break
        hi = i
        while hi + 1 < len(tokens) and _joined(text, tokens[hi], tokens[hi + 1]):
            if tokens[hi + 1][2] in known or len(tokens[hi + 1][2]) == 1:
                hi += 1
            else:
                break
        # Words already inside a found name stay with it: the run is yielded around them, as
        # its part from ``lo`` ("Virginia" before a found "S. Nieminen") and its part with the
        # word that hit ("Dr. 张伟, 张伟": the second one, after the found first one).
        j = lo
        while j <= hi:
            if covered[tokens[j][0]]:
                j += 1
                continue
            first = j
            while j <= hi and not covered[tokens[j][0]]:
                j += 1
            if first == lo or first <= i < j:
                yield PhiSpan("NAME", tokens[first][0], tokens[j - 1][1])
        i = i + 1 if covered[tokens[i][0]] else hi + 1


def _name_key(word: str) -> str:
    """A name word as compared when it is looked for again: without case or accents."""
    return word.lower() if word.isascii() else lookup_fold(word)


def possessive_base(word: str) -> str:
    """``word`` without a possessive ending ("Quenby's", "Quenby’s", "Jones'" -> the name)."""
    last = word[-1:]
    if last in ("'", "’") and len(word) > 2:
        return word[:-1]
    if last in ("s", "S") and len(word) > 3 and word[-2] in ("'", "’"):
        return word[:-2]
    return word


def _compound_parts(text: str, token: tuple[int, int, str], anchors: set[str]) -> list[PhiSpan]:
    """The names in a hyphenated token with a part that is a known name: the whole token when
    every part is capitalised ("Quenby-Zylstra"), else the known parts ("Quenby-like")."""
    start, end, _ = token
    pieces = []
    pos = start
    for piece in text[start:end].split("-"):
        pieces.append((pos, pos + len(piece), piece))
        pos += len(piece) + 1
    if not any(_name_key(p) in anchors for _, _, p in pieces if p):
        return []
    if all(p[:1].isupper() for _, _, p in pieces):
        return [PhiSpan("NAME", start, end)]
    return [PhiSpan("NAME", a, b) for a, b, p in pieces if p and _name_key(p) in anchors]


_NAME_TOKEN_RE = re.compile(rf"{_L}{_LAH}*")
_GAP_RE = re.compile(r"\.?(?:,[ \t]*|[ \t]+|\^)$")


def _joined(text: str, left: tuple[int, int, str], right: tuple[int, int, str]) -> bool:
    gap = text[left[1] : right[0]]
    if gap.startswith(".") and len(left[2]) > 1:
        return False  # a full stop after a word ends the name
    return 0 < len(gap) <= 3 and _GAP_RE.match(gap) is not None


def _adjacent(text: str, run: list[tuple[int, int, str]]) -> bool:
    return all(_joined(text, a, b) for a, b in zip(run, run[1:], strict=False))


def _known_names(text: str, extra_names: tuple[str, ...]) -> Iterator[PhiSpan]:
    """Every occurrence of a word of a name known to belong to the record, as a whole word or
    as a part of a token joined by ``_``, ``-``, ``.`` or digits ("DOE_JOHN_HEAD", "doe.j2"):
    not inside another word ("Lee" is not found in "Leeds")."""
    parts = {
        unicodedata.normalize(form, p).lower()
        for name in extra_names
        for p in _KNOWN_WORD_RE.findall(name)
        if len(p) > 1
        for form in ("NFC", "NFD")  # the text may be in either form
    }
    if not parts:
        return
    alternatives = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
    regex = re.compile(rf"(?<![^\W\d_])(?<![{MARKS}])(?:{alternatives})(?![^\W\d_]|[{MARKS}])", _I)
    for m in regex.finditer(text):
        yield PhiSpan("NAME", m.start(), m.end())


# A name word of a known name: letters and marks, and the apostrophe of "O'Brien" (a hyphen
# joins two words, each looked for on its own).
_KNOWN_WORD_RE = re.compile(rf"{_L}(?:[^\W\d_]|[{MARKS}'’])*")


def find_names(text: str, extra_names: tuple[str, ...] = ()) -> list[PhiSpan]:
    """Person names in ``text``; ``extra_names`` are names known to belong to the record."""
    # Line-anchored cues (signatures, initials) must work with CRLF line ends: detect on a copy
    # with every CR made a space (same length, so offsets are unchanged).
    text = text.replace("\r", " ")
    if text.isascii():
        lower = len(text) - len(text.translate(_DROP_LOWER))
        upper = len(text) - len(text.translate(_DROP_UPPER))
    else:  # capitals of every script ("ŁÓDŹ", "ΑΘΗΝΑ") count
        lower, upper = sum(map(str.islower, text)), sum(map(str.isupper, text))
    all_caps = upper > 4 * lower
    found = list(_after_cues(text))
    found += _before_credentials(text)
    found += _lexicon(text, all_caps)
    found += _structural(text)
    found += _known_names(text, extra_names)
    return [s for s in found if s.end > s.start]
