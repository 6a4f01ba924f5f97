r"""The recall guard: the least biased configuration that costs at most a point of recall.

A fixed debiasing recipe cannot know what it costs on the data at hand: on one corpus balancing
image→text languages is free, on another it puts captions the encoder cannot match at top-1.
:class:`RecallGuard` decides from the calibration set alone.

1. **Candidates.** An embedding-level option ``P`` (none; LanguageAlignment) and, per direction,
   score-stage options ``S_d`` (none; GroupBalance / InvertedSoftmax / CSLS / ExposureShuffle at
   several strengths; image→text also TranslationPooling → ExposureShuffle, which moves exposure
   only among mined translations of one caption). Score stages act on one direction each, so
   the options of text→image and image→text are scored separately under each ``P`` and
   combined.
2. **Out-of-fold scores.** Calibration items are dealt to ``F`` folds
   (:func:`~xcm_debias.calibration.folds.item_folds`); for each fold every candidate is fitted
   (cross-fitted as ``Debiased`` fits) on the other folds. Each fold's queries are then ranked
   against the whole calibration gallery, every gallery row transformed and given its stage
   columns by the model fitted without *its* fold
   (:mod:`~xcm_debias.calibration.held_out_gallery`): large enough to hold the confusers a
   real gallery holds, and no pair is scored by a model that saw either side. Outcomes are
   pooled over folds (:mod:`~xcm_debias.calibration.evaluation`); the plain retriever is
   scored on the same queries and gallery. Rankings are exact dense products (calibration sets
   are small), whatever retriever the pipeline wraps.
3. **The guard.** With per-query differences ``d_q = hit^{base}_q − hit^{cand}_q`` (paired: same
   queries, same gallery), a candidate is admissible when, for the direction overall,

   .. math:: \bar d + z \cdot \frac{s_d}{\sqrt{n}} \le \text{max\_recall\_loss},

   i.e. the recall loss is within the guard with a one-sided margin of ``z`` standard errors —
   so with little calibration data the guard does less, not harm — and, for each group (query
   language text→image, image culture image→text), the group is not *confidently* harmed:
   ``\bar d_g − z_G · s_{d,g}/\sqrt{n_g} ≤ max_recall_loss`` (a group holds a few dozen queries,
   whose noise alone exceeds a point of recall: an upper bound there would reject every change,
   gains included). ``z_G = Φ⁻¹(1 − Φ(−z)/G)`` over ``G`` groups (Bonferroni,
   :func:`group_margin`): with eight groups at ``z = 1`` each alone would reject a harmless
   candidate one time in six, some group of the eight about every other time. Its hubness skew@10 must be no more than ``hubness_tolerance`` above the
   plain retriever's. The plain retriever itself is always admissible.
4. **The choice.** Per ``P`` and direction, the admissible option with the lowest bias
   (|own-culture excess| text→image, language TV image→text); among options within
   ``bias_tolerance`` of that lowest bias, the one whose paired recall@1 gain over the plain
   retriever has the highest lower bound ``\bar g − z · s_g/\sqrt{n}`` (``g_q = −d_q``): a
   stage is preferred for recall only when its gain exceeds the noise — without any bias to
   reduce (no labels), an inverted softmax that reads +0.6 points out-of-fold is not worth
   its risk. A ``P`` whose best options leave either direction more biased than the plain
   retriever (beyond ``bias_tolerance``) is not chosen: one direction's bias is never traded
   for the other's. Across the remaining ``P``, the lowest summed bias, again with ties
   (within ``bias_tolerance``) going to the higher mean gain lower bound.

Without ``culture`` labels on the calibration images, culture-conditioned stages are skipped
(a note in ``Selection.notes``), not an error. Every candidate's record — metrics, paired loss,
admissible or not and why — is kept in the returned :class:`Selection`: the bias/recall frontier.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

import numpy as np

from xcm_debias._validation import check_fraction, check_positive_int
from xcm_debias.calibration.crossfit import (
    DIRECTIONS,
    fit_processors,
    fit_scorers,
    fold_count,
    processors_from_config,
    scoring_from_config,
)
from xcm_debias.calibration.evaluation import (
    Outcomes,
    bias,
    fold_outcomes,
    mean_and_se,
    named_culture_loss,
    pooled_metrics,
)
from xcm_debias.calibration.folds import item_folds
from xcm_debias.calibration.held_out_gallery import FoldModel, HeldOutGalleryRanker
from xcm_debias.calibration.selection import Candidate, Selection
from xcm_debias.data import EmbeddingSet
from xcm_debias.retrieval import Retriever
from xcm_debias.spec_text import format_config

StageList = list[dict[str, Any]]


def _stage(cls: str, **params: Any) -> dict[str, Any]:
    return {"class": cls, "params": params}


#: embedding-level options
DEFAULT_PROCESSORS: dict[str, StageList] = {
    "none": [],
    "LanguageAlignment": [_stage("LanguageAlignment", method="ridge", target="centroid")],
    # then remove each language's remaining mean culture preference (keeps asked-for culture)
    "LanguageAlignment → Decoupler(preference)": [
        _stage("LanguageAlignment", method="ridge", target="centroid"),
        _stage("CultureLanguageDecoupler", method="preference"),
    ],
}
#: text→image score-stage options (GroupBalance needs image cultures; the hubness reducers
#: lift the recall of poorly resolved languages, whose queries hubs capture)
DEFAULT_T2I: dict[str, StageList] = {
    "none": [],
    "GB(0.01)": [_stage("GroupBalance", temperature=0.01)],
    "GB(0.02)": [_stage("GroupBalance", temperature=0.02)],
    "GB(0.05)": [_stage("GroupBalance", temperature=0.05)],
    "IS": [_stage("InvertedSoftmax", beta=20.0)],
    "CSLS": [_stage("CSLS")],
}
_IS = _stage("InvertedSoftmax", beta=20.0)
_GB = _stage("GroupBalance", temperature=0.005)
#: image→text score-stage options
DEFAULT_I2T: dict[str, StageList] = {
    "none": [],
    "IS": [_IS],
    "IS+GB": [_IS, _GB],
    "IS+GB+ES(1.0)": [_IS, _GB, _stage("ExposureShuffle", tie_quantile=1.0)],
    "IS+GB+ES(0.5)": [_IS, _GB, _stage("ExposureShuffle", tie_quantile=0.5)],
    "GB": [_GB],
    "GB(0.02)": [_stage("GroupBalance", temperature=0.02)],
    **{
        f"ES({q})": [_stage("ExposureShuffle", tie_quantile=q)]
        for q in (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
    },
    **{
        f"IS+ES({q})": [_IS, _stage("ExposureShuffle", tie_quantile=q)]
        for q in (0.25, 0.5, 0.75, 1.0)
    },
    # translations of one caption share a score; the shuffle then splits them by language
    **{
        f"{hub}TP+ES({q})": [
            *pre,
            _stage("TranslationPooling"),
            _stage("ExposureShuffle", tie_quantile=q),
        ]
        for hub, pre in (("", []), ("IS+", [_IS]))
        for q in (0.1, 0.25, 0.5, 1.0)
    },
}
#: stages that read the images' culture label (skipped when calibration images carry none)
CULTURE_STAGES = {"GroupBalance", "CultureLanguageDecoupler"}


class RecallGuard:
    """Choose processors and score stages out-of-fold under a recall guard (module docstring).

    Args:
        max_recall_loss: the most recall@1 a candidate may lose against the plain retriever,
            per direction and per group (a share, e.g. 0.01 = one point).
        n_folds: out-of-fold folds of the calibration items (at least 2; capped at the number
            of items).
        z: one-sided margin in paired standard errors (0 = point estimates).
        bias_tolerance: biases this close count as tied (the higher recall wins).
        hubness_tolerance: the most a candidate's hubness skew@10 may exceed the plain one's.
            Loose on purpose: out-of-fold skew is measured on a gallery that mixes fitted and
            held-out rows, which biases it upward for bank-based stages (on Multi30K the
            inverted softmax read +0.07 out-of-fold and −0.6 on the test split).
        processors, t2i, i2t: the options (name → list of stage configs); defaults
            :data:`DEFAULT_PROCESSORS`, :data:`DEFAULT_T2I`, :data:`DEFAULT_I2T`.
        culture_of_language: language → associated culture (default: the same string).
        seed: seed of the fold assignment.
        min_items_for_scoring: with fewer calibration items, score stages are not candidates
            (only the embedding-level options are): a gallery that small holds too few
            confusers for the out-of-fold scores to show what a stage costs on a real gallery.
    """

    def __init__(
        self,
        max_recall_loss: float = 0.01,
        n_folds: int = 3,
        z: float = 1.0,
        bias_tolerance: float = 0.01,
        hubness_tolerance: float = 0.25,
        processors: Mapping[str, StageList] | None = None,
        t2i: Mapping[str, StageList] | None = None,
        i2t: Mapping[str, StageList] | None = None,
        culture_of_language: Mapping[str, str] | None = None,
        seed: int = 0,
        min_items_for_scoring: int = 30,
    ) -> None:
        self.max_recall_loss = check_fraction(
            max_recall_loss, "max_recall_loss", open_low=False, open_high=False
        )
        self.n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
        self.z = _non_negative(z, "z")
        self.bias_tolerance = _non_negative(bias_tolerance, "bias_tolerance")
        self.hubness_tolerance = _non_negative(hubness_tolerance, "hubness_tolerance")
        self.options = {
            "processors": _options(processors, DEFAULT_PROCESSORS, "processors"),
            "t2i": _options(t2i, DEFAULT_T2I, "t2i"),
            "i2t": _options(i2t, DEFAULT_I2T, "i2t"),
        }
        for direction in DIRECTIONS:
            if "none" not in self.options[direction]:
                self.options[direction] = {"none": [], **self.options[direction]}
        self.culture_of_language = dict(culture_of_language or {})
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self.min_items_for_scoring = check_positive_int(
            min_items_for_scoring, "min_items_for_scoring", minimum=0
        )

    def __repr__(self) -> str:
        return (
            f"RecallGuard(max_recall_loss={self.max_recall_loss}, n_folds={self.n_folds}, "
            f"z={self.z}, candidates={self.n_candidates})"
        )

    @property
    def n_candidates(self) -> int:
        """Number of (processors, direction, score stages) candidates scored per fold."""
        per_p = sum(len(self.options[d]) for d in DIRECTIONS)
        return len(self.options["processors"]) * per_p

    # ------------------------------------------------------------------ select
    def select(
        self, retriever: Retriever, calibration: EmbeddingSet, cross_fit: bool | int = 5
    ) -> Selection:
        """Score every candidate out-of-fold on ``calibration`` and choose (module docstring).

        ``retriever`` is the one the pipeline wraps (the ``RecallGuardLike`` protocol); the
        out-of-fold rankings are exact dense products for every candidate and the plain
        retriever alike, so approximate indexes do not blur the paired differences.
        """
        if not isinstance(calibration, EmbeddingSet):
            raise TypeError(
                f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}"
            )
        for modality in ("image", "text"):
            if not (calibration.modality == modality).any():
                raise ValueError(
                    f"calibration: the recall guard expected {modality} rows, got none"
                )
        inner_folds = fold_count(cross_fit)
        notes: list[str] = []
        options = self._usable_options(calibration, notes)
        folds = item_folds(calibration, self.n_folds, self.seed, "RecallGuard")
        n_folds = int(folds.max()) + 1
        models: dict[tuple[str, str, str], list[FoldModel]] = {}
        errors: dict[tuple[str, str, str], str] = {}
        for fold in range(n_folds):
            train = calibration[folds != fold]
            for p_name, p_config in options["processors"].items():
                self._fit_fold(train, p_name, p_config, options, inner_folds, models, errors)
        plain = {d: [FoldModel(None)] * n_folds for d in DIRECTIONS}
        base = {d: self._outcomes(plain[d], calibration, folds, d) for d in DIRECTIONS}
        outcomes: dict[tuple[str, str, str], list[Outcomes]] = {}
        for key, fold_models in models.items():
            if key in errors:
                continue
            try:
                outcomes[key] = self._outcomes(fold_models, calibration, folds, key[1])
            except ValueError as exc:
                errors[key] = str(exc)
        return self._choose(base, outcomes, errors, options, notes, cross_fit)

    def _outcomes(
        self,
        fold_models: list[FoldModel],
        calibration: EmbeddingSet,
        folds: np.ndarray,
        direction: str,
    ) -> list[Outcomes]:
        """Each fold's held-out queries ranked against the held-out calibration gallery
        (:mod:`~xcm_debias.calibration.held_out_gallery`)."""
        is_gallery = calibration.modality == DIRECTIONS[direction][1]
        ranker = HeldOutGalleryRanker(fold_models, calibration[is_gallery], folds[is_gallery])
        return [
            fold_outcomes(
                ranker.for_fold(fold),
                calibration[folds == fold],
                direction,
                self.culture_of_language,
                calibration,
            )
            for fold in range(len(fold_models))
        ]

    def _usable_options(
        self, calibration: EmbeddingSet, notes: list[str]
    ) -> dict[str, dict[str, StageList]]:
        images = calibration[calibration.modality == "image"]
        has_culture = images.has_label("culture")  # every image row labelled, none empty
        options = copy.deepcopy(self.options)
        n_items = len(np.unique(calibration.item))
        if n_items < self.min_items_for_scoring:
            for direction in DIRECTIONS:
                options[direction] = {"none": []}
            notes.append(
                f"{n_items} calibration items (< min_items_for_scoring = "
                f"{self.min_items_for_scoring}): score stages skipped; a calibration gallery that "
                "small cannot show what they cost on a larger one"
            )
        elif not has_culture:  # text→image stages and the decoupler read the images' culture
            parts = []
            for kind in ("processors", "t2i"):
                dropped = [
                    name
                    for name, stages in options[kind].items()
                    if any(s["class"] in CULTURE_STAGES for s in stages)
                ]
                for name in dropped:
                    del options[kind][name]
                parts += [f"{kind}: {', '.join(dropped)}"] if dropped else []
            if parts:
                notes.append(
                    "no culture labels on the calibration images: culture stages skipped "
                    f"({'; '.join(parts)})"
                )
        return options

    def _fit_fold(
        self,
        train: EmbeddingSet,
        p_name: str,
        p_config: StageList,
        options: Mapping[str, Mapping[str, StageList]],
        inner_folds: int,
        models: dict[tuple[str, str, str], list[FoldModel]],
        errors: dict[tuple[str, str, str], str],
    ) -> None:
        """Fit processors option ``p_name`` on ``train`` once, then every score option on top
        of it; append each candidate's fitted fold model (or record why it failed)."""
        keys = [(p_name, d, s) for d in DIRECTIONS for s in options[d]]
        if all(k in errors for k in keys):
            return
        processors = processors_from_config(p_config)
        try:
            current, folds = fit_processors(
                processors, train, inner_folds, self.seed, "RecallGuard"
            )
        except ValueError as exc:
            for key in keys:
                errors.setdefault(key, f"processors {p_name}: {exc}")
            return
        for direction in DIRECTIONS:
            for s_name, s_config in options[direction].items():
                key = (p_name, direction, s_name)
                if key in errors:
                    continue
                try:
                    templates = scoring_from_config(s_config)
                    scorers = (
                        fit_scorers(templates, current, folds, "RecallGuard", direction)
                        if templates
                        else []
                    )
                except ValueError as exc:
                    errors[key] = str(exc)
                    continue
                models.setdefault(key, []).append(FoldModel(processors, scorers))

    # ------------------------------------------------------------------ choose
    def _choose(
        self,
        base: dict[str, list[Outcomes]],
        outcomes: dict[tuple[str, str, str], list[Outcomes]],
        errors: dict[tuple[str, str, str], str],
        options: Mapping[str, Mapping[str, StageList]],
        notes: list[str],
        cross_fit: bool | int,
    ) -> Selection:
        pooled_base = {d: Outcomes.concat(base[d]) for d in DIRECTIONS}
        base_metrics = {d: pooled_metrics(pooled_base[d]) for d in DIRECTIONS}
        records: dict[tuple[str, str, str], Candidate] = {}
        for p_name, p_config in options["processors"].items():
            for direction in DIRECTIONS:
                for s_name, s_config in options[direction].items():
                    key = (p_name, direction, s_name)
                    config = {"processors": p_config, "scoring": {direction: s_config}}
                    record = Candidate(
                        name=_name(p_name, direction, s_name),
                        spec=format_config(config),
                        direction=direction,
                    )
                    if key in errors:
                        record.reasons = [f"fit failed: {errors[key]}"]
                    else:
                        pooled = Outcomes.concat(outcomes[key])
                        record.metrics = {
                            **pooled_metrics(pooled),
                            gain_key(direction): self._gain_lower(pooled_base[direction], pooled),
                        }
                        record.reasons = self._violations(
                            pooled_base[direction], pooled, base_metrics[direction], record.metrics
                        )
                        record.admissible = not record.reasons
                    records[key] = record
        ranked_p = []
        for p_name in options["processors"]:
            choice = {}
            for direction in DIRECTIONS:
                admissible = [
                    records[(p_name, direction, s)]
                    for s in options[direction]
                    if records[(p_name, direction, s)].admissible
                ]
                if not admissible:
                    break
                choice[direction] = self._least_biased(admissible, direction)
            else:
                # no trade of one direction's bias for the other's: each must be no worse
                # than the plain retriever's (a map can align texts and still raise TV)
                worse = [
                    d
                    for d in DIRECTIONS
                    if bias(choice[d].metrics, d) > bias(base_metrics[d], d) + self.bias_tolerance
                ]
                if worse:
                    notes.append(
                        f"processors {p_name} not chosen: {', '.join(worse)} bias above the "
                        "plain retriever's"
                    )
                    continue
                total = sum(bias(choice[d].metrics, d) for d in DIRECTIONS)
                recall = float(np.mean([choice[d].metrics[gain_key(d)] for d in DIRECTIONS]))
                ranked_p.append((total, recall, p_name, choice))
        if not ranked_p:  # cannot happen with the plain option, kept as a clear error
            raise ValueError("RecallGuard: no admissible configuration (not even the plain one)")
        lowest = min(r[0] for r in ranked_p)
        _, _, best_p, best_s = max(
            (r for r in ranked_p if r[0] <= lowest + self.bias_tolerance), key=lambda r: r[1]
        )
        config: dict[str, Any] = {
            "processors": copy.deepcopy(options["processors"][best_p]),
            "scoring": {
                d: copy.deepcopy(options[d][_option_of(best_s[d].name)])
                for d in DIRECTIONS
                if options[d][_option_of(best_s[d].name)]
            },
        }
        return Selection(
            chosen=" + ".join(best_s[d].name for d in DIRECTIONS),
            max_recall_loss=self.max_recall_loss,
            n_folds=int(max(len(v) for v in base.values())),
            candidates=list(records.values())
            + [
                Candidate(
                    name=f"plain retriever ({d})",
                    spec="",
                    direction=d,
                    metrics={**base_metrics[d], gain_key(d): 0.0},
                    admissible=True,
                )
                for d in DIRECTIONS
            ],
            notes=notes,
            config={**config, "cross_fit": cross_fit},
        )

    def _violations(
        self,
        base: Outcomes,
        candidate: Outcomes,
        base_metrics: Mapping[str, float],
        metrics: Mapping[str, float],
    ) -> list[str]:
        """The recall and hubness constraints a candidate breaks (empty: admissible)."""
        d = base.hit.astype(np.float64) - candidate.hit.astype(np.float64)
        direction = base.direction
        reasons = []
        # overall: the loss must be within the guard with confidence (upper bound); per group
        # (few queries each): the group must not be confidently harmed (lower bound)
        checks = [("overall", np.ones(len(d), dtype=bool), 1.0, self.z)]
        named = [g for g in np.unique(base.group) if g != "*"]
        if len(named) > 1:
            z_group = group_margin(self.z, len(named))
            checks += [(f"group {g}", base.group == g, -1.0, z_group) for g in named]
        for label, rows, sign, margin in checks:
            loss, se = mean_and_se(d[rows])
            if loss + sign * margin * se > self.max_recall_loss + 1e-12:
                op = "+" if sign > 0 else "−"
                reasons.append(
                    f"{direction} recall@1 {label}: loss {loss:.3f} {op} {margin:.2f}·SE "
                    f"{se:.3f} > {self.max_recall_loss:g}"
                )
        named_loss = named_culture_loss(base, candidate)  # culture-explicit t2i queries only
        if (
            named_loss is not None
            and named_loss[0] - self.z * named_loss[1] > self.max_recall_loss + 1e-12
        ):
            reasons.append(
                f"t2i named_culture@1: loss {named_loss[0]:.3f} − {self.z:g}·SE "
                f"{named_loss[1]:.3f} > "
                f"{self.max_recall_loss:g}"
            )
        key = f"{direction}/hubness_skew@10"
        if key in metrics and key in base_metrics:
            if metrics[key] > base_metrics[key] + self.hubness_tolerance:
                reasons.append(
                    f"{key} {metrics[key]:.2f} > plain {base_metrics[key]:.2f} + "
                    f"{self.hubness_tolerance:g}"
                )
        return reasons

    def _least_biased(self, admissible: list[Candidate], direction: str) -> Candidate:
        lowest = min(bias(c.metrics, direction) for c in admissible)
        tied = [c for c in admissible if bias(c.metrics, direction) <= lowest + self.bias_tolerance]
        return max(tied, key=lambda c: c.metrics[gain_key(direction)])

    def _gain_lower(self, base: Outcomes, candidate: Outcomes) -> float:
        """Lower bound of the paired recall@1 gain over the plain retriever: mean − z·SE."""
        gain, se = mean_and_se(candidate.hit.astype(np.float64) - base.hit.astype(np.float64))
        return gain - self.z * se


def gain_key(direction: str) -> str:
    """The metric key of a candidate's recall gain lower bound (:meth:`RecallGuard._gain_lower`)."""
    return f"{direction}/recall@1_gain_lower"


def group_margin(z: float, n_groups: int) -> float:
    r"""The per-group margin in standard errors: ``Φ⁻¹(1 − Φ(−z) / G)`` (Bonferroni).

    A candidate is rejected when *some* group of ``G`` looks confidently harmed; with ``G``
    chances, the one-sided level ``Φ(−z)`` of a single check is split among the groups so
    that a harmless candidate is rejected by noise in one group no more often than the
    overall check would reject it (``z = 1``, 8 groups: 2.05 SE instead of 1).
    """
    if z == 0:
        return 0.0
    level = NormalDist().cdf(-z) / n_groups
    return NormalDist().inv_cdf(1.0 - level)


def _name(p_name: str, direction: str, s_name: str) -> str:
    return f"{p_name} | {direction}: {s_name}"


def _option_of(name: str) -> str:
    return name.split(": ", 1)[1]


def _options(
    given: Mapping[str, StageList] | None, default: Mapping[str, StageList], name: str
) -> dict[str, StageList]:
    options = copy.deepcopy(dict(default if given is None else given))
    if not isinstance(options, dict) or not options:
        raise ValueError(f"{name}: expected a non-empty mapping name → list of stage configs")
    for key, stages in options.items():
        if not isinstance(stages, list):
            raise TypeError(f"{name}[{key!r}]: expected a list of stage configs, got {stages!r}")
        for i, stage in enumerate(stages):
            if not isinstance(stage, Mapping) or "class" not in stage:
                raise ValueError(
                    f"{name}[{key!r}][{i}]: expected {{'class': ..., 'params': {{...}}}}, "
                    f"got {stage!r}"
                )
    return options


def _non_negative(value: float, name: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (ok and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)
