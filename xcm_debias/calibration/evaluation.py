r"""Out-of-fold evaluation: top-1 outcomes of held-out calibration items, pooled over folds.

A retriever fitted without one fold's items is scored on that fold's queries. The gallery is
the whole calibration gallery: a fold holds only ``1/F`` of the items, and a gallery that small
hides most of the confusers a real gallery holds, so a balancing stage would look free when it
is not. The recall guard ranks with a
:class:`~xcm_debias.calibration.held_out_gallery.HeldOutGalleryRanker`, which scores every
gallery row by the fold model that did not see it. Relevance is judged by ``item``, and every
relevant row of a held-out query is itself held out. Per query we keep what the recall
guard needs:

* ``hit``: the top-1 gallery row is relevant (same ``item``);
* ``group``: the query's group for per-group recall constraints — text→image: the query's
  ``language``; image→text: the image's ``culture`` (``"*"`` when images carry none);
* text→image: ``own`` (the top-1 image has the culture associated with the query's language)
  and ``chance`` (that culture's share among the query's relevant images); with a text extra
  column ``named_culture`` (the culture a caption names in words, ``""`` for none), ``named``
  (the top-1 image has the named culture; meaningful where ``explicit``) and ``explicit``;
  own-culture is then pooled over the implicit queries only;
* image→text: ``top_language`` (the language of the top-1 caption) and ``expected`` (each
  language's share of the fold's caption gallery, as a row per query).

Pooled metrics (:func:`pooled_metrics`), with the key names of ``BiasReport``:

.. math::

    R_1 = \tfrac1Q \sum_q \mathrm{hit}_q, \qquad
    \mathrm{TV} = \tfrac12 \sum_l \Big|\tfrac1Q\sum_q [\mathrm{top}_q = l]
        - \tfrac1Q\sum_q \mathrm{expected}_{q,l}\Big|,

    \mathrm{excess}_l = \overline{\mathrm{own}}_l - \overline{\mathrm{chance}}_l,
    \qquad |\mathrm{excess}| = \tfrac{1}{|L|}\sum_l |\mathrm{excess}_l|,
    \qquad \mathrm{named} = \overline{\mathrm{named}}_{q\ \mathrm{explicit}}.

Hubness skew@10 (skewness of the k-occurrence ``N_10`` over every gallery row of a fold,
Radovanović et al. 2010) is computed per fold and averaged, weighted by the fold's queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from xcm_debias.calibration.crossfit import DIRECTIONS
from xcm_debias.data import EmbeddingSet
from xcm_debias.metrics.hubness import k_occurrence, skewness
from xcm_debias.retrieval import Retriever

HUBNESS_K = 10
#: below this many gallery rows a fold's skew@10 is noise, not hubness: it is not recorded
MIN_HUBNESS_GALLERY = 10 * HUBNESS_K
ONE_GROUP = "*"


@dataclass
class Outcomes:
    """Per-query out-of-fold outcomes of one direction (see the module docstring)."""

    direction: str
    hit: np.ndarray
    group: np.ndarray
    own: np.ndarray | None = None
    chance: np.ndarray | None = None
    query_language: np.ndarray | None = None
    top_language: np.ndarray | None = None
    expected: dict[str, np.ndarray] | None = None
    skews: list[tuple[float, int]] | None = None
    named: np.ndarray | None = None
    explicit: np.ndarray | None = None

    @staticmethod
    def concat(parts: list[Outcomes]) -> Outcomes:
        """Outcomes of several folds as one (queries in fold order)."""
        if not parts:
            raise ValueError("parts: expected at least one fold's outcomes, got none")
        first = parts[0]

        def cat(name: str) -> np.ndarray | None:
            values = [getattr(p, name) for p in parts]
            return None if values[0] is None else np.concatenate(values)

        expected = None
        if first.expected is not None:
            languages = sorted({lang for p in parts for lang in (p.expected or {})})
            expected = {
                lang: np.concatenate(
                    [(p.expected or {}).get(lang, np.zeros(len(p.hit))) for p in parts]
                )
                for lang in languages
            }
        return Outcomes(
            direction=first.direction,
            hit=np.concatenate([p.hit for p in parts]),
            group=np.concatenate([p.group for p in parts]),
            own=cat("own"),
            chance=cat("chance"),
            query_language=cat("query_language"),
            top_language=cat("top_language"),
            expected=expected,
            skews=[s for p in parts for s in (p.skews or [])],
            named=cat("named"),
            explicit=cat("explicit"),
        )


def fold_outcomes(
    retriever: Retriever,
    held_out: EmbeddingSet,
    direction: str,
    culture_of_language: Mapping[str, str] | None = None,
    gallery: EmbeddingSet | None = None,
) -> Outcomes:
    """Top-k outcomes of ``retriever`` for the held-out queries of ``direction``.

    ``gallery`` defaults to the held-out rows of the gallery modality; the recall guard passes
    the whole calibration set (its rows of the gallery modality are used).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {sorted(DIRECTIONS)}, got {direction!r}")
    query_modality, gallery_modality = DIRECTIONS[direction]
    pool = held_out if gallery is None else gallery
    is_query, is_gallery = held_out.modality == query_modality, pool.modality == gallery_modality
    if not is_query.any() or not is_gallery.any():
        raise ValueError(
            f"held_out: expected {query_modality} and {gallery_modality} rows for {direction}, "
            f"got {int(is_query.sum())} and {int(is_gallery.sum())}"
        )
    queries, gallery = held_out[is_query], pool[is_gallery]
    k = min(HUBNESS_K, len(gallery))
    top = retriever.search(queries, gallery, k).indices.numpy()
    top1 = top[:, 0]
    hit = gallery.item[top1] == queries.item
    skews = []
    if len(gallery) >= MIN_HUBNESS_GALLERY:
        skews = [(skewness(k_occurrence(top, len(gallery))), len(queries))]
    if direction == "t2i":
        return _t2i(queries, gallery, top1, hit, skews, culture_of_language)
    return _i2t(queries, gallery, top1, hit, skews)


def _t2i(
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    top1: np.ndarray,
    hit: np.ndarray,
    skews: list[tuple[float, int]],
    culture_of_language: Mapping[str, str] | None,
) -> Outcomes:
    language = queries.language.astype(str)
    own = chance = named = explicit = None
    if gallery.has_label("culture") and "named_culture" in queries.extra:
        wanted = queries.extra["named_culture"].astype(str)
        explicit = wanted != ""
        named = gallery.culture.astype(str)[top1] == wanted
    if gallery.has_label("culture"):
        mapping = dict(culture_of_language or {})
        target = np.array([mapping.get(lang, lang) for lang in language])
        culture = gallery.culture.astype(str)
        own = culture[top1] == target
        relevant = queries.item[:, None] == gallery.item[None, :]
        marked = relevant & (culture[None, :] == target[:, None])
        n_relevant = relevant.sum(axis=1)
        chance = np.where(n_relevant > 0, marked.sum(axis=1) / np.maximum(n_relevant, 1), 0.0)
    return Outcomes(
        "t2i",
        hit,
        language,
        own,
        chance,
        query_language=language,
        skews=skews,
        named=named,
        explicit=explicit,
    )


def _i2t(
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    top1: np.ndarray,
    hit: np.ndarray,
    skews: list[tuple[float, int]],
) -> Outcomes:
    group = (
        queries.culture.astype(str)
        if queries.has_label("culture")
        else np.full(len(queries), ONE_GROUP)
    )
    top_language = expected = None
    if gallery.has_label("language"):
        language = gallery.language.astype(str)
        top_language = language[top1]
        expected = {
            lang: np.full(len(queries), float((language == lang).mean()))
            for lang in np.unique(language)
        }
    return Outcomes("i2t", hit, group, top_language=top_language, expected=expected, skews=skews)


def pooled_metrics(outcomes: Outcomes) -> dict[str, float]:
    """Recall@1 (overall and per group), the direction's bias measures, hubness skew@10."""
    d = outcomes.direction
    out: dict[str, float] = {f"{d}/recall@1": float(outcomes.hit.mean())}
    key = "lang" if d == "t2i" else "culture"
    for group in np.unique(outcomes.group):
        if group != ONE_GROUP:
            out[f"{d}/recall@1/{key}={group}"] = float(outcomes.hit[outcomes.group == group].mean())
    implicit = np.ones(len(outcomes.hit), dtype=bool)
    if outcomes.named is not None and outcomes.explicit is not None and outcomes.explicit.any():
        implicit = ~outcomes.explicit
        out["t2i/named_culture@1"] = float(outcomes.named[outcomes.explicit].mean())
    if outcomes.own is not None and outcomes.chance is not None:
        excess = []
        for language in np.unique(outcomes.query_language):
            rows = (outcomes.query_language == language) & implicit
            if not rows.any():
                continue
            if outcomes.chance[rows].max(initial=0.0) == 0.0:
                continue  # no relevant image carries this language's culture
            excess.append(float(outcomes.own[rows].mean() - outcomes.chance[rows].mean()))
        if excess:
            out["t2i/own_culture_excess@1"] = float(np.mean(excess))
            out["t2i/own_culture_abs_excess@1"] = float(np.mean(np.abs(excess)))
    if outcomes.top_language is not None and outcomes.expected is not None:
        tv = sum(
            abs(float((outcomes.top_language == lang).mean()) - float(share.mean()))
            for lang, share in outcomes.expected.items()
        )
        out["i2t/language_tv@1"] = 0.5 * tv
    finite = [(s, n) for s, n in outcomes.skews or [] if np.isfinite(s)]
    if finite:
        out[f"{d}/hubness_skew@10"] = float(
            sum(s * n for s, n in finite) / sum(n for _, n in finite)
        )
    return out


def named_culture_loss(base: Outcomes, candidate: Outcomes) -> tuple[float, float] | None:
    """Loss of named-culture@1 against ``base`` on the same explicit queries: ``(mean, SE)`` of
    the paired per-query difference, or ``None`` when there are no culture-explicit queries."""
    if base.named is None or candidate.named is None or base.explicit is None:
        return None
    if not base.explicit.any():
        return None
    rows = base.explicit
    return mean_and_se(
        base.named[rows].astype(np.float64) - candidate.named[rows].astype(np.float64)
    )


def mean_and_se(diff: np.ndarray) -> tuple[float, float]:
    """Mean of paired per-query differences and its standard error ``sd/√n`` (0 for one)."""
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se


def bias(metrics: Mapping[str, float], direction: str) -> float:
    """The direction's bias measure: |own-culture excess| text→image, language TV image→text
    (0 when the labels it needs are absent)."""
    key = "t2i/own_culture_abs_excess@1" if direction == "t2i" else "i2t/language_tv@1"
    return float(metrics.get(key, 0.0))
