r"""Hyper-parameter sweeps on calibration data only.

``sweep(build, grid, calibration)`` splits the calibration set into an item-disjoint inner
calibration part and an inner validation part (``split_items(test_size, seed)``), fits
``build(**params)`` on the first for every candidate of ``grid``, scores it on the second and
returns the best parameters together with the whole table. The test split is never touched.

The default objective (:class:`Objective`) is

.. math::

    J = \tfrac12\big(R^{t2i}_1 + R^{i2t}_1\big)
        - w_{tv} \cdot \mathrm{TV}^{i2t}_1
        - w_{c} \cdot \tfrac{1}{|L|}\sum_{l} \big|\mathrm{own}_l - \mathrm{chance}_l\big|,

recall@1 in both directions, minus the image→text language total variation (top-1 language
mix against the gallery's) and the mean absolute own-culture excess text→image (over-correction
below chance is a bias too). :func:`top1_metrics` computes these from one ``k = 1`` search per
direction, with the key names of ``BiasReport`` (plus ``t2i/own_culture_abs_excess@1``); pass
``metrics=lambda r, c, col: BiasReport.evaluate(r, c, culture_of_language=col).metrics`` to use
the full report instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from xcm_debias._validation import check_fraction
from xcm_debias.data import EmbeddingSet
from xcm_debias.language_codes import language_key
from xcm_debias.retrieval import Retriever

MetricsFn = Callable[[Retriever, EmbeddingSet, Mapping[str, str] | None], Mapping[str, float]]


class FittableRetriever(Retriever, Protocol):
    """A retriever with ``fit(calibration) -> self`` (e.g. ``Debiased``)."""

    def fit(self, calibration: EmbeddingSet) -> FittableRetriever: ...


@dataclass(frozen=True)
class Objective:
    """``J = mean recall@1 − tv_weight·i2t/language_tv@1 − culture_weight·|own-culture excess|``.

    Args:
        tv_weight: weight of ``i2t/language_tv@1``.
        culture_weight: weight of ``t2i/own_culture_abs_excess@1``.
    """

    tv_weight: float = 1.0
    culture_weight: float = 1.0

    def __call__(self, metrics: Mapping[str, float]) -> float:
        needed = (
            "t2i/recall@1",
            "i2t/recall@1",
            "i2t/language_tv@1",
            "t2i/own_culture_abs_excess@1",
        )
        missing = [key for key in needed if key not in metrics]
        if missing:
            raise KeyError(f"metrics: expected keys {list(needed)}, missing {missing}")
        recall = 0.5 * (metrics["t2i/recall@1"] + metrics["i2t/recall@1"])
        return float(
            recall
            - self.tv_weight * metrics["i2t/language_tv@1"]
            - self.culture_weight * metrics["t2i/own_culture_abs_excess@1"]
        )


@dataclass
class SweepResult:
    """Outcome of :func:`sweep`.

    Attributes:
        best_params: the candidate with the highest objective (first in grid order on ties).
        best_score: its objective.
        table: one row per candidate, in grid order: ``{"params", "objective", "metrics",
            "error"}`` (``error`` is the message of a ValueError raised by fit, else None).
        best_model: ``build(**best_params)`` fitted on the whole calibration set (``refit``).
    """

    best_params: dict[str, Any]
    best_score: float
    table: list[dict[str, Any]] = field(default_factory=list)
    best_model: FittableRetriever | None = None


def grid_candidates(grid: Mapping[str, Sequence[Any]] | Iterable[Mapping[str, Any]]) -> list[dict]:
    """All parameter dicts of a grid: a mapping name → values (Cartesian product) or a list."""
    if isinstance(grid, Mapping):
        names = list(grid)
        for name in names:
            values = grid[name]
            if isinstance(values, str) or not isinstance(values, Sequence) or not values:
                raise ValueError(
                    f"grid[{name!r}]: expected a non-empty list of values, got {values!r}"
                )
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
    candidates = [dict(c) for c in grid]
    if not candidates:
        raise ValueError("grid: expected at least one candidate, got none")
    return candidates


def sweep(
    build: Callable[..., FittableRetriever],
    grid: Mapping[str, Sequence[Any]] | Iterable[Mapping[str, Any]],
    calibration: EmbeddingSet,
    *,
    objective: Callable[[Mapping[str, float]], float] = Objective(),
    metrics: MetricsFn | None = None,
    test_size: float = 0.5,
    seed: int = 0,
    culture_of_language: Mapping[str, str] | None = None,
    refit: bool = True,
) -> SweepResult:
    """Pick hyper-parameters on an item-disjoint inner split of ``calibration``.

    Args:
        build: ``build(**params)`` returns an unfitted retriever with ``fit`` (a Debiased).
        grid: name → list of values (Cartesian product), or a list of parameter dicts.
        calibration: the calibration set (never the test split).
        objective: maps a metrics dict to a number to maximise (default :class:`Objective`).
        metrics: ``metrics(retriever, validation, culture_of_language)`` (default
            :func:`top1_metrics`).
        test_size: share of calibration items held out for validation.
        seed: seed of the inner split.
        culture_of_language: language → associated culture (default: same string).
        refit: fit the best candidate on the whole calibration set (``best_model``).
    """
    if not isinstance(calibration, EmbeddingSet):
        raise TypeError(f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}")
    if not callable(build):
        raise TypeError(f"build: expected a callable returning a retriever, got {build!r}")
    test_size = check_fraction(test_size, "test_size")
    candidates = grid_candidates(grid)
    metrics_fn = top1_metrics if metrics is None else metrics
    inner_calibration, validation = calibration.split_items(test_size=test_size, seed=seed)
    table: list[dict[str, Any]] = []
    for params in candidates:
        row: dict[str, Any] = {"params": params, "objective": -math.inf, "metrics": {}}
        try:
            model = build(**params).fit(inner_calibration)
        except ValueError as exc:
            row["error"] = str(exc)
        else:
            row["metrics"] = dict(metrics_fn(model, validation, culture_of_language))
            row["objective"] = float(objective(row["metrics"]))
            row["error"] = None
        table.append(row)
    scores = [row["objective"] for row in table]
    if all(s == -math.inf for s in scores):
        raise ValueError(f"sweep: every candidate failed; first error: {table[0]['error']}")
    best = int(np.argmax(scores))
    best_params = dict(table[best]["params"])
    best_model = build(**best_params).fit(calibration) if refit else None
    return SweepResult(best_params, float(scores[best]), table, best_model)


def top1_metrics(
    retriever: Retriever,
    corpus: EmbeddingSet,
    culture_of_language: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Recall@1 both ways, image→text language mix, text→image own-culture share, at top-1.

    Keys (as in ``BiasReport``): ``t2i/recall@1``, ``i2t/recall@1``, ``i2t/language_tv@1``,
    ``i2t/language_share@1/lang=<l>``, ``t2i/own_culture@1/lang=<l>``,
    ``t2i/own_culture_chance/lang=<l>``, ``t2i/own_culture_excess@1`` (mean over languages of
    own − chance) and ``t2i/own_culture_abs_excess@1`` (mean of ``|own − chance|``).
    Relevance = same ``item``; the chance level of language ``l`` is the share of images of
    ``l``'s culture among the relevant images of ``l``'s queries; languages whose culture no
    image carries are left out. Own-culture is measured on the implicit queries (texts whose
    extra column ``named_culture`` is empty, or every text without that column), as in
    ``BiasReport``.
    """
    texts, images = corpus.texts, corpus.images
    texts.require_label("language", "top1_metrics", "text row")
    out: dict[str, float] = {}
    t2i = retriever.search(texts, images, 1).indices[:, 0].numpy()
    i2t = retriever.search(images, texts, 1).indices[:, 0].numpy()
    out["t2i/recall@1"] = float((images.item[t2i] == texts.item).mean())
    out["i2t/recall@1"] = float((texts.item[i2t] == images.item).mean())
    languages = texts.languages()
    top_languages = texts.language[i2t]
    tv = 0.0
    for language in languages:
        share = float((top_languages == language).mean())
        out[f"i2t/language_share@1/lang={language}"] = share
        tv += abs(share - float((texts.language == language).mean()))
    out["i2t/language_tv@1"] = 0.5 * tv
    excess = []
    mapping = {language_key(lang): c for lang, c in (culture_of_language or {}).items()}
    image_cultures = set(images.cultures())
    named = texts.extra.get("named_culture")
    implicit = np.ones(len(texts), dtype=bool) if named is None else named.astype(str) == ""
    for language in languages:
        culture = mapping.get(language, language)
        if culture not in image_cultures:
            continue
        rows = (texts.language == language) & implicit
        if not rows.any():
            continue
        own = float((images.culture[t2i[rows]] == culture).mean())
        chance = _relevant_share(texts.item[rows], images.item, images.culture == culture)
        out[f"t2i/own_culture@1/lang={language}"] = own
        out[f"t2i/own_culture_chance/lang={language}"] = chance
        excess.append(own - chance)
    out["t2i/own_culture_excess@1"] = float(np.mean(excess)) if excess else 0.0
    out["t2i/own_culture_abs_excess@1"] = float(np.mean(np.abs(excess))) if excess else 0.0
    return out


def _relevant_share(query_items: np.ndarray, image_items: np.ndarray, marked: np.ndarray) -> float:
    """Mean over queries (with a relevant image) of the marked share among relevant images."""
    items, inverse = np.unique(image_items, return_inverse=True)
    total = np.bincount(inverse, minlength=len(items)).astype(float)
    hits = np.bincount(inverse, weights=marked.astype(float), minlength=len(items))
    position = np.searchsorted(items, query_items)
    position = np.minimum(position, len(items) - 1)
    found = items[position] == query_items
    if not found.any():
        return 0.0
    return float((hits[position[found]] / total[position[found]]).mean())
