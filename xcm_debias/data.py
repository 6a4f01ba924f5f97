"""EmbeddingSet: embeddings ``[N, D]`` with aligned per-row labels.

Labels
------
``id``        unique row identifier (generated as ``"<modality>-<row>"`` when not given)
``item``      semantic identity; captions and images of one item are relevant to each other.
              Stored as text: a blank item (``None``, ``""``, whitespace, NaN) is refused, and
              so are values of different types with the same text (``1`` and ``"1"``,
              ``nan`` and ``"nan"``), which would otherwise silently become one item
``modality``  ``"image"`` or ``"text"``
``language``  BCP-47 code of a text row (empty string = absent, e.g. for images), stored as its
              matching key (``EN``, ``eng``, ``en_US`` -> ``en``: ``language_codes.language_key``);
              ``language_tag`` keeps the codes as given, for display
``culture``   any string (images, optionally texts; empty string = absent)
extra         free columns (``objects``, ``caption``, ``path``...): 1-D numpy arrays of
              numbers, booleans or strings, so that every set saves without pickle.

Embeddings are never modified in place: every operation returns a new set.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

import xcm_debias.formats as formats
from xcm_debias._validation import as_float_matrix, as_label_array, check_fraction
from xcm_debias.language_codes import language_key, language_keys
from xcm_debias.safe_norm import safe_scaled_rows

MODALITIES = ("image", "text")
LABELS = ("id", "item", "modality", "language", "culture")
#: the codes of ``language`` as given (kept only where some differ from their matching key)
LANGUAGE_TAG = "language_tag"

Selector = slice | int | Sequence[int] | Sequence[bool] | np.ndarray | torch.Tensor


class EmbeddingSet:
    """A float tensor ``[N, D]`` plus aligned per-row labels, validated on construction.

    Args:
        embeddings: ``[N, D]`` float tensor or array (float16/bfloat16/float32/float64). Kept as
            given (no copy); never modified.
        modality: ``"image"``/``"text"``, one per row or a single string for all rows.
        item: semantic identity per row (default: the row's id, i.e. nothing shares an item).
        id: unique row identifiers (default ``"<modality>-<row>"``).
        language: language code per row (texts); ``None``/``""`` means absent. Stored as its
            matching key (``EN``, ``eng``, ``en-US`` -> ``en``); ``language_tag`` keeps it as given.
        culture: culture label per row; ``None``/``""`` means absent.
        extra: further columns, name -> 1-D array of length N (numbers, booleans or strings).
        allow_zero_norm: accept all-zero rows (they have no direction; cosine retrieval is
            undefined for them, so they are rejected by default).

    Raises:
        TypeError / ValueError naming the field, the expected and the received value.
    """

    def __init__(
        self,
        embeddings: torch.Tensor | np.ndarray,
        *,
        modality: str | Sequence[str] | np.ndarray,
        item: Sequence[object] | np.ndarray | None = None,
        id: Sequence[object] | np.ndarray | None = None,  # noqa: A002 - public label name
        language: str | Sequence[object] | np.ndarray | None = None,
        culture: str | Sequence[object] | np.ndarray | None = None,
        extra: Mapping[str, Sequence[object] | np.ndarray] | None = None,
        allow_zero_norm: bool = False,
    ) -> None:
        x = as_float_matrix(embeddings, "embeddings")
        n = x.shape[0]
        if not allow_zero_norm:
            zero = (x == 0).all(dim=1).nonzero().flatten()
            if len(zero):
                raise ValueError(
                    f"embeddings: expected non-zero rows (cosine retrieval needs a direction), "
                    f"got {len(zero)} all-zero row(s), first at row {int(zero[0])}"
                )
        mod = as_label_array(modality, "modality", n)
        unknown = sorted(set(np.unique(mod).tolist()) - set(MODALITIES))
        if unknown:
            raise ValueError(f"modality: expected values in {MODALITIES}, got {unknown}")
        ids = (
            np.char.add(np.char.add(mod, "-"), np.arange(n).astype(np.str_))
            if id is None
            else as_label_array(id, "id", n)
        )
        if len(np.unique(ids)) != n:
            values, counts = np.unique(ids, return_counts=True)
            raise ValueError(
                f"id: expected unique ids, got duplicates such as {values[counts > 1][:3].tolist()}"
            )
        self._x = x
        self._labels: dict[str, np.ndarray] = {
            "id": ids,
            "item": ids.copy() if item is None else _item_labels(item, n),
            "modality": mod,
            "language": np.full(n, "", dtype="<U1")
            if language is None
            else as_label_array(language, "language", n),
            "culture": np.full(n, "", dtype="<U1")
            if culture is None
            else as_label_array(culture, "culture", n),
        }
        if language is not None:
            _key_languages(self._labels)
        self._extra: dict[str, np.ndarray] = {}
        for name, column in (extra or {}).items():
            self._extra[name] = _as_extra_column(column, name, n)

    # ------------------------------------------------------------------ access
    @property
    def embeddings(self) -> torch.Tensor:
        """The ``[N, D]`` tensor (a view of what was given: do not modify it)."""
        return self._x

    @property
    def dim(self) -> int:
        return int(self._x.shape[1])

    def __len__(self) -> int:
        return int(self._x.shape[0])

    @property
    def id(self) -> np.ndarray:  # noqa: A003
        return self._labels["id"]

    @property
    def item(self) -> np.ndarray:
        return self._labels["item"]

    @property
    def modality(self) -> np.ndarray:
        return self._labels["modality"]

    @property
    def language(self) -> np.ndarray:
        return self._labels["language"]

    @property
    def language_tag(self) -> np.ndarray:
        """The language codes as given (``language`` holds their matching keys), for display."""
        return self._labels.get(LANGUAGE_TAG, self._labels["language"])

    @property
    def culture(self) -> np.ndarray:
        return self._labels["culture"]

    @property
    def extra(self) -> dict[str, np.ndarray]:
        """Free columns (a copy of the mapping; arrays are shared, do not modify them)."""
        return dict(self._extra)

    def label(self, name: str) -> np.ndarray:
        """Any label or extra column by name."""
        if name == LANGUAGE_TAG:
            return self.language_tag
        if name in self._labels:
            return self._labels[name]
        if name in self._extra:
            return self._extra[name]
        raise KeyError(
            f"label: expected one of {sorted([*self._labels, *self._extra])}, got {name!r}"
        )

    def has_label(self, name: str) -> bool:
        """True when every row has a non-empty value for the label ``name``."""
        if name not in self._labels and name not in self._extra:
            return False
        column = self.label(name)
        return bool(column.dtype.kind != "U" or (column != "").all())

    def require_label(self, name: str, who: str, rows: str = "rows") -> None:
        """Raise ``ValueError`` when some row lacks the label ``name`` (``who`` names the caller)."""
        if not self.has_label(name):
            missing = int((self.label(name) == "").sum()) if name in self._labels else len(self)
            raise ValueError(
                f"{who}: expected a {name!r} label on every {rows}, "
                f"got {missing} of {len(self)} rows without one"
            )

    def languages(self) -> list[str]:
        """Sorted distinct non-empty language codes."""
        return sorted(set(np.unique(self.language).tolist()) - {""})

    def cultures(self) -> list[str]:
        """Sorted distinct non-empty culture labels."""
        return sorted(set(np.unique(self.culture).tolist()) - {""})

    def __repr__(self) -> str:
        counts = {m: int((self.modality == m).sum()) for m in MODALITIES}
        return (
            f"EmbeddingSet(n={len(self)}, dim={self.dim}, dtype={self._x.dtype}, "
            f"images={counts['image']}, texts={counts['text']}, "
            f"languages={self.languages()}, cultures={self.cultures()}, extra={sorted(self._extra)})"
        )

    # --------------------------------------------------------------- building
    def with_embeddings(self, embeddings: torch.Tensor | np.ndarray) -> EmbeddingSet:
        """Same labels, new embeddings (same number of rows; any dimension)."""
        x = as_float_matrix(embeddings, "embeddings")
        if x.shape[0] != len(self):
            raise ValueError(
                f"embeddings: expected {len(self)} rows (one per labelled row), got {x.shape[0]}"
            )
        return self._new(x, self._labels, self._extra)

    def with_labels(self, **columns: Sequence[object] | np.ndarray) -> EmbeddingSet:
        """Same embeddings; replace or add labels / extra columns by name."""
        labels = dict(self._labels)
        extra = dict(self._extra)
        for name, column in columns.items():
            if name == "modality":
                raise ValueError(
                    "with_labels: modality cannot be changed; build a new EmbeddingSet"
                )
            if name == "item":
                labels[name] = _item_labels(column, len(self))
            elif name in LABELS:
                labels[name] = as_label_array(column, name, len(self))
                if name == "language":
                    _key_languages(labels)
            else:
                extra[name] = _as_extra_column(column, name, len(self))
        if len(np.unique(labels["id"])) != len(self):
            raise ValueError("id: expected unique ids after with_labels, got duplicates")
        return self._new(self._x, labels, extra)

    @classmethod
    def _new(
        cls, x: torch.Tensor, labels: Mapping[str, np.ndarray], extra: Mapping[str, np.ndarray]
    ) -> EmbeddingSet:
        out = cls.__new__(cls)
        out._x = x
        out._labels = dict(labels)
        out._extra = dict(extra)
        return out

    def __getitem__(self, selector: Selector) -> EmbeddingSet:
        """Rows by slice, integer indices or a boolean mask; an empty selection is an error."""
        index = _as_row_index(selector, len(self))
        if len(index) == 0:
            raise ValueError("selection: expected at least one row, got an empty selection")
        t_index = torch.from_numpy(index)
        x = self._x.index_select(0, t_index.to(self._x.device))
        labels = {k: v[index] for k, v in self._labels.items()}
        extra = {k: v[index] for k, v in self._extra.items()}
        return self._new(x, labels, extra)

    def where(self, **conditions: str | Iterable[str]) -> EmbeddingSet:
        """Rows whose labels match, e.g. ``where(modality="text", language=["sw", "vi"])``."""
        mask = np.ones(len(self), dtype=bool)
        for name, wanted in conditions.items():
            column = self.label(name)
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            if name == "language":
                values = [language_key(v) if isinstance(v, str) else v for v in values]
            mask &= np.isin(column, np.array(values, dtype=column.dtype))
        if not mask.any():
            raise ValueError(f"where: no row matches {conditions}")
        return self[mask]

    @property
    def images(self) -> EmbeddingSet:
        """The image rows."""
        return self.where(modality="image")

    @property
    def texts(self) -> EmbeddingSet:
        """The text rows."""
        return self.where(modality="text")

    def normalized(self) -> EmbeddingSet:
        """Rows scaled to unit L2 norm (float32 math, the input dtype kept).

        Safe for any finite row: huge (``1e19``) or tiny (``1e-30``) rows are first scaled by
        a power of two (exact) so their norm neither overflows nor underflows; the result is
        bitwise the one for the unscaled row whenever that one does not overflow.
        """
        x = safe_scaled_rows(self._x).float()
        norms = x.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError("normalized: expected non-zero rows, got an all-zero row")
        return self._new((x / norms).to(self._x.dtype), self._labels, self._extra)

    @staticmethod
    def concat(sets: Sequence[EmbeddingSet]) -> EmbeddingSet:
        """Stack sets row-wise. Dimensions must agree; extra columns must exist in all or none.

        Generated ids that would collide (two sets both holding ``image-0``) are made unique by
        prefixing the part's position (``p1:image-0``); explicit duplicate ids are an error.
        """
        sets = list(sets)
        if not sets:
            raise ValueError("sets: expected at least one EmbeddingSet, got none")
        for i, s in enumerate(sets):
            if not isinstance(s, EmbeddingSet):
                raise TypeError(f"sets[{i}]: expected an EmbeddingSet, got {type(s).__name__}")
        dims = {s.dim for s in sets}
        if len(dims) != 1:
            raise ValueError(f"sets: expected one embedding dimension, got {sorted(dims)}")
        extra_names = [set(s._extra) for s in sets]
        common = set.intersection(*extra_names)
        dropped = set.union(*extra_names) - common
        if dropped:
            raise ValueError(
                f"sets: extra columns must be present in every set, got {sorted(dropped)} in only some "
                "(add them with with_labels, or drop them)"
            )
        dtype = torch.promote_types(sets[0]._x.dtype, sets[0]._x.dtype)
        for s in sets[1:]:
            dtype = torch.promote_types(dtype, s._x.dtype)
        x = torch.cat([s._x.to(dtype) for s in sets], dim=0)
        labels = {k: np.concatenate([s._labels[k] for s in sets]) for k in LABELS}
        if any(LANGUAGE_TAG in s._labels for s in sets):
            labels[LANGUAGE_TAG] = np.concatenate([s.language_tag for s in sets])
        if len(np.unique(labels["id"])) != len(labels["id"]):
            labels["id"] = np.concatenate(
                [np.char.add(f"p{i}:", s._labels["id"]) for i, s in enumerate(sets)]
            )
            if len(np.unique(labels["id"])) != len(labels["id"]):
                raise ValueError("sets: expected unique ids across sets, got duplicates")
        extra = {k: np.concatenate([s._extra[k] for s in sets]) for k in sorted(common)}
        return EmbeddingSet._new(x, labels, extra)

    def split_items(
        self, test_size: float = 0.5, seed: int = 0
    ) -> tuple[EmbeddingSet, EmbeddingSet]:
        """Split into (calibration, test) with disjoint items.

        Items are stratified by their culture (the culture of their rows, if any) so each culture
        keeps about ``test_size`` of its items on the test side; then, where a language or a
        culture would sit on one side only and at least two items carry it, one item moves
        across. Deterministic for a given ``seed``.
        """
        size = check_fraction(test_size, "test_size")
        items, inverse = np.unique(self.item, return_inverse=True)
        if len(items) < 2:
            raise ValueError(f"split_items: expected at least 2 distinct items, got {len(items)}")
        rng = np.random.default_rng(seed)
        item_culture = np.full(len(items), "", dtype=object)
        for row in np.flatnonzero(self.culture != ""):
            item_culture[inverse[row]] = self.culture[row]
        is_test = np.zeros(len(items), dtype=bool)
        for culture in sorted(set(item_culture.tolist())):
            members = np.flatnonzero(item_culture == culture)
            rng.shuffle(members)
            n_test = int(round(size * len(members)))
            if len(members) >= 2:
                n_test = min(max(n_test, 1), len(members) - 1)
            is_test[members[:n_test]] = True
        if is_test.all() or not is_test.any():
            order = rng.permutation(len(items))
            n_test = min(max(int(round(size * len(items))), 1), len(items) - 1)
            is_test[:] = False
            is_test[order[:n_test]] = True
        for column in (self.language, self.culture):
            for value in sorted(set(column.tolist()) - {""}):
                carriers = np.unique(inverse[column == value])
                if len(carriers) < 2:
                    continue
                sides = is_test[carriers]
                if sides.all() or not sides.any():
                    is_test[carriers[0]] = not is_test[carriers[0]]
        row_test = is_test[inverse]
        if row_test.all() or not row_test.any():
            raise ValueError("split_items: could not place items on both sides")
        return self[~row_test], self[row_test]

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Save as ``.npz`` or ``.parquet`` (by suffix) or as a clip-retrieval folder (no suffix)."""
        return formats.write(path, self._x, self.to_columns())

    @staticmethod
    def load(path: str | Path) -> EmbeddingSet:
        """Load a ``.npz``, a ``.parquet`` or a clip-retrieval folder."""
        embeddings, columns = formats.read(path)
        return EmbeddingSet.from_columns(embeddings, columns, str(path))

    @staticmethod
    def from_columns(
        embeddings: torch.Tensor | np.ndarray, columns: Mapping[str, np.ndarray], source: str = ""
    ) -> EmbeddingSet:
        """The set ``to_columns`` describes: labels by name, ``extra.<name>`` as extra columns.

        ``source`` (e.g. the file read) prefixes the error when the ``modality`` column is missing.
        """
        x = embeddings if isinstance(embeddings, torch.Tensor) else torch.from_numpy(embeddings)
        labels = {k: formats.plain_column(columns[k]) for k in LABELS if k in columns}
        if LANGUAGE_TAG in columns:  # the codes as given: they key to the saved language column
            labels["language"] = formats.plain_column(columns[LANGUAGE_TAG])
        if "modality" not in labels:
            raise ValueError(
                f"{source or 'columns'}: expected a 'modality' column, found {sorted(columns)}"
            )
        extra = {
            k[len(formats.EXTRA) :]: formats.plain_column(v)
            for k, v in columns.items()
            if k.startswith(formats.EXTRA)
        }
        return EmbeddingSet(x, extra=extra or None, **labels)

    def to_columns(self) -> dict[str, np.ndarray]:
        """All labels and extra columns as a dict of 1-D numpy arrays (extra names prefixed)."""
        columns = {k: v for k, v in self._labels.items()}
        columns.update({f"{formats.EXTRA}{k}": v for k, v in self._extra.items()})
        return columns


def _key_languages(labels: dict[str, np.ndarray]) -> None:
    """Store ``labels["language"]`` as matching keys, the codes as given in ``language_tag``."""
    given = labels["language"]
    keys = language_keys(given)
    labels.pop(LANGUAGE_TAG, None)
    if keys is not given:
        labels[LANGUAGE_TAG] = given
    labels["language"] = keys


def _item_labels(values: object, n_rows: int) -> np.ndarray:
    """The item column as text, refusing blank items and values whose text collides."""
    labels = as_label_array(values, "item", n_rows)
    raw = values.tolist() if isinstance(values, np.ndarray) else values
    if isinstance(values, torch.Tensor):
        raw = values.cpu().tolist()
    blank = np.char.strip(labels) == ""
    if not isinstance(raw, str):
        blank |= np.array([isinstance(v, float) and v != v for v in raw], dtype=bool)
    if blank.any():
        raise ValueError(
            f"item: expected a non-empty item label on every row, got {int(blank.sum())} blank "
            f"(None, empty, whitespace or NaN) of {n_rows}, first at row "
            f"{int(np.flatnonzero(blank)[0])}; blank rows would all become one item"
        )
    if not isinstance(raw, str) and len({_kind(v) for v in raw}) > 1:
        first: dict[str, object] = {}
        for value in raw:
            seen = first.setdefault(str(value), value)
            if _kind(seen) != _kind(value) or seen != value:
                raise ValueError(
                    f"item: expected distinct labels to stay distinct, got {seen!r} "
                    f"({type(seen).__name__}) and {value!r} ({type(value).__name__}), which "
                    "are the same text; give items one type (e.g. all strings)"
                )
    return labels


def _kind(value: object) -> str:
    """A value's kind for item collisions: numpy and Python numbers of one kind agree."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "integer"
    if isinstance(value, numbers.Real):
        return "real"
    return type(value).__name__


def _as_extra_column(values: object, name: str, n_rows: int) -> np.ndarray:
    if name in LABELS:
        raise ValueError(f"extra: column name {name!r} is a standard label; pass it by keyword")
    if name == LANGUAGE_TAG:
        raise ValueError(
            f"extra: column name {name!r} holds the language codes as given; pass them as language="
        )
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
    try:
        array = np.asarray(values)
    except ValueError as exc:
        raise TypeError(
            f"extra[{name!r}]: expected one number, boolean or string per row, got ragged values "
            "(join lists into strings, e.g. 'circle;square')"
        ) from exc
    if array.ndim != 1 or len(array) != n_rows:
        raise ValueError(
            f"extra[{name!r}]: expected a 1-D column of {n_rows} values, got shape {array.shape}"
        )
    if array.dtype.kind == "O":
        if all(isinstance(v, str) for v in array.tolist()):
            array = array.astype(np.str_)
        else:
            raise TypeError(
                f"extra[{name!r}]: expected numbers, booleans or strings (saved without pickle), "
                "got Python objects; join lists into strings, e.g. 'circle;square'"
            )
    if array.dtype.kind not in "biufU":
        raise TypeError(
            f"extra[{name!r}]: expected numbers, booleans or strings, got dtype {array.dtype}"
        )
    return array


def _as_row_index(selector: Selector, n: int) -> np.ndarray:
    if isinstance(selector, slice):
        return np.arange(n)[selector]
    if isinstance(selector, (int, np.integer)) and not isinstance(selector, bool):
        return np.array([int(selector)])
    if isinstance(selector, torch.Tensor):
        selector = selector.cpu().numpy()
    array = np.asarray(selector)
    if array.dtype == bool:
        if array.shape != (n,):
            raise ValueError(
                f"selection: expected a boolean mask of shape ({n},), got {array.shape}"
            )
        return np.flatnonzero(array)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        raise TypeError(
            f"selection: expected a slice, int indices or a boolean mask, got {array.dtype} {array.shape}"
        )
    if array.min() < -n or array.max() >= n:
        raise IndexError(
            f"selection: indices must lie in [-{n}, {n}), got {array.min()}..{array.max()}"
        )
    return np.where(array < 0, array + n, array).astype(np.int64)
