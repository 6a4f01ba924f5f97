"""Metric families: which report section a metric key belongs to and which way is better.

A metric key is a base name followed by optional ``name=value`` qualifiers, e.g.
``t2i/own_culture@1/lang=de`` = base ``t2i/own_culture@1`` + qualifier ``lang=de``. The base
is matched against :data:`FAMILIES`, the one table that decides, for every family, its section
and the meaning of "better" in a before/after comparison:

==========================================  ===========  =====================================
family (base key, qualifiers stripped)      section      better
==========================================  ===========  =====================================
``t2i|i2t/recall@k``, ``mrr``, ``map@k``    retrieval    higher
``t2i|i2t/recall@k/worst_*|best_*``         retrieval    higher (worst/best group)
``[t2i|i2t/]odmap@k``                       retrieval    higher
``t2i|i2t/recall@k/*_gap|*_std``            consistency  lower (spread across groups)
``t2i|i2t/mrv``, ``mrv_var``                consistency  lower (0 = consistent)
``i2t/language_share@k``                    prevalence   closer to ``i2t/gallery_language_share``
``i2t/gallery_language_share``              prevalence   neutral (a property of the gallery)
``i2t/language_tv@k``                       prevalence   lower (0 = the gallery's mix)
``i2t/lbkl@k``, ``i2t/dlbkl@k``             prevalence   lower (its null is not 0)
``i2t/faithfulness_loss@k``                 prevalence   lower (also per language of the
                                                         unfaithful top-1 caption)
``t2i/own_culture@k``                       tugging      closer to ``t2i/own_culture_chance``
``t2i/own_culture_hits|misses@k``           tugging      closer to ``t2i/own_culture_chance``
``t2i/own_culture_chance``                  tugging      neutral (a property of the corpus)
``t2i/own_culture_excess@k``                tugging      lower absolute value (0 = chance)
``t2i/culture_share@k``                     tugging      neutral (the heat map's cells)
``t2i/named_culture@k``                     tugging      higher (culture a query asks for)
``t2i/named_culture_chance``                tugging      neutral (a property of the corpus)
``t2i|i2t/hubness_*_null@k``                hubness      neutral (a random retriever's value)
``t2i|i2t/hubness_skew@k``                  hubness      lower
``t2i|i2t/hubness_antihub@k``               hubness      lower
``t2i|i2t/hubness_robin_hood@k``            hubness      lower
``t2i|i2t/hubness_hub_occurrence@k``        hubness      lower
``modality_gap``                            hubness      neutral (a geometry diagnostic)
anything else                               other        neutral
==========================================  ===========  =====================================

"Closer to a reference" compares ``|value − reference|`` before and after, the reference being
the key of the reference family with the same qualifiers, read from the same report.

**Noise.** Where both reports carry a standard error for a metric (``BiasReport.uncertainty``),
a change is called better or worse only when its gain exceeds
``NOISE_Z · √(SE_before² + SE_after²)``; a smaller one is ``"within noise"``. The two SEs are
combined as if the reports were independent samples, which overstates the noise of two
retrievers run on the same queries: "within noise" is the cautious call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

HIGHER = "higher"
LOWER = "lower"
ABS_LOWER = "abs_lower"
NEUTRAL = "neutral"
TOWARD = "toward"

# Sections in display order: (name, title).
SECTIONS: tuple[tuple[str, str], ...] = (
    ("retrieval", "Retrieval"),
    ("prevalence", "Language prevalence (image→text)"),
    ("tugging", "Cultural tugging (text→image)"),
    ("consistency", "Consistency"),
    ("hubness", "Hubness and geometry"),
    ("other", "Other metrics"),
)
SECTION_TITLES: dict[str, str] = dict(SECTIONS)

# Verdicts of one metric in a comparison.
BETTER = "better"
WORSE = "worse"
UNCHANGED = "unchanged"
NO_DIRECTION = "neutral"
UNDEFINED = "n/a"  # a value or its reference is NaN / missing
MISSING = "missing"
WITHIN_NOISE = "within noise"  # a gain no larger than its noise (see the module docstring)

NOISE_Z = 2.0  # a change counts when its gain exceeds NOISE_Z combined standard errors


@dataclass(frozen=True)
class MetricFamily:
    """One row of :data:`FAMILIES`: keys whose base matches ``pattern`` (a full regex match)."""

    pattern: str
    section: str
    better: str
    reference: str | None = None  # base key of the reference family, for ``better == TOWARD``

    def matches(self, base: str) -> bool:
        return re.fullmatch(self.pattern, base) is not None


_K = r"@\d+"
FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily(rf"(t2i|i2t)/recall{_K}", "retrieval", HIGHER),
    MetricFamily(r"(t2i|i2t)/mrr", "retrieval", HIGHER),
    MetricFamily(rf"(t2i|i2t)/map{_K}", "retrieval", HIGHER),
    MetricFamily(rf"(t2i|i2t)/recall{_K}/(worst|best)_\w+", "retrieval", HIGHER),
    MetricFamily(rf"((t2i|i2t)/)?odmap{_K}", "retrieval", HIGHER),
    MetricFamily(rf"i2t/language_share{_K}", "prevalence", TOWARD, "i2t/gallery_language_share"),
    MetricFamily(r"i2t/gallery_language_share", "prevalence", NEUTRAL),
    MetricFamily(rf"i2t/language_tv{_K}", "prevalence", LOWER),
    MetricFamily(rf"i2t/d?lbkl{_K}", "prevalence", LOWER),
    MetricFamily(rf"i2t/faithfulness_loss{_K}", "prevalence", LOWER),
    MetricFamily(rf"t2i/own_culture{_K}", "tugging", TOWARD, "t2i/own_culture_chance"),
    MetricFamily(r"t2i/own_culture_chance", "tugging", NEUTRAL),
    MetricFamily(rf"t2i/own_culture_excess{_K}", "tugging", ABS_LOWER),
    MetricFamily(
        rf"t2i/own_culture_(hits|misses){_K}", "tugging", TOWARD, "t2i/own_culture_chance"
    ),
    MetricFamily(rf"t2i/culture_share{_K}", "tugging", NEUTRAL),
    MetricFamily(rf"t2i/named_culture{_K}", "tugging", HIGHER),
    MetricFamily(r"t2i/named_culture_chance", "tugging", NEUTRAL),
    MetricFamily(rf"(t2i|i2t)/recall{_K}/\w+_(gap|std)", "consistency", LOWER),
    MetricFamily(r"(t2i|i2t)/mrv(_var)?", "consistency", LOWER),
    MetricFamily(rf"(t2i|i2t)/hubness_\w+_null{_K}", "hubness", NEUTRAL),
    MetricFamily(rf"(t2i|i2t)/hubness_skew{_K}", "hubness", LOWER),
    MetricFamily(rf"(t2i|i2t)/hubness_antihub{_K}", "hubness", LOWER),
    MetricFamily(rf"(t2i|i2t)/hubness_robin_hood{_K}", "hubness", LOWER),
    MetricFamily(rf"(t2i|i2t)/hubness_hub_occurrence{_K}", "hubness", LOWER),
    MetricFamily(r"modality_gap", "hubness", NEUTRAL),
)
_OTHER = MetricFamily(r".*", "other", NEUTRAL)


def split_key(key: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``"t2i/culture_share@1/lang=de/culture=ja"`` -> ``("t2i/culture_share@1",
    (("lang", "de"), ("culture", "ja")))``."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"key: expected a non-empty metric key string, got {key!r}")
    base: list[str] = []
    qualifiers: list[tuple[str, str]] = []
    for part in key.split("/"):
        if "=" in part:
            name, value = part.split("=", 1)
            qualifiers.append((name, value))
        else:
            base.append(part)
    return "/".join(base), tuple(qualifiers)


def join_key(base: str, qualifiers: tuple[tuple[str, str], ...]) -> str:
    """Inverse of :func:`split_key`."""
    return "/".join([base, *(f"{name}={value}" for name, value in qualifiers)])


def family_of(key: str) -> MetricFamily:
    """The first family of :data:`FAMILIES` whose pattern matches the key's base."""
    base, _ = split_key(key)
    for family in FAMILIES:
        if family.matches(base):
            return family
    return _OTHER


def family_rank(key: str) -> int:
    """Position of the key's family in :data:`FAMILIES` (display order; unknown last)."""
    family = family_of(key)
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def reference_key(key: str) -> str | None:
    """For a "closer to a reference" metric, the reference's key (same qualifiers)."""
    family = family_of(key)
    if family.better != TOWARD or family.reference is None:
        return None
    return join_key(family.reference, split_key(key)[1])


def verdict(
    key: str,
    before: float,
    after: float,
    before_reference: float | None = None,
    after_reference: float | None = None,
    tolerance: float = 1e-12,
    noise: float | None = None,
) -> str:
    """Is ``after`` better than ``before`` for this metric? One of ``better``, ``worse``,
    ``unchanged``, ``neutral`` (the family has no direction) or ``n/a`` (a NaN value, or a
    missing reference for a "closer to" metric); with ``noise`` (the gain a change must
    exceed, e.g. :func:`noise_of`), ``within noise`` when ``tolerance < |gain| <= noise``."""
    family = family_of(key)
    if family.better == NEUTRAL:
        return NO_DIRECTION
    if family.better == TOWARD:
        if before_reference is None or after_reference is None:
            return UNDEFINED
        gain = abs(before - before_reference) - abs(after - after_reference)
    elif family.better == HIGHER:
        gain = after - before
    elif family.better == LOWER:
        gain = before - after
    else:  # ABS_LOWER
        gain = abs(before) - abs(after)
    if math.isnan(gain):
        return UNDEFINED
    if abs(gain) <= tolerance:
        return UNCHANGED
    if noise is not None and abs(gain) <= noise:
        return WITHIN_NOISE
    return BETTER if gain > 0 else WORSE


def noise_of(se_before: float | None, se_after: float | None) -> float | None:
    """``NOISE_Z · √(SE_before² + SE_after²)``; ``None`` unless both SEs are known."""
    if se_before is None or se_after is None:
        return None
    return NOISE_Z * math.hypot(se_before, se_after)


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that orders embedded numbers numerically (``recall@5`` before ``recall@10``)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))
