"""Fitting a pipeline's stages on calibration data, optionally cross-fitted.

:func:`fit_stages` is the fit of :class:`xcm_debias.Debiased`: the embedding-level processors
first (each step on the previous steps' output), then, per retrieval direction, the score
stages in order, each on the banks the earlier stages left. With folds (cross-fitting), every
stage is still fitted on all the rows it receives, but the rows handed to the *next* stage are
out-of-fold: each fold's rows are transformed (processors) or given their columns (score stages)
by a copy of the stage fitted on the other folds (:mod:`xcm_debias.calibration.folds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from xcm_debias.calibration.folds import item_folds
from xcm_debias.data import EmbeddingSet
from xcm_debias.processors import Chain, PostProcessor
from xcm_debias.processors.base import out_of_fold_transform
from xcm_debias.scoring import ScoredRows, ScoreNormalizer
from xcm_debias.topk import blockwise_topk

#: retrieval direction → (query modality, gallery modality)
DIRECTIONS: dict[str, tuple[str, str]] = {"t2i": ("text", "image"), "i2t": ("image", "text")}
#: the number of folds of ``cross_fit=True``
DEFAULT_FOLDS = 5

ScorerSpec = ScoreNormalizer | Sequence[ScoreNormalizer]
ScoringSpec = ScorerSpec | Mapping[str, ScorerSpec]


def fit_stages(
    processors: PostProcessor | None,
    templates: Mapping[str, list[ScoreNormalizer]],
    calibration: EmbeddingSet,
    n_folds: int,
    seed: int,
    owner: str,
) -> dict[str, list[ScoreNormalizer]]:
    """Fit ``processors`` in place, then clones of each direction's score ``templates``.

    ``n_folds = 0`` fits every stage on the previous stages' in-sample output; ``n_folds >= 2``
    cross-fits with :func:`item_folds` (``seed``). Returns the fitted score stages per direction.
    """
    for direction in templates:
        for modality in DIRECTIONS[direction]:
            if not (calibration.modality == modality).any():
                raise ValueError(
                    f"{owner}.fit: score-level stages for {direction!r} need {modality} rows "
                    f"in calibration, got none"
                )
    current, folds = fit_processors(processors, calibration, n_folds, seed, owner, bool(templates))
    return {
        direction: fit_scorers(stages, current, folds, owner, direction)
        for direction, stages in templates.items()
    }


def fit_processors(
    processors: PostProcessor | None,
    calibration: EmbeddingSet,
    n_folds: int,
    seed: int,
    owner: str,
    feed_forward: bool = True,
) -> tuple[EmbeddingSet, np.ndarray | None]:
    """Fit ``processors`` in place; return the calibration rows the next stage is fitted on and
    the folds (None without cross-fitting).

    Cross-fitted (``n_folds >= 2``), the returned rows are out-of-fold outputs of the last step;
    ``feed_forward=False`` skips computing them when no stage follows.
    """
    if not n_folds:
        if processors is None:
            return calibration, None
        processors.fit(calibration)
        return processors.transform(calibration), None
    folds = item_folds(calibration, n_folds, seed, owner)
    steps = [] if processors is None else list(_steps(processors))
    current = calibration
    for i, step in enumerate(steps):
        step.fit(current)
        if i + 1 < len(steps) or feed_forward:
            current = out_of_fold_transform(
                step, current, folds, f"{owner}.fit: processor step {i}"
            )
    if isinstance(processors, Chain):
        processors.fitted_flag = torch.tensor(True)
    return current, folds


def _steps(processors: PostProcessor) -> list[PostProcessor]:
    return list(processors.steps) if isinstance(processors, Chain) else [processors]


def fit_scorers(
    templates: list[ScoreNormalizer],
    calibration: EmbeddingSet,
    folds: np.ndarray | None,
    owner: str,
    direction: str,
) -> list[ScoreNormalizer]:
    """Fit the stages of one direction in order, each on the banks the earlier ones left."""
    query_rows = calibration.modality == DIRECTIONS[direction][0]
    gallery_rows = calibration.modality == DIRECTIONS[direction][1]
    queries = ScoredRows.of(calibration[query_rows].normalized(), "query_bank")
    gallery = ScoredRows.of(calibration[gallery_rows].normalized(), "gallery_bank")
    fitted = []
    for j, template in enumerate(templates):
        scorer = template.clone_unfitted()
        scorer.fit(queries, gallery)
        fitted.append(scorer)
        if j + 1 == len(templates):
            break
        if folds is None:
            queries, gallery = _extend_banks(scorer, queries, gallery)
        else:
            queries, gallery = _extend_banks_out_of_fold(
                template, queries, gallery, folds[query_rows], folds[gallery_rows], owner
            )
    return fitted


def _bank_top1(scorer: ScoreNormalizer, queries: ScoredRows, gallery: ScoredRows) -> torch.Tensor:
    """Exact top-1 of bank queries in the gallery bank (ties to the lower index)."""
    return blockwise_topk(queries.augmented, gallery.augmented, 1, scorer.block_size)[0][:, 0]


def _extend_banks(
    scorer: ScoreNormalizer, queries: ScoredRows, gallery: ScoredRows
) -> tuple[ScoredRows, ScoredRows]:
    """Both banks with ``scorer``'s columns appended (in-sample)."""
    columns = scorer.gallery_columns(gallery)
    top1 = _bank_top1(scorer, queries, gallery) if scorer.needs_top1 else None
    query_columns = scorer.query_columns(queries, columns, top1)
    return queries.extended(query_columns), gallery.extended(columns.columns)


def _extend_banks_out_of_fold(
    template: ScoreNormalizer,
    queries: ScoredRows,
    gallery: ScoredRows,
    query_folds: np.ndarray,
    gallery_folds: np.ndarray,
    owner: str,
) -> tuple[ScoredRows, ScoredRows]:
    """Both banks with columns from copies of the stage fitted without each row's fold."""
    query_columns: torch.Tensor | None = None
    gallery_columns: torch.Tensor | None = None
    n_folds = int(max(query_folds.max(initial=0), gallery_folds.max(initial=0))) + 1
    for fold in range(n_folds):
        in_q, in_g = query_folds == fold, gallery_folds == fold
        if not (in_q.any() or in_g.any()):
            continue
        copy = template.clone_unfitted()
        try:
            copy.fit(queries.select(~in_q), gallery.select(~in_g))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{owner}.fit: {type(template).__name__} fitted without fold {fold} failed: {exc}"
            ) from exc
        columns = copy.gallery_columns(gallery)
        if gallery_columns is None:
            width = columns.columns.shape[1]
            gallery_columns = torch.zeros(len(gallery.data), width)
            query_columns = torch.zeros(len(queries.data), width)
        assert query_columns is not None  # allocated with gallery_columns
        gallery_columns[torch.from_numpy(in_g)] = columns.columns[torch.from_numpy(in_g)]
        if in_q.any():
            part = queries.select(in_q)
            top1 = _bank_top1(copy, part, gallery) if copy.needs_top1 else None
            query_columns[torch.from_numpy(in_q)] = copy.query_columns(part, columns, top1)
    assert query_columns is not None and gallery_columns is not None  # some fold has rows
    return queries.extended(query_columns), gallery.extended(gallery_columns)


def processors_from_config(configs: object) -> PostProcessor | None:
    """Unfitted processors from a list of processor configs (a Chain when several; None when
    the list is empty or None)."""
    configs = [] if configs is None else configs
    if not isinstance(configs, list):
        raise TypeError(f"config['processors']: expected a list, got {type(configs).__name__}")
    steps = [PostProcessor.from_config(dict(c)) for c in configs]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else Chain(*steps)


def scoring_from_config(
    configs: object,
) -> dict[str, list[ScoreNormalizer]] | list[ScoreNormalizer]:
    """Unfitted score stages from stage configs: a list (both directions) or a mapping from
    ``"t2i"``/``"i2t"`` to lists (None = no stage)."""
    configs = [] if configs is None else configs
    if isinstance(configs, Mapping):
        unknown = sorted(set(configs) - set(DIRECTIONS))
        if unknown:
            raise ValueError(
                f"config['scoring']: expected direction keys in {sorted(DIRECTIONS)}, got {unknown}"
            )
        return {d: _scorer_configs(c, f"config['scoring'][{d!r}]") for d, c in configs.items()}
    return _scorer_configs(configs, "config['scoring']")


def _scorer_configs(configs: object, name: str) -> list[ScoreNormalizer]:
    if not isinstance(configs, list):
        raise TypeError(f"{name}: expected a list of scorer configs, got {type(configs).__name__}")
    return [ScoreNormalizer.from_config(dict(c), fitted_meta=False) for c in configs]


def fold_count(cross_fit: object) -> int:
    """The folds of a ``cross_fit`` argument: False → 0 (no cross-fitting), True →
    ``DEFAULT_FOLDS``, an integer >= 2 → itself."""
    if cross_fit is True:
        return DEFAULT_FOLDS
    if cross_fit is False:
        return 0
    if not isinstance(cross_fit, (int, np.integer)):
        raise TypeError(f"cross_fit: expected a bool or a number of folds >= 2, got {cross_fit!r}")
    if cross_fit == 1 or cross_fit < 0:
        raise ValueError(
            f"cross_fit: expected False, True or a number of folds >= 2, got {cross_fit}"
        )
    return int(cross_fit)


def scoring_templates(scoring: ScoringSpec | None) -> dict[str, list[ScoreNormalizer]]:
    """The score-stage templates per direction of a ``scoring`` argument: one stage or a
    sequence of them (both directions, the same objects), or a mapping from ``"t2i"``/``"i2t"``
    to either (directions without a stage are left out)."""
    if scoring is None:
        return {}
    if isinstance(scoring, Mapping):
        unknown = sorted(set(scoring) - set(DIRECTIONS))
        if unknown:
            raise ValueError(
                f"scoring: expected direction keys in {sorted(DIRECTIONS)}, got {unknown}"
            )
        templates = {d: _scorer_list(spec, f"scoring[{d!r}]") for d, spec in scoring.items()}
        return {d: t for d, t in templates.items() if t}
    scorers = _scorer_list(scoring, "scoring")
    return {d: scorers for d in DIRECTIONS} if scorers else {}


def _scorer_list(spec: object, name: str) -> list[ScoreNormalizer]:
    items = [spec] if isinstance(spec, ScoreNormalizer) else spec
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise TypeError(
            f"{name}: expected a ScoreNormalizer or a sequence of them, got {type(spec).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, ScoreNormalizer):
            raise TypeError(f"{name}[{i}]: expected a ScoreNormalizer, got {type(item).__name__}")
    return list(items)
