"""PostProcessor: the contract every embedding-level debiasing method follows.

Habits (scikit-learn estimators + concept-erasure):

* constructor arguments are stored untouched as attributes of the same name and validated in
  ``fit``; ``get_params()`` reads them back, so a processor is re-creatable from JSON;
  ``set_params``, ``fit_transform`` and ``sklearn.base.clone`` work as in scikit-learn;
* ``fit(calibration) -> self`` gathers statistics into registered buffers (``state_dict()`` is
  the whole fitted model) plus a small JSON-able ``fitted_meta`` (e.g. the language codes);
* ``forward(x, data)`` is pure algebra on a ``[n, D]`` float tensor, batched, never in place;
* ``transform(data)`` validates, applies ``forward`` to the rows whose modality is in
  ``apply_to`` and carries every label over;
* ``save(path)`` writes one safetensors file whose header metadata holds the JSON config: no
  pickle anywhere; ``PostProcessor.load(path)`` rebuilds any registered processor or chain;
* ``a | b`` is ``Chain(a, b)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from xcm_debias.calibration.folds import item_folds, out_of_fold
from xcm_debias.data import MODALITIES, EmbeddingSet
from xcm_debias.fitted import (  # noqa: F401  (re-exported: the names' former home)
    _METADATA_KEY,
    FORMAT_VERSION,
    FittedModule,
    NotFittedError,
    _jsonable,
    constructor_params,
    restore_buffers,
)


class PostProcessor(FittedModule):
    """Base class of embedding-level post-processors.

    Subclasses set ``needs`` (labels ``transform`` requires on the rows it changes, e.g.
    ``("language",)``), implement ``_fit(calibration)`` and ``forward(x, data)``, and keep their
    constructor arguments as same-named attributes. The default ``apply_to`` changes both
    modalities; a subclass may take ``apply_to`` as a constructor argument.
    """

    needs: ClassVar[tuple[str, ...]] = ()
    fit_needs: ClassVar[tuple[str, ...]] = ()
    registry: ClassVar[dict[str, type[PostProcessor]]] = {}
    apply_to: tuple[str, ...] = MODALITIES
    _kind: ClassVar[str] = "processor"
    _fit_hint: ClassVar[str] = "call fit(calibration) before transform"

    # ------------------------------------------------------------------ fit
    def fit(self, calibration: EmbeddingSet) -> PostProcessor:
        """Fit on a calibration set; returns ``self``."""
        if not isinstance(calibration, EmbeddingSet):
            raise TypeError(
                f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}"
            )
        self._check_apply_to()
        rows = self._rows(calibration)
        if not rows.any():
            raise ValueError(
                f"{type(self).__name__}.fit: expected calibration rows with modality in "
                f"{tuple(self.apply_to)}, got none"
            )
        for label in self.fit_needs:
            calibration[rows].require_label(
                label, f"{type(self).__name__}.fit", f"{'/'.join(self.apply_to)} row"
            )
        with torch.no_grad():
            self._fit(calibration)
        # the input dimension, so that transform refuses other dimensions by name
        self.fitted_meta["input_dim"] = calibration.dim
        self.fitted_flag = torch.tensor(True)
        return self

    def _fit(self, calibration: EmbeddingSet) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit")

    def fit_transform(self, calibration: EmbeddingSet) -> EmbeddingSet:
        """``fit(calibration)``, then ``transform(calibration)`` (scikit-learn's shorthand)."""
        return self.fit(calibration).transform(calibration)

    # ------------------------------------------------------------ transform
    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        """Map ``[n, D]`` embeddings (of the rows of ``data``) to new embeddings."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def _rows(self, data: EmbeddingSet) -> np.ndarray:
        return np.isin(data.modality, np.array(list(self.apply_to)))

    def _check_apply_to(self) -> None:
        modalities = (self.apply_to,) if isinstance(self.apply_to, str) else tuple(self.apply_to)
        bad = [m for m in modalities if m not in MODALITIES]
        if not modalities or bad:
            raise ValueError(
                f"apply_to: expected a non-empty subset of {MODALITIES}, got {self.apply_to!r}"
            )
        self.apply_to = modalities

    def transform(self, data: EmbeddingSet) -> EmbeddingSet:
        """New EmbeddingSet: rows in ``apply_to`` mapped by ``forward``, others unchanged."""
        if not isinstance(data, EmbeddingSet):
            raise TypeError(f"data: expected an EmbeddingSet, got {type(data).__name__}")
        self.check_is_fitted()
        expected = self.fitted_meta.get("input_dim")
        if expected is not None and data.dim != expected:
            raise ValueError(
                f"data: expected embeddings of dimension {expected} (as {type(self).__name__}'s "
                f"calibration), got {data.dim}"
            )
        rows = self._rows(data)
        if not rows.any():
            return data
        part = data if rows.all() else data[rows]
        for label in self.needs:
            part.require_label(
                label, f"{type(self).__name__}.transform", f"{'/'.join(self.apply_to)} row"
            )
        with torch.no_grad():
            y = self.forward(part.embeddings.float(), part)
        if y.shape[0] != len(part):
            raise RuntimeError(
                f"{type(self).__name__}.forward returned {y.shape[0]} rows for {len(part)}"
            )
        if rows.all():
            return data.with_embeddings(y)
        if y.shape[1] != data.dim:
            raise ValueError(
                f"{type(self).__name__}: changes the dimension ({data.dim} -> {y.shape[1]}), so it "
                f"must apply to every row; got apply_to={self.apply_to}"
            )
        out = data.embeddings.float().clone()
        out[torch.from_numpy(rows)] = y
        return data.with_embeddings(out)

    def __or__(self, other: PostProcessor) -> Chain:
        if not isinstance(other, PostProcessor):
            return NotImplemented
        return Chain(self, other)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PostProcessor:
        """Rebuild an (unfitted) processor or chain from ``to_config`` output."""
        if isinstance(config, dict) and config.get("class") == "Chain":
            steps = (PostProcessor.from_config(c) for c in config["steps"])
            return Chain(*steps, **config.get("params", {}))
        return PostProcessor._from_registry(config)


class Chain(PostProcessor):
    """Processors applied in turn; ``fit`` fits each on the previous ones' output.

    ``Chain(a, b)`` equals ``b.transform(a.transform(x))`` once fitted; ``a | b | c`` flattens
    (keeping the left chain's ``cross_fit``).

    Cross-fitting (``cross_fit=F >= 2``): a stage that overfits its calibration rows hands the
    next stage outputs it will never see on test data. With cross-fitting, stage k+1 is fitted on
    *out-of-fold* outputs of stage k: the calibration items are split into F folds (seeded,
    deterministic; an item's images and captions stay together) and, for each fold, a fresh copy
    of stage k fitted on the other folds transforms that fold's rows. Each stage itself is still
    fitted on all the rows it receives, so transform is unchanged; fitting costs F extra fits of
    every stage but the last. The effective number of folds is ``min(F, number of calibration
    items)``: with fewer items than folds every item is its own fold (leave-one-item-out), so
    ``cross_fit=20`` works on 12 calibration items (at least 2 items are needed).
    ``cross_fit=0`` (default) fits each stage on the previous stage's in-sample output.
    """

    def __init__(self, *steps: PostProcessor, cross_fit: int = 0) -> None:
        super().__init__()
        if isinstance(cross_fit, bool) or not isinstance(cross_fit, (int, np.integer)):
            raise TypeError(f"cross_fit: expected an integer (0 or >= 2), got {cross_fit!r}")
        if cross_fit == 1 or cross_fit < 0:
            raise ValueError(
                f"cross_fit: expected 0 (off) or a number of folds >= 2, got {cross_fit}"
            )
        self.cross_fit = int(cross_fit)
        flat: list[PostProcessor] = []
        for i, step in enumerate(steps):
            if not isinstance(step, PostProcessor):
                raise TypeError(f"steps[{i}]: expected a PostProcessor, got {type(step).__name__}")
            flat.extend(step.steps if isinstance(step, Chain) else [step])
        if not flat:
            raise ValueError("steps: expected at least one processor, got none")
        self.steps = torch.nn.ModuleList(flat)

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(dict.fromkeys(label for s in self.steps for label in s.needs))

    def __or__(self, other: PostProcessor) -> Chain:
        if not isinstance(other, PostProcessor):
            return NotImplemented
        return Chain(*self.steps, other, cross_fit=self.cross_fit)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``cross_fit``; with ``deep``, also each step as ``step<i>`` and its parameters as
        ``step<i>__<name>`` (scikit-learn's nested form, settable with ``set_params``)."""
        params: dict[str, Any] = {"cross_fit": self.cross_fit}
        if deep:
            for i, step in enumerate(self.steps):
                params[f"step{i}"] = step
                params.update({f"step{i}__{k}": v for k, v in step.get_params().items()})
        return params

    def set_params(self, **params: Any) -> Chain:
        """Set ``cross_fit`` and/or step parameters ``step<i>__<name>``; returns ``self``.

        A step whose parameters change is rebuilt unfitted (see ``FittedModule.set_params``).
        """
        nested: dict[int, dict[str, Any]] = {}
        for key, value in params.items():
            step, sep, name = key.partition("__")
            index = step.removeprefix("step")
            if sep and step.startswith("step") and index.isdigit() and int(index) < len(self.steps):
                nested.setdefault(int(index), {})[name] = value
            elif key != "cross_fit":
                raise ValueError(
                    f"set_params: expected 'cross_fit' or 'step<i>__<name>' with i < "
                    f"{len(self.steps)}, got {key!r}"
                )
        if "cross_fit" in params:
            self.cross_fit = Chain(*self.steps, cross_fit=params["cross_fit"]).cross_fit
        for i, step_params in nested.items():
            self.steps[i].set_params(**step_params)
        return self

    def extra_repr(self) -> str:
        return ""

    def fit(self, calibration: EmbeddingSet) -> Chain:
        if not isinstance(calibration, EmbeddingSet):
            raise TypeError(
                f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}"
            )
        folds = self._item_folds(calibration) if self.cross_fit else None
        current = calibration
        for i, step in enumerate(self.steps):
            step.fit(current)
            if i + 1 < len(self.steps):
                if folds is None:
                    current = step.transform(current)
                else:
                    current = out_of_fold_transform(
                        step, current, folds, f"Chain(cross_fit={self.cross_fit}).fit: step {i}"
                    )
        self.fitted_flag = torch.tensor(True)
        return self

    def _item_folds(self, calibration: EmbeddingSet) -> np.ndarray:
        """Fold of each row (see :func:`item_folds`; the chain's seed is fixed at 0)."""
        return item_folds(calibration, self.cross_fit, 0, f"Chain(cross_fit={self.cross_fit})")

    @property
    def is_fitted(self) -> bool:
        return all(s.is_fitted for s in self.steps)

    def transform(self, data: EmbeddingSet) -> EmbeddingSet:
        self.check_is_fitted()
        for step in self.steps:
            data = step.transform(data)
        return data

    def to_config(self) -> dict[str, Any]:
        return {
            "class": "Chain",
            "params": self.get_params(deep=False),
            "steps": [s.to_config() for s in self.steps],
        }


def as_processor(value: object, name: str = "processors") -> PostProcessor | None:
    """``None``, a PostProcessor (a Chain included) as is, or a list/tuple of them as a Chain."""
    if value is None or isinstance(value, PostProcessor):
        return value
    if isinstance(value, (list, tuple)):
        for i, step in enumerate(value):
            if not isinstance(step, PostProcessor):
                raise TypeError(f"{name}[{i}]: expected a PostProcessor, got {type(step).__name__}")
        return Chain(*value) if value else None
    raise TypeError(
        f"{name}: expected a PostProcessor, a Chain, a list of PostProcessors or None, got "
        f"{type(value).__name__}"
    )


def out_of_fold_transform(
    step: PostProcessor, data: EmbeddingSet, folds: np.ndarray, where: str
) -> EmbeddingSet:
    """``data`` with each fold's rows transformed by a copy of ``step`` fitted without them.

    ``folds`` (from :func:`xcm_debias.calibration.folds.item_folds`) gives each row's fold. A
    copy that cannot be fitted raises a ValueError starting with ``where`` (which stage) and
    naming the step's class and the fold. Used by :class:`Chain` and :class:`xcm_debias.Debiased`.
    """
    return out_of_fold(
        data,
        folds,
        lambda rows: PostProcessor.from_config({**step.to_config(), "fitted_meta": {}}).fit(rows),
        f"{where} ({type(step).__name__})",
    )
