"""The Deidentifier: one object per key and options, cheap to build in every worker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from meddata.deid import keys, surrogates
from meddata.deid.options import DeidOptions
from meddata.deid.recognizer import find_phi
from meddata.deid.spans import PhiSpan

if TYPE_CHECKING:
    import pydicom

    from meddata.deid.dicom import DicomResult

PROFILE_VERSION = "1"
_D = TypeVar("_D", date, datetime)


@dataclass(frozen=True)
class DeidText:
    """De-identified text and the PHI spans found, with offsets into the ORIGINAL text."""

    text: str
    spans: list[PhiSpan] = field(default_factory=list)

    def spans_as_dicts(self) -> list[dict[str, Any]]:
        """The spans as JSON-ready dicts (type and offsets; never values)."""
        return [{"type": s.type, "start": s.start, "end": s.end} for s in self.spans]


class Deidentifier:
    """Pseudonyms, date shifts, UID remapping and text/DICOM de-identification under one key.

    Everything is a pure function of the key, the options and the input: two instances built
    from the same key and options agree in any process, in any year (the clock is read only
    for the default ``options.reference_year``, when the options are made). Counts by PHI type accumulate until
    :meth:`take_counts`.
    """

    def __init__(
        self,
        key: bytes,
        options: DeidOptions | None = None,
        backends: Sequence[Callable[[str], Iterable[PhiSpan]]] = (),
    ) -> None:
        if len(key) < keys.MIN_KEY_BYTES:
            raise keys.DeidKeyError(
                f"The de-identification key has {len(key)} bytes; "
                f"at least {keys.MIN_KEY_BYTES} are needed.",
                "Use load_or_create_key() or a 32-byte random key.",
            )
        self._key = key
        self.options = options or DeidOptions()
        self.key_fingerprint = keys.fingerprint(key)
        self._counts: Counter[str] = Counter()
        self.backends = tuple(backends)

    def __getstate__(self) -> dict[str, Any]:
        # Backends hold loaded models: they are not pickled; a worker adds its own.
        return {"key": self._key, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["key"], state["options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Deidentifier(key_fingerprint={self.key_fingerprint!r}, options={self.options!r})"

    # -- pseudonyms -----------------------------------------------------------------------
    def person_id(self, source_person_id: str) -> int:
        """A stable int64 pseudonym in [1, 2**63 - 1] for a source person id."""
        return 1 + keys.derive_int(self._key, "person-id", str(source_person_id)) % (2**63 - 1)

    def person_pseudonym(self, source_person_id: str) -> str:
        """A stable string pseudonym: ``P`` + 12 base-32 characters."""
        n = keys.derive_int(self._key, "person-pseudonym", str(source_person_id))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        chars = []
        for _ in range(12):
            n, r = divmod(n, 32)
            chars.append(alphabet[r])
        return "P" + "".join(chars)

    def pseudonym(self, namespace: str, value: str) -> str:
        """A stable pseudonym for any other identifier (hex, 16 characters), per namespace."""
        return keys.derive(self._key, "id:" + namespace, str(value)).hex()[:16]

    # -- dates ----------------------------------------------------------------------------
    def date_shift_days(self, source_person_id: str) -> int:
        """Days this person's dates move back, in ``options.date_shift_range`` (inclusive)."""
        low, high = self.options.date_shift_range
        n = keys.derive_int(self._key, "date-shift", str(source_person_id))
        return low + n % (high - low + 1)

    def shift_date(self, value: _D, source_person_id: str) -> _D:
        """``value`` moved back by the person's shift; a datetime stays a datetime."""
        return value - timedelta(days=self.date_shift_days(source_person_id))

    # -- UIDs -----------------------------------------------------------------------------
    def uid(self, uid: str) -> str:
        """A DICOM UID ``2.25.<int>`` derived from ``uid``: the same UID in, the same out."""
        n = keys.derive_int(self._key, "uid", uid.strip().rstrip("\x00")) >> 128
        return f"2.25.{n}"

    # -- text -----------------------------------------------------------------------------
    def find_phi(self, text: str, extra_names: Iterable[str] = ()) -> list[PhiSpan]:
        """The PHI spans of ``text`` (offsets only), without replacing anything."""
        return find_phi(
            text, extra_names, self.backends, reference_year=self.options.reference_year
        )

    def text(self, text: str, source_person_id: str, extra_names: Iterable[str] = ()) -> DeidText:
        """De-identify clinical text: PHI replaced by surrogates consistent for the person.

        ``extra_names`` are names known to belong to the record (e.g. the patient's name from
        a structured field); every occurrence is then treated as a name.
        """
        year = self.options.reference_year
        spans = find_phi(text, extra_names, self.backends, reference_year=year)
        shift = self.date_shift_days(source_person_id)
        out: list[str] = []
        pos = 0
        replacements = surrogates.surrogates_for(self._key, text, spans, shift, reference_year=year)
        for span, replacement in zip(spans, replacements, strict=True):
            out.append(text[pos : span.start])
            out.append(replacement)
            pos = span.end
            self._counts[span.type] += 1
        out.append(text[pos:])
        return DeidText("".join(out), spans)

    # -- DICOM ----------------------------------------------------------------------------
    def dicom(self, ds: pydicom.Dataset, source_person_id: str | None = None) -> DicomResult:
        """De-identify ``ds`` in place (Basic profile + options); see :mod:`meddata.deid.dicom`.

        Raises BurnedInAnnotationError when BurnedInAnnotation is YES and not allowed.
        """
        from meddata.deid.dicom import deidentify_dataset, quiet_pydicom

        with quiet_pydicom():
            result = deidentify_dataset(self, ds, source_person_id)
        self._counts.update(result.counts)
        return result

    # -- bookkeeping ----------------------------------------------------------------------
    def count(self, phi_type: str, n: int = 1) -> None:
        """Add ``n`` to the count of ``phi_type`` (used by the structured helpers)."""
        self._counts[phi_type] += n

    def take_counts(self) -> dict[str, int]:
        """Counts by PHI type since the last call; resets them."""
        counts = dict(sorted(self._counts.items()))
        self._counts.clear()
        return counts

    def profile_summary(self) -> dict[str, Any]:
        """Profile name, options, version and key fingerprint, for the manifest."""
        from meddata.deid.profile import load_profile

        profile = load_profile()
        return {
            "profile": "meddata-deid",
            "version": PROFILE_VERSION,
            "dicom_profile": profile.name,
            "dicom_standard": profile.standard,
            "text_recogniser": "meddata rules v" + PROFILE_VERSION,
            "options": self.options.as_dict(),
            "key_fingerprint": self.key_fingerprint,
        }
