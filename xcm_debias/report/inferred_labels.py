"""The "Inferred labels" section: which group labels the pipeline inferred at search, and what
that changed.

Shown when a report's ``provenance["labels"]`` holds (built by
:mod:`xcm_debias.report.label_free`)::

    {"label_free": bool,   # True: every row's language/culture was removed before search
     "labels": {label: {"modality": "text" | "image", "rows": int, "inferred": int,
                        "unconfident": int, "from_text": int (of the inferred rows, those
                        whose language was read from their string; absent: none),
                        "accuracy": float, "wrong": int (on the corpus,
                        when it has gold labels), "classifier": {"accuracy": float, "ece": float,
                        "n_rows": int, "classes": [...], "threshold": float, ...}}
                | {"skipped": reason}},
     "gold": {metric key: {"gold": float, "inferred": float}}}   # label_free only

``classifier`` holds the label model's cross-fitted numbers on the calibration set (accuracy
and expected calibration error of its out-of-fold posteriors); ``accuracy`` is the share of
the corpus's inferred rows whose inferred label equals the corpus's own (``wrong`` counts the
others). ``gold`` holds every
metric twice: searched with the corpus's labels and with inferred ones (both scored with the
corpus's labels). The section shows one table of the classifiers and one of the scalar metrics
(no ``/lang=`` or ``/culture=`` qualifier) whose two values differ, largest difference first,
with a line naming the largest difference over every metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xcm_debias.report.blocks import Block, Cell, ExtraSection, Paragraph, Sides, Table, fmt

KEY = "labels"
TITLE = "Inferred labels"
#: differences below this are shown as unchanged (the page prints 3 decimals)
SHOWN = 5e-4


def labels_of(provenance: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The report's label-inference record, if it has a well-formed one."""
    data = provenance.get(KEY)
    if not isinstance(data, Mapping) or not isinstance(data.get("labels"), Mapping):
        return None
    return data


def differences(record: Mapping[str, Any]) -> dict[str, float]:
    """``inferred − gold`` per metric of the record's ``gold`` table (finite values only)."""
    out = {}
    for key, pair in (record.get("gold") or {}).items():
        if not isinstance(pair, Mapping):
            continue
        gold, inferred = _number(pair.get("gold")), _number(pair.get("inferred"))
        if gold is not None and inferred is not None and math.isfinite(inferred - gold):
            out[str(key)] = inferred - gold
    return out


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _accuracy(entry: Mapping[str, Any]) -> str:
    """``0.9995 (1 wrong)``: four decimals, so that one row in thousands shows."""
    accuracy = _number(entry.get("accuracy"))
    if accuracy is None:
        return "—"
    wrong = entry.get("wrong")
    return f"{accuracy:.4f}" + (f" ({wrong} wrong)" if isinstance(wrong, int) else "")


def _inferred(entry: Mapping[str, Any]) -> str:
    """``2160`` or, when some came from the strings, ``2160 (2160 from text)``."""
    text = entry.get("from_text")
    shown = str(entry.get("inferred", "—"))
    return shown + (f" ({text} from text)" if isinstance(text, int) and text else "")


def _classifier_rows(labels: Mapping[str, Any]) -> tuple[tuple[Cell, ...], ...]:
    rows = []
    for label, entry in labels.items():
        if not isinstance(entry, Mapping):
            continue
        if "skipped" in entry:
            rows.append((Cell(label), *(Cell("—"),) * 6, Cell(f"not inferred: {entry['skipped']}")))
            continue
        model = entry.get("classifier") or {}
        rows.append(
            (
                Cell(f"{label} ({entry.get('modality', '')})"),
                Cell(str(entry.get("rows", "—"))),
                Cell(_inferred(entry)),
                Cell(str(entry.get("unconfident", "—"))),
                Cell(fmt(_number(model.get("accuracy")))),
                Cell(fmt(_number(model.get("ece")))),
                Cell(_accuracy(entry)),
                Cell(f"{model.get('n_rows', '—')} labelled calibration rows"),
            )
        )
    return tuple(rows)


def labels_blocks(sides: Sides) -> list[Block]:
    """Per side with a record: what was inferred, the classifier table, the gold comparison."""
    blocks: list[Block] = []
    for label, report in sides:
        record = labels_of(report.provenance)
        if record is None:
            continue
        side = f"{label}: " if label else ""
        if record.get("label_free"):
            how = (
                "every query's and gallery row's language and culture were removed before "
                "search and inferred by the pipeline's label models (from the embeddings, or a "
                "text row's language from its string where the row carries it); the metrics "
                "are scored with the corpus's own labels"
            )
        else:
            how = "the corpus rows without a label were given one by the pipeline's label models"
        blocks.append(Paragraph(f"{side}Labels inferred at search: {how}."))
        header = (
            "label",
            "rows",
            "inferred",
            "below confidence",
            "cross-fitted accuracy",
            "cross-fitted ECE",
            "accuracy on this corpus",
            "fitted on",
        )
        blocks.append(Table(f"{side}label classifiers", header, _classifier_rows(record["labels"])))
        diffs = differences(record)
        if not diffs:
            continue
        gold = record["gold"]
        worst = max(diffs, key=lambda key: abs(diffs[key]))
        shown = sorted(
            (key for key, d in diffs.items() if "=" not in key and abs(d) >= SHOWN),
            key=lambda key: -abs(diffs[key]),
        )
        blocks.append(
            Paragraph(
                f"{side}Each metric searched with the corpus's labels (gold) and with inferred "
                f"ones: the largest difference over all {len(diffs)} metrics is "
                f"{diffs[worst]:+.4f} ({worst}); {len(shown)} scalar metric(s) differ by "
                f"{SHOWN:g} or more."
            )
        )
        if shown:
            rows = tuple(
                (
                    Cell(key),
                    Cell(fmt(_number(gold[key]["gold"]))),
                    Cell(fmt(_number(gold[key]["inferred"]))),
                    Cell(f"{diffs[key]:+.4f}"),
                )
                for key in shown
            )
            header = ("metric", "gold labels", "inferred labels", "inferred − gold")
            blocks.append(Table(f"{side}gold against inferred labels", header, rows))
    return blocks


SECTION = ExtraSection(KEY, TITLE, labels_blocks)
