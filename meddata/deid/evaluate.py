"""Entity- and token-level recall and precision of a PHI recogniser on a generated corpus.

Recall is counted against the gold spans: an entity is *found* when every one of its word
characters lies inside some predicted span, whatever the predicted type (hidden is hidden); a
gold token is found when it overlaps a predicted span. Precision is counted per predicted type:
a predicted entity is *correct* when it overlaps a gold span, a predicted token when it lies in
one. ``typed_recall`` also asks for the same type.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from meddata.deid.corpus import PHI_TYPES, CorpusDoc
from meddata.deid.spans import PhiSpan

Recogniser = Callable[[str], Iterable[PhiSpan]]
_TOKEN_RE = re.compile(r"\w+")


@dataclass
class TypeScore:
    """Counts for one PHI type."""

    gold_entities: int = 0
    found_entities: int = 0
    typed_entities: int = 0
    pred_entities: int = 0
    correct_pred_entities: int = 0
    gold_tokens: int = 0
    found_tokens: int = 0
    pred_tokens: int = 0
    correct_pred_tokens: int = 0

    def add(self, other: TypeScore) -> None:
        """Add ``other``'s counts to these."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @staticmethod
    def _ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and the derived recall and precision figures."""
        return {
            "gold": self.gold_entities,
            "predicted": self.pred_entities,
            "entity_recall": self._ratio(self.found_entities, self.gold_entities),
            "typed_recall": self._ratio(self.typed_entities, self.gold_entities),
            "entity_precision": self._ratio(self.correct_pred_entities, self.pred_entities),
            "token_recall": self._ratio(self.found_tokens, self.gold_tokens),
            "token_precision": self._ratio(self.correct_pred_tokens, self.pred_tokens),
        }


@dataclass
class EvalReport:
    """Scores per PHI type and overall, with throughput."""

    per_type: dict[str, TypeScore] = field(default_factory=dict)
    documents: int = 0
    seconds: float = 0.0
    misses: list[tuple[str, str, int, int]] = field(default_factory=list)
    false_positives: list[tuple[str, str, int, int]] = field(default_factory=list)

    @property
    def overall(self) -> TypeScore:
        """The counts of every type added together (micro average)."""
        total = TypeScore()
        for score in self.per_type.values():
            total.add(score)
        return total

    @property
    def docs_per_second(self) -> float:
        """Documents processed per second by the recogniser alone."""
        return self.documents / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "documents": self.documents,
            "docs_per_second": round(self.docs_per_second, 1),
            "overall": self.overall.as_dict(),
            "per_type": {t: s.as_dict() for t, s in sorted(self.per_type.items())},
        }


def _covered(mask: bytearray, start: int, end: int, text: str) -> bool:
    return all(mask[i] or not text[i].isalnum() for i in range(start, end))


def score_document(doc: CorpusDoc, predicted: Sequence[PhiSpan], report: EvalReport) -> None:
    """Add one document's counts to ``report``."""
    n = len(doc.text)
    pred_mask = bytearray(n)
    gold_mask = bytearray(n)
    for p in predicted:
        for i in range(max(0, p.start), min(n, p.end)):
            pred_mask[i] = 1
    for g in doc.spans:
        for i in range(g.start, g.end):
            gold_mask[i] = 1
    for g in doc.spans:
        score = report.per_type.setdefault(g.type, TypeScore())
        score.gold_entities += 1
        if _covered(pred_mask, g.start, g.end, doc.text):
            score.found_entities += 1
        else:
            report.misses.append((doc.doc_id, g.type, g.start, g.end))
        same = [p for p in predicted if p.type == g.type and p.start < g.end and g.start < p.end]
        typed_mask = bytearray(n)
        for p in same:
            for i in range(max(0, p.start), min(n, p.end)):
                typed_mask[i] = 1
        if _covered(typed_mask, g.start, g.end, doc.text):
            score.typed_entities += 1
        for t in _TOKEN_RE.finditer(doc.text, g.start, g.end):
            score.gold_tokens += 1
            if any(pred_mask[t.start() : t.end()]):
                score.found_tokens += 1
    for p in predicted:
        score = report.per_type.setdefault(p.type, TypeScore())
        score.pred_entities += 1
        if any(gold_mask[max(0, p.start) : min(n, p.end)]):
            score.correct_pred_entities += 1
        else:
            report.false_positives.append((doc.doc_id, p.type, p.start, p.end))
        for t in _TOKEN_RE.finditer(doc.text, max(0, p.start), min(n, p.end)):
            score.pred_tokens += 1
            if all(gold_mask[t.start() : t.end()]):
                score.correct_pred_tokens += 1


def evaluate(docs: Sequence[CorpusDoc], recognise: Recogniser) -> EvalReport:
    """Run ``recognise`` on every document and score it against the gold spans."""
    report = EvalReport()
    predictions = []
    started = time.perf_counter()
    for doc in docs:
        predictions.append(list(recognise(doc.text)))
    report.seconds = time.perf_counter() - started
    report.documents = len(docs)
    for doc, predicted in zip(docs, predictions, strict=True):
        score_document(doc, predicted, report)
    return report


def markdown_table(report: EvalReport) -> str:
    """Per-type and overall figures as a Markdown table."""

    def fmt(v: float | int | None) -> str:
        return "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    cols = [
        "gold",
        "entity_recall",
        "entity_precision",
        "token_recall",
        "token_precision",
        "typed_recall",
    ]
    lines = ["| type | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    order = [t for t in PHI_TYPES if t in report.per_type] + sorted(
        t for t in report.per_type if t not in PHI_TYPES
    )
    rows = [(t, report.per_type[t].as_dict()) for t in order]
    rows.append(("**overall**", report.overall.as_dict()))
    for name, d in rows:
        lines.append(f"| {name} | " + " | ".join(fmt(d[c]) for c in cols) + " |")
    return "\n".join(lines)
