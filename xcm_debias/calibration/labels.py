r"""Label models: infer a missing ``language`` (texts) or ``culture`` (images) from the embedding.

Only the calibration set is labelled in a search product: queries arrive as bare strings, and a
photo collection carries no culture. The group stages need those labels, so a fitted pipeline
learns them from the calibration rows that carry them, and fills them in where a search-time row
has none.

Model (one per label, :class:`LabelClassifier`): linear discriminant analysis (LDA: a Gaussian
per class with one shared covariance) on the row's unit-normalised, centred embedding
``z = √d (x/‖x‖ − μ)``, with the covariance shrunk by Ledoit–Wolf (the same estimator as
``sklearn.covariance.LedoitWolf``), and temperature scaling,

.. math:: p(c \mid x) = \operatorname{softmax}_c\big((z Σ^{-1} m_c − ½ m_cᵀ Σ^{-1} m_c
    + \log π_c) / T\big),

with ``m_c`` the class means, ``π_c`` the class shares and ``Σ`` the shrunk within-class
covariance (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, §4.3;
Ledoit & Wolf 2004). Why LDA and not a logistic regression: on the embedded world (seed 0) both
identify caption languages out-of-fold equally well (LDA 0.998, L2 logistic regression by
L-BFGS 0.996; image cultures 1.0 for both), but LDA is one linear solve where the logistic
regression needs an iterative fit per fold (about 40× the time), and the classifiers are fitted
inside every ``Debiased.fit``. LDA's raw posteriors are over-confident on ``d ≫ n`` data, which is what the
temperature repairs (Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural networks",
ICML 2017): ``T`` minimises the negative log-likelihood of **out-of-fold** logits. The
calibration items are dealt to folds (an item's rows share a fold), every fold's rows are scored
by a copy fitted on the other folds, and those held-out logits fit ``T`` and give the recorded
cross-fitted accuracy, negative log-likelihood and expected calibration error (ECE: top-label
confidence against accuracy in 15 equal-width bins, weighted by bin size; Naeini, Cooper &
Hauskrecht, AAAI 2015). The final discriminant is fitted on every labelled row.

Filling (:meth:`LabelModels.fill`): rows that carry a label keep it; a text row without a
``language`` that still carries its string (the ``caption`` column the encoders write) gets the
language identified from the string (:mod:`xcm_debias.calibration.text_languages`: more
reliable than the embedding, which a multilingual encoder makes nearly language-free); another
row without a label gets its
posterior as a soft label (posterior-weighted offsets) and its most probable class in the label
column; where the largest posterior is below ``threshold`` it is marked not confident, and
per-group maps leave it unchanged (identity). How soft
labels travel and how stages use them: :mod:`xcm_debias.soft_labels`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.calibration.folds import item_folds
from xcm_debias.calibration.text_languages import TEXT_COLUMN, languages_from_text
from xcm_debias.data import EmbeddingSet
from xcm_debias.fitted import FittedModule, restore_buffers
from xcm_debias.processors import _stats
from xcm_debias.soft_labels import (
    UnseenGroupWarning,
    _relabelled,
    from_text_name,
    inferred_rows,
    with_inferred,
)

#: (label, modality) pairs a pipeline can infer: languages of texts, cultures of images.
LABEL_MODALITIES: dict[str, str] = {"language": "text", "culture": "image"}
#: the label a missing row gets when no classifier could be fitted for it (ISO 639-2
#: "undetermined"); it carries no probability on any class, so stages treat the row as unseen
UNDETERMINED = "und"
ECE_BINS = 15
_Module = TypeVar("_Module", "LabelClassifier", "LabelModels")


class LabelClassifier(FittedModule):
    """Temperature-calibrated linear discriminant analysis of one label of one modality.

    Args:
        label: the label to predict (``"language"``, ``"culture"``, ...).
        modality: the rows it is fitted on and predicts for (``"text"``/``"image"``).
        shrinkage: covariance shrinkage, ``"ledoit-wolf"``, ``"none"`` or a number in [0, 1].
        n_folds: folds of the cross-fitting (by item; capped at the number of items).
        min_rows: fewest labelled calibration rows per class.
        seed: seed of the fold assignment.

    Fitted state: ``weight`` ``[d, k]``, ``bias`` ``[k]``, ``mean`` ``[d]``, ``temperature``;
    ``fitted_meta`` holds the classes and the cross-fitted ``accuracy``, ``ece`` and ``nll``.
    """

    _kind: ClassVar[str] = "label classifier"
    _fit_hint: ClassVar[str] = "call fit(calibration) first"

    def __init__(
        self,
        label: str,
        modality: str,
        shrinkage: str | float = "ledoit-wolf",
        n_folds: int = 5,
        min_rows: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.label = label
        self.modality = modality
        self.shrinkage = shrinkage
        self.n_folds = n_folds
        self.min_rows = min_rows
        self.seed = seed

    def _who(self) -> str:
        return f"LabelClassifier({self.label!r} of {self.modality} rows)"

    def _check_params(self) -> None:
        who = self._who()
        if self.modality not in ("text", "image"):
            raise ValueError(f"{who}: modality: expected 'text' or 'image', got {self.modality!r}")
        _stats.check_shrinkage(self.shrinkage, who)
        check_positive_int(self.n_folds, f"{who}: n_folds", minimum=2)
        check_positive_int(self.min_rows, f"{who}: min_rows", minimum=1)
        check_positive_int(self.seed, f"{who}: seed", minimum=0)

    # ------------------------------------------------------------------ fit
    def fit(self, calibration: EmbeddingSet) -> LabelClassifier:
        """Fit on the calibration rows of ``modality`` that carry ``label``; returns ``self``."""
        if not isinstance(calibration, EmbeddingSet):
            raise TypeError(
                f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}"
            )
        self._check_params()
        rows = self._labelled(calibration)
        classes, codes, counts = np.unique(
            rows.label(self.label), return_inverse=True, return_counts=True
        )
        who = self._who()
        if len(classes) < 2:
            raise ValueError(
                f"{who}.fit: expected at least 2 classes of {self.label!r} to tell apart, got "
                f"{classes.tolist()}"
            )
        if counts.min() < self.min_rows:
            small = classes[counts < self.min_rows].tolist()
            raise ValueError(
                f"{who}.fit: expected at least {self.min_rows} labelled rows per class, got "
                f"{int(counts.min())} for {small[0]!r}"
                + (f" (and {len(small) - 1} more)" if len(small) > 1 else "")
            )
        folds = item_folds(rows, self.n_folds, self.seed, who)
        x = torch.nn.functional.normalize(rows.embeddings.to(torch.float64), dim=1)
        mean = x.mean(dim=0)
        z = (x - mean) * math.sqrt(x.shape[1])
        y = torch.from_numpy(codes.astype(np.int64))
        held_out = self._out_of_fold_logits(z, codes, folds, len(classes))
        temperature = fit_temperature(held_out, y)
        nll = float(torch.nn.functional.cross_entropy(held_out / temperature, y))
        weight, bias = fit_lda(z, codes, len(classes), self.shrinkage)
        probs = torch.softmax(held_out / temperature, dim=1)
        self.set_state("weight", weight.float())
        self.set_state("bias", bias.float())
        self.set_state("mean", mean.float())
        self.set_state("temperature", torch.tensor(temperature, dtype=torch.float32))
        self.fitted_meta = {
            "classes": classes.tolist(),
            "n_rows": int(len(rows)),
            "n_folds": int(folds.max()) + 1,
            "temperature": temperature,
            "accuracy": float((probs.argmax(dim=1) == y).double().mean()),
            "ece": expected_calibration_error(probs, y),
            "nll": nll,
        }
        self.fitted_flag = torch.tensor(True)
        return self

    def _labelled(self, calibration: EmbeddingSet) -> EmbeddingSet:
        mask = calibration.modality == self.modality
        if not mask.any():
            raise ValueError(
                f"{self._who()}.fit: expected calibration {self.modality} rows, got none"
            )
        try:
            column = calibration.label(self.label)
        except KeyError:
            column = np.full(len(calibration), "")
        # a label inferred earlier (an unlabelled calibration row, see complete_calibration) is
        # not a gold label: the classifier learns from the rows that carried their own
        mask &= (column.astype(str) != "") & ~inferred_rows(calibration, self.label)
        if not mask.any():
            raise ValueError(
                f"{self._who()}.fit: expected a {self.label!r} label on some calibration "
                f"{self.modality} rows, got none"
            )
        return calibration[mask]

    def _out_of_fold_logits(
        self, z: torch.Tensor, codes: np.ndarray, folds: np.ndarray, k: int
    ) -> torch.Tensor:
        """Each fold's logits from a discriminant fitted on the other folds; a class absent from
        those folds scores ``log 10⁻⁶`` below the row's lowest logit (never predicted)."""
        out = torch.empty(len(z), k, dtype=z.dtype)
        for fold in range(int(folds.max()) + 1):
            held = folds == fold
            present = np.unique(codes[~held])
            local = np.searchsorted(present, codes[~held])
            weight, bias = fit_lda(z[torch.from_numpy(~held)], local, len(present), self.shrinkage)
            logits = z[torch.from_numpy(held)] @ weight + bias
            rows = torch.full((int(held.sum()), k), 0.0, dtype=z.dtype)
            rows[:] = (logits.min(dim=1, keepdim=True).values - math.log(1e6)).expand(-1, k)
            rows[:, torch.from_numpy(present)] = logits
            out[torch.from_numpy(held)] = rows
        return out

    # ---------------------------------------------------------------- apply
    @property
    def classes(self) -> list[str]:
        self.check_is_fitted()
        return list(self.fitted_meta["classes"])

    def predict_proba(self, data: EmbeddingSet) -> np.ndarray:
        """``[len(data), k]`` calibrated posteriors over :attr:`classes` (columns in that order)."""
        if not isinstance(data, EmbeddingSet):
            raise TypeError(f"data: expected an EmbeddingSet, got {type(data).__name__}")
        self.check_is_fitted()
        if data.dim != self.mean.shape[0]:
            raise ValueError(
                f"{self._who()}.predict_proba: expected embeddings of dimension "
                f"{self.mean.shape[0]} (as in calibration), got {data.dim}"
            )
        x = torch.nn.functional.normalize(data.embeddings.float(), dim=1)
        logits = ((x - self.mean) * math.sqrt(x.shape[1])) @ self.weight + self.bias
        return torch.softmax(logits / self.temperature, dim=1).numpy()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LabelClassifier:
        """An unfitted classifier (with its fitted metadata) from ``to_config`` output."""
        return _from_config(cls, config)


class LabelModels(FittedModule):
    """The label classifiers of a pipeline: fitted on calibration, filling missing labels.

    Args:
        labels: labels to infer, among :data:`LABEL_MODALITIES` (``language`` on texts,
            ``culture`` on images).
        threshold: an inferred row whose largest posterior is below it gets the identity in
            per-group maps (offsets still use its posterior); in ``[0, 1]``.
        n_folds, seed: of each :class:`LabelClassifier`.
        text_column: the extra column holding a text row's string (the encoders keep it as
            ``caption``): a text row without ``language`` that has one gets the language
            identified from the string (one-hot, confident;
            :mod:`xcm_debias.calibration.text_languages`), the others the classifier's
            posterior. ``None``: from the embeddings only.

    ``fit`` skips (and records why, see :meth:`summary`) a label that the calibration set
    cannot teach: absent, a single class, or too few rows per class.
    """

    _kind: ClassVar[str] = "label models"
    _fit_hint: ClassVar[str] = "call fit(calibration) first"

    def __init__(
        self,
        labels: Sequence[str] = tuple(LABEL_MODALITIES),
        threshold: float = 0.5,
        n_folds: int = 5,
        seed: int = 0,
        text_column: str | None = TEXT_COLUMN,
    ) -> None:
        super().__init__()
        self.labels = tuple(labels)
        self.threshold = threshold
        self.n_folds = n_folds
        self.seed = seed
        self.text_column = text_column
        self.models = torch.nn.ModuleDict()

    def _check_params(self) -> None:
        unknown = [label for label in self.labels if label not in LABEL_MODALITIES]
        if unknown:
            raise ValueError(
                f"LabelModels: labels: expected names among {sorted(LABEL_MODALITIES)}, got "
                f"{unknown}"
            )
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= float(t) <= 1.0:
            raise ValueError(f"LabelModels: threshold: expected a number in [0, 1], got {t!r}")
        column = self.text_column
        if column is not None and (not isinstance(column, str) or not column):
            raise ValueError(
                f"LabelModels: text_column: expected a column name or None, got {column!r}"
            )

    def fit(self, calibration: EmbeddingSet) -> LabelModels:
        """Fit one classifier per label the calibration set can teach; returns ``self``."""
        if not isinstance(calibration, EmbeddingSet):
            raise TypeError(
                f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}"
            )
        self._check_params()
        self.models = torch.nn.ModuleDict()
        skipped: dict[str, str] = {}
        for label in self.labels:
            model = LabelClassifier(
                label,
                LABEL_MODALITIES[label],
                n_folds=self.n_folds,
                seed=self.seed,
            )
            try:
                self.models[label] = model.fit(calibration)
            except (ValueError, RuntimeError) as exc:  # torch's LinAlgError is a RuntimeError
                skipped[label] = str(exc)
        self.fitted_meta = {
            "models": {label: m.to_config() for label, m in self.models.items()},
            "skipped": skipped,
        }
        self.fitted_flag = torch.tensor(True)
        return self

    def fill(self, data: EmbeddingSet) -> EmbeddingSet:
        """``data`` with every missing label that a classifier covers inferred (soft labels).

        Rows that carry the label, rows of another modality and rows already inferred are kept
        as they are; returns ``data`` itself when nothing is missing. A label whose classifier
        the calibration set could not teach (``summary()`` says why) is filled as
        :data:`UNDETERMINED` with no probability on any class, so every stage gives those rows
        the identity (no offset, no map), with an ``UnseenGroupWarning`` counting them.
        """
        if not isinstance(data, EmbeddingSet):
            raise TypeError(f"data: expected an EmbeddingSet, got {type(data).__name__}")
        self.check_is_fitted()
        for label, model in self.models.items():
            missing = (data.modality == model.modality) & (data.label(label) == "")
            if not missing.any():
                continue
            probs = model.predict_proba(data[missing])
            textual = _from_text(data[missing], label, model.classes, probs, self.text_column)
            confident = probs.max(axis=1) >= float(self.threshold)
            best = np.asarray(model.classes)[probs.argmax(axis=1)]
            data = with_inferred(data, label, missing, model.classes, probs, best, confident)
            data = _with_from_text(data, label, missing, textual)
        for label in self.fitted_meta.get("skipped", {}):
            data = _undetermined(data, label)
        return data

    def summary(self) -> dict[str, Any]:
        """Plain dict per label: classes, cross-fitted accuracy, ECE, NLL, T, rows — or
        ``{"skipped": reason}`` for a label the calibration set could not teach."""
        self.check_is_fitted()
        out: dict[str, Any] = {}
        for label, model in self.models.items():
            meta = model.fitted_meta
            out[label] = {
                "modality": model.modality,
                **{k: meta[k] for k in ("classes", "n_rows", "n_folds", "accuracy", "ece", "nll")},
                "temperature": meta["temperature"],
                "threshold": float(self.threshold),
            }
        for label, reason in self.fitted_meta.get("skipped", {}).items():
            out[label] = {"skipped": reason}
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LabelModels:
        """Rebuild (classifiers included, buffers not yet restored) from ``to_config`` output."""
        out = _from_config(cls, config)
        for label, child in out.fitted_meta.get("models", {}).items():
            out.models[label] = LabelClassifier.from_config(child)
        return out

    @staticmethod
    def restore(config: dict[str, Any], state: dict[str, torch.Tensor]) -> LabelModels:
        """A fitted ``LabelModels`` from its ``to_config()`` and ``state_dict()``."""
        out = LabelModels.from_config(config)
        restore_buffers(out, state)
        return out


class CalibrationLabelWarning(UserWarning):
    """Some calibration rows lacked a group label: inferred for the fit, or the label dropped.

    Carries ``label`` (``"language"``/``"culture"``), ``inferred`` (rows given the classifier's
    most probable class), ``unconfident`` (of those, rows whose largest posterior is below the
    threshold) and ``removed`` (rows of the modality whose label was emptied because no
    classifier could be fitted, e.g. the labelled rows held a single class).
    """

    def __init__(
        self, message: str, label: str, inferred: int = 0, unconfident: int = 0, removed: int = 0
    ) -> None:
        super().__init__(message)
        self.label, self.inferred = label, int(inferred)
        self.unconfident, self.removed = int(unconfident), int(removed)


def complete_calibration(
    calibration: EmbeddingSet,
    threshold: float = 0.5,
    seed: int = 0,
    stacklevel: int = 2,
    text_column: str | None = TEXT_COLUMN,
) -> EmbeddingSet:
    """``calibration`` with the missing ``language``/``culture`` labels of some rows inferred.

    For each label of :data:`LABEL_MODALITIES` that some, but not all, rows of its modality
    carry, a :class:`LabelClassifier` (one row per class suffices) is fitted on the rows that
    carry it and fills the others as :meth:`LabelModels.fill` does at search: the soft label
    (posterior), the most probable class in the label column (what a stage fits on) and the
    confidence flag (per-group maps leave an unconfident row unchanged). The unlabelled rows
    are not among the classifier's training rows, so their posteriors are out-of-sample, as at
    search. When no classifier can be fitted (the labelled rows hold a single class: no group
    contrast to learn either), the label is emptied on every row of the modality, as if absent
    (a stage that needs it then skips, e.g. ``GroupBalance``, or says what is missing). Either way
    one :class:`CalibrationLabelWarning` per label counts the rows. A label carried by every
    row, or by none, is left as it is; a fully labelled set is returned itself. A text row
    without ``language`` that carries its string in ``text_column`` gets the language read
    from the string, as at search (``None``: from the embeddings only).
    """
    if not isinstance(calibration, EmbeddingSet):
        raise TypeError(f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold: expected a number in [0, 1], got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold: expected a number in [0, 1], got {threshold!r}")
    check_positive_int(seed, "seed", minimum=0)
    if text_column is not None and (not isinstance(text_column, str) or not text_column):
        raise ValueError(f"text_column: expected a column name or None, got {text_column!r}")
    for label, modality in LABEL_MODALITIES.items():
        rows = calibration.modality == modality
        try:
            column = calibration.label(label).astype(str)
        except KeyError:
            continue
        missing = rows & (column == "") & ~inferred_rows(calibration, label)
        n_missing, n_rows = int(missing.sum()), int(rows.sum())
        if n_missing == 0 or n_missing == n_rows:
            continue
        where = f"{n_missing} of {n_rows} calibration {modality} rows without a {label!r} label"
        model = LabelClassifier(label, modality, min_rows=1, seed=seed)
        try:
            model.fit(calibration)
        except (ValueError, RuntimeError) as exc:  # torch's LinAlgError is a RuntimeError
            calibration = _relabelled(
                calibration, {label: np.where(rows, "", column)}, calibration.extra
            )
            message = (
                f"{where}, and no classifier to infer it ({exc}): {label!r} is removed from "
                f"all {n_rows} {modality} rows (as if absent)"
            )
            warnings.warn(
                CalibrationLabelWarning(message, label, removed=n_rows), stacklevel=stacklevel
            )
            continue
        probs = model.predict_proba(calibration[missing])
        textual = _from_text(calibration[missing], label, model.classes, probs, text_column)
        confident = probs.max(axis=1) >= float(threshold)
        best = np.asarray(model.classes)[probs.argmax(axis=1)]
        calibration = with_inferred(
            calibration, label, missing, model.classes, probs, best, confident
        )
        calibration = _with_from_text(calibration, label, missing, textual)
        unsure = int((~confident).sum())
        read = f"{int(textual.sum())} read from their strings, the others " if textual.any() else ""
        message = (
            f"{where}: {read}inferred from the embeddings (cross-fitted accuracy "
            f"{model.fitted_meta['accuracy']:.3f} on the labelled rows); the stages fit on the "
            f"most probable class, and {unsure} row(s) below confidence {float(threshold):g} "
            "get the identity in per-group maps"
        )
        warnings.warn(
            CalibrationLabelWarning(message, label, n_missing, unsure), stacklevel=stacklevel
        )
    return calibration


def _from_text(
    rows: EmbeddingSet, label: str, classes: list[str], probs: np.ndarray, column: str | None
) -> np.ndarray:
    """Mask of the ``rows`` whose ``language`` was read from their string in ``column``; their
    posterior in ``probs`` (changed in place: the caller's own array) becomes one-hot."""
    textual = np.zeros(len(rows), dtype=bool)
    if label != "language" or column is None:
        return textual
    found = languages_from_text(rows, classes, column)
    if found is None:
        return textual
    textual, codes = found
    probs[textual] = np.eye(len(classes), dtype=probs.dtype)[codes]
    return textual


def _with_from_text(
    data: EmbeddingSet, label: str, rows: np.ndarray, textual: np.ndarray
) -> EmbeddingSet:
    """``data`` with ``from_text:<label>`` set to ``textual`` on the bool mask ``rows`` (the
    column is added only when some row was read from its string, or it exists already)."""
    name = from_text_name(label)
    if not textual.any() and name not in data.extra:
        return data
    flags = data.extra.get(name, np.zeros(len(data), dtype=bool)).astype(bool).copy()
    flags[rows] = textual
    return _relabelled(data, {}, {**data.extra, name: flags})


def _from_config(cls: type[_Module], config: dict[str, Any]) -> _Module:
    if not isinstance(config, dict) or config.get("class") != cls.__name__:
        raise ValueError(f"config: expected a saved {cls.__name__}, got {config!r:.80}")
    module = cls(**config.get("params", {}))
    module.fitted_meta = dict(config.get("fitted_meta", {}))
    return module


def fit_lda(
    z: torch.Tensor, codes: np.ndarray, k: int, shrinkage: str | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """LDA's linear logits ``z W + b``: ``W = Σ⁻¹M``, ``b_c = −½ m_cᵀΣ⁻¹m_c + log π_c``.

    ``M`` (``[d, k]``) holds the class means of the rows ``z`` (every class present in
    ``codes``), ``Σ`` their within-class covariance shrunk by ``shrinkage``
    (:func:`xcm_debias.processors._stats.covariance`) plus ``10⁻⁶·tr(Σ)/d·I`` (``Σ = I`` when
    the rows do not spread within any class), ``π`` the class shares.
    """
    means = _stats.group_means(z, codes, k)
    covariance, _ = _stats.covariance(z - means[torch.from_numpy(codes)], shrinkage)
    # a ridge of 10⁻⁶ of the mean variance keeps Σ invertible; no within-class spread at all
    # (one row per class) leaves the nearest-mean rule, Σ = I
    level = float(torch.diagonal(covariance).mean())
    eye = torch.eye(len(covariance), dtype=covariance.dtype)
    covariance = covariance + 1e-6 * level * eye if level > 0 else eye
    weight = torch.linalg.solve(covariance, means.T)
    shares = torch.from_numpy(np.bincount(codes, minlength=k) / len(codes)).to(z.dtype)
    return weight, -0.5 * (means.T * weight).sum(dim=0) + shares.log()


def fit_temperature(logits: torch.Tensor, y: torch.Tensor) -> float:
    """``T`` minimising the NLL of ``softmax(logits / T)`` (L-BFGS on ``log T``, within
    ``[0.01, 100]``)."""
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t],
        max_iter=100,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )
    logits = logits.detach().double()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.clamp(-4.6, 4.6).exp(), y)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return float(log_t.detach().clamp(-4.6, 4.6).exp())


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Top-label ECE: ``Σ_b (n_b/n) |accuracy_b − confidence_b|`` over equal-width bins."""
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == y).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype)
    which = torch.bucketize(confidence, edges[1:-1], right=True)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = correct[members].mean() - confidence[members].double().mean()
            total += float(members.double().mean() * gap.abs())
    return total


def used_labels(processors: Any, scorers: Iterable[Any]) -> list[str]:
    """The inferable labels a fitted pipeline reads at search: the processors' ``needs`` and
    the group labels of fitted score stages (``query_group``/``gallery_group`` in their
    ``fitted_meta``, unless the stage was skipped)."""
    names = set(getattr(processors, "needs", ()) or ())
    for scorer in scorers:
        meta = getattr(scorer, "fitted_meta", {})
        if "skipped" not in meta:
            names.update(str(meta.get(key)) for key in ("query_group", "gallery_group"))
    return [label for label in LABEL_MODALITIES if label in names]


def _undetermined(data: EmbeddingSet, label: str) -> EmbeddingSet:
    """``data`` with the rows lacking ``label`` (of its modality) marked inferred as
    :data:`UNDETERMINED`, with zero posteriors; a warning counts them."""
    missing = (data.modality == LABEL_MODALITIES[label]) & (data.label(label) == "")
    n = int(missing.sum())
    if not n:
        return data
    warnings.warn(
        UnseenGroupWarning(
            f"LabelModels.fill: no {label!r} classifier (the calibration set could not teach "
            f"one); {n} rows without a {label!r} label get the identity",
            who="LabelModels",
            values=[UNDETERMINED],
            rows=n,
        ),
        stacklevel=3,
    )
    return with_inferred(
        data,
        label,
        missing,
        [],
        np.zeros((n, 0), dtype=np.float32),
        np.full(n, UNDETERMINED),
        np.zeros(n, dtype=bool),
    )


__all__ = [
    "LABEL_MODALITIES",
    "CalibrationLabelWarning",
    "LabelClassifier",
    "LabelModels",
    "UNDETERMINED",
    "complete_calibration",
    "expected_calibration_error",
    "fit_lda",
    "fit_temperature",
    "used_labels",
]
