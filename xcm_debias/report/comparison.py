"""Comparison: two BiasReports side by side, with deltas and a per-metric verdict.

``delta = after − before`` for every key present in both reports; a key present in only one
report is kept with the other side ``None`` and the verdict ``"missing"`` (never dropped).
Whether a change is *better* depends on the metric family (recall up, language TV down,
|own-culture excess| down, own-culture share toward its chance level...): the one table that
says so is :data:`xcm_debias.report.families.FAMILIES`.

Plain data like :class:`BiasReport`: rendering and JSON go through the operations registered in
:mod:`xcm_debias.report.registry`; this module registers ``compare`` (``BiasReport.compare``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from xcm_debias.report import families
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.registry import implements, operation


@dataclass(frozen=True)
class MetricDelta:
    """One metric in a comparison.

    Attributes:
        key: the metric key.
        before / after: the two values (``None`` where the report lacks the key).
        delta: ``after − before`` (``None`` where either side is missing).
        verdict: ``"better"``, ``"worse"``, ``"unchanged"``, ``"neutral"`` (no direction for
            this family), ``"n/a"`` (NaN, or a missing reference value) or ``"missing"``.
    """

    key: str
    before: float | None
    after: float | None
    delta: float | None
    verdict: str


@implements("compare")
class Comparison:
    """Before/after view of two reports (``before.compare(after)``).

    Args:
        before: the reference report (e.g. the plain retriever).
        after: the report to judge (e.g. the debiased retriever).
        labels: display names of the two sides (default ``("before", "after")``).
    """

    def __init__(
        self,
        before: BiasReport,
        after: BiasReport,
        labels: tuple[str, str] = ("before", "after"),
    ) -> None:
        for name, value in (("before", before), ("after", after)):
            if not isinstance(value, BiasReport):
                raise TypeError(f"{name}: expected a BiasReport, got {type(value).__name__}")
        if (
            not isinstance(labels, tuple | list)
            or len(labels) != 2
            or not all(isinstance(label, str) and label for label in labels)
        ):
            raise ValueError(f"labels: expected two non-empty strings, got {labels!r}")
        self.before = before
        self.after = after
        self.labels: tuple[str, str] = (labels[0], labels[1])
        self._entries = {key: self._entry(key) for key in self.keys()}

    # ----------------------------------------------------------------- content
    def keys(self) -> list[str]:
        """Every key of either report: the before report's order, then keys new in after."""
        return [
            *self.before.metrics,
            *(k for k in self.after.metrics if k not in self.before.metrics),
        ]

    def _entry(self, key: str) -> MetricDelta:
        b = self.before.metrics.get(key)
        a = self.after.metrics.get(key)
        if b is None or a is None:
            return MetricDelta(key, _float(b), _float(a), None, families.MISSING)
        b, a = float(b), float(a)
        return MetricDelta(key, b, a, a - b, self._verdict(key, b, a, None))

    def _verdict(self, key: str, b: float, a: float, noise: float | None) -> str:
        ref = families.reference_key(key)
        b_ref = None if ref is None else _float(self.before.metrics.get(ref))
        a_ref = None if ref is None else _float(self.after.metrics.get(ref))
        return families.verdict(key, b, a, b_ref, a_ref, noise=noise)

    def noise(self, key: str) -> float | None:
        """The gain a change of ``key`` must exceed to count: ``NOISE_Z · √(SE_before² +
        SE_after²)`` from the reports' ``uncertainty``; ``None`` unless both have an SE."""
        return families.noise_of(self.before.uncertainty.get(key), self.after.uncertainty.get(key))

    def noise_verdict(self, key: str) -> str:
        """:attr:`MetricDelta.verdict` of ``key``, except that a change no larger than its
        :meth:`noise` is ``"within noise"``."""
        entry = self[key]
        noise = self.noise(key)
        if noise is None or entry.delta is None:
            return entry.verdict
        return self._verdict(key, float(entry.before), float(entry.after), noise)

    def __getitem__(self, key: str) -> MetricDelta:
        if key not in self._entries:
            raise KeyError(f"key: expected a metric of either report, got {key!r}")
        return self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[MetricDelta]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def delta(self) -> dict[str, float]:
        """``after − before`` for every key present in both reports."""
        return {e.key: e.delta for e in self if e.delta is not None}

    @property
    def missing(self) -> dict[str, str]:
        """Keys present in one report only -> the side that has it (``"before"``/``"after"``)."""
        return {
            e.key: ("before" if e.after is None else "after")
            for e in self
            if e.verdict == families.MISSING
        }

    def with_verdict(self, verdict: str) -> list[str]:
        """Keys whose verdict is ``verdict`` (``"better"``, ``"worse"``...)."""
        known = {
            families.BETTER,
            families.WORSE,
            families.UNCHANGED,
            families.NO_DIRECTION,
            families.UNDEFINED,
            families.MISSING,
        }
        if verdict not in known:
            raise ValueError(f"verdict: expected one of {sorted(known)}, got {verdict!r}")
        return [e.key for e in self if e.verdict == verdict]

    # --------------------------------------------------------------- rendering
    def __str__(self) -> str:
        return operation("text")(self.before, self.after, self.labels)

    def __repr__(self) -> str:
        counts = {v: len(self.with_verdict(v)) for v in (families.BETTER, families.WORSE)}
        return (
            f"Comparison({len(self)} metrics, {counts['better']} better, "
            f"{counts['worse']} worse, {len(self.missing)} missing)"
        )

    def to_markdown(self, figure_dir: str | None = None) -> str:
        """Markdown tables per section; ``figure_dir`` links the plots of :meth:`save_plots`."""
        return operation("markdown")(self.before, self.after, self.labels, figure_dir=figure_dir)

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict: ``before``, ``after`` (whole reports), ``delta``, ``verdict``,
        ``missing``."""
        return operation("comparison_to_dict")(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict` (NaN as ``null``); written to ``path`` when given."""
        return operation("to_json")(self.to_dict(), path)

    @classmethod
    def from_json(cls, source: str | Path) -> Comparison:
        """Read :meth:`to_json` output (a path or the JSON text itself)."""
        return operation("comparison_from_json")(source)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (inline CSS, inline PNG plots, no external resource)."""
        text = operation("html")(self.before, self.after, self.labels)
        if path is not None:
            operation("write_text")(path, text, "path")
        return text

    def save_plots(self, folder: str | Path) -> list[Path]:
        """Write each plot as ``<folder>/<name>.png``; returns the written paths."""
        return operation("plots")(folder, self.before, self.after, self.labels)


def _float(value: object) -> float | None:
    return None if value is None else float(value)
