"""On-disk formats of embedding sets as plain arrays: ``.npz``, ``.parquet``, clip-retrieval folders.

Every reader returns ``(embeddings, columns)``: an ``[N, D]`` numpy array and a dict of 1-D
numpy columns named as :meth:`xcm_debias.data.EmbeddingSet.to_columns` names them (``id``,
``item``, ``modality``, ``language``, ``culture``, ``extra.<name>``); every writer takes the
same. No EmbeddingSet here: :mod:`xcm_debias.data` builds sets on top of this module and
:mod:`xcm_debias.io` is the public face of both. No format uses pickle.

clip-retrieval layout (``clip-retrieval inference`` output)::

    folder/img_emb/img_emb_0.npy        [n0, D] image embeddings
    folder/text_emb/text_emb_0.npy      [n0, D] caption embeddings (row i pairs with image i)
    folder/metadata/metadata_0.parquet  n0 rows: image_path, caption, ... (+ optional
                                        item, language, culture, text_culture columns)

Each metadata row is one image–caption pair, so an image with several captions appears in
several rows. Reading keeps every caption and **one image per distinct** ``image_path`` (its
first row, across shards); the item of a row is its ``item`` column, else its ``image_path``
(captions of one image are then one item), else ``"<shard>:<row>"`` (every pair its own
item). ``language`` (or ``lang``) labels the captions, ``culture`` the images, ``text_culture``
the captions. Without a language column the captions have no language, so every
per-language metric of a report is None: a warning says so.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from xcm_debias.atomic import atomic_path
from xcm_debias.npfiles import load_numpy

EXTRA = "extra."
Columns = dict[str, np.ndarray]
_SHARD = re.compile(r"_(\d+)\.(npy|parquet)$")


def as_numpy(embeddings: torch.Tensor | np.ndarray) -> np.ndarray:
    """Embeddings as a numpy array in their dtype (bfloat16, which numpy lacks, as float32)."""
    if isinstance(embeddings, np.ndarray):
        return embeddings
    x = embeddings.detach().cpu()
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy()


def plain_column(column: np.ndarray) -> np.ndarray:
    """A column read back from a file, with Python-object strings as a unicode array."""
    return column.astype(np.str_) if column.dtype.kind == "O" else column


# ---------------------------------------------------------------------------- by suffix
def write(path: str | Path, embeddings: torch.Tensor | np.ndarray, columns: Columns) -> Path:
    """Write by suffix: ``.npz``, ``.parquet``, or a clip-retrieval folder (no suffix)."""
    path = Path(path)
    if path.suffix == ".npz":
        return write_npz(path, embeddings, columns)
    if path.suffix == ".parquet":
        return write_parquet(path, embeddings, columns)
    if path.suffix == "":
        return write_clip_retrieval(path, embeddings, columns)
    raise ValueError(
        f"path: expected a .npz, .parquet or suffix-less folder path, got {str(path)!r}"
    )


def read(path: str | Path) -> tuple[np.ndarray, Columns]:
    """Read by suffix: ``.npz``, ``.parquet``, or a clip-retrieval folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no such file or folder: {str(path)!r}")
    if path.is_dir():
        return read_clip_retrieval(path)
    if path.suffix == ".npz":
        return read_npz(path)
    if path.suffix == ".parquet":
        return read_parquet(path)
    raise ValueError(
        f"path: expected a .npz, .parquet or a clip-retrieval folder, got {str(path)!r}"
    )


# ------------------------------------------------------------------------- npz, parquet
def write_npz(path: str | Path, embeddings: torch.Tensor | np.ndarray, columns: Columns) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, embeddings=as_numpy(embeddings), **columns)
    return path


def read_npz(path: str | Path) -> tuple[np.ndarray, Columns]:
    with load_numpy(path) as f:
        if "embeddings" not in f.files:
            raise ValueError(f"{path}: expected an 'embeddings' array, found {sorted(f.files)}")
        if "modality" not in f.files:
            raise ValueError(f"{path}: expected a 'modality' column, found {sorted(f.files)}")
        try:
            columns = {k: f[k] for k in f.files}
        except ValueError:
            raise ValueError(
                f"{path}: holds Python objects (pickled), which xcm_debias never loads; save "
                "labels as strings or numbers"
            ) from None
    return columns.pop("embeddings"), columns


def write_parquet(
    path: str | Path, embeddings: torch.Tensor | np.ndarray, columns: Columns
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = as_numpy(embeddings)
    flat = pa.array(x.reshape(-1))
    table = pa.table(
        {
            "embedding": pa.FixedSizeListArray.from_arrays(flat, x.shape[1]),
            **{k: pa.array(v) for k, v in columns.items()},
        }
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_parquet(path: str | Path) -> tuple[np.ndarray, Columns]:
    table = pq.read_table(Path(path))
    if "embedding" not in table.column_names:
        raise ValueError(f"{path}: expected an 'embedding' column, found {table.column_names}")
    emb = table.column("embedding").combine_chunks()
    if isinstance(emb, pa.FixedSizeListArray):
        x = emb.flatten().to_numpy(zero_copy_only=False).reshape(len(emb), emb.type.list_size)
    else:
        x = np.stack([np.asarray(v, dtype=np.float32) for v in emb.to_pylist()])
    columns = {
        c: table.column(c).to_numpy(zero_copy_only=False)
        for c in table.column_names
        if c != "embedding"
    }
    return np.array(x, copy=True), columns


# ------------------------------------------------------------------ clip-retrieval folders
def _shards(folder: Path, pattern: str) -> list[Path]:
    files = [f for f in folder.glob(pattern) if _SHARD.search(f.name)]
    return sorted(files, key=lambda p: int(_SHARD.search(p.name).group(1)))


def read_clip_retrieval(folder: str | Path) -> tuple[np.ndarray, Columns]:
    """Read ``img_emb/``, ``text_emb/`` and ``metadata/`` shards (any subset of the first two).

    Rows: the distinct images (by ``image_path``; all image rows when there is no such column),
    then every caption. See the module docstring for the labels.
    """
    folder = Path(folder)
    metas = _shards(folder / "metadata", "metadata_*.parquet")
    shards = {
        "image": _shards(folder / "img_emb", "img_emb_*.npy"),
        "text": _shards(folder / "text_emb", "text_emb_*.npy"),
    }
    if not metas:
        raise ValueError(
            f"{folder}: expected metadata/metadata_<n>.parquet shards (clip-retrieval layout), found none"
        )
    if not shards["image"] and not shards["text"]:
        raise ValueError(
            f"{folder}: expected img_emb/img_emb_<n>.npy and/or text_emb/text_emb_<n>.npy shards, found none"
        )
    for modality, found in shards.items():
        name = "img_emb" if modality == "image" else "text_emb"
        if found and len(found) != len(metas):
            raise ValueError(
                f"{folder}: expected one {name} shard per metadata shard ({len(metas)}), got {len(found)}"
            )
    meta = _read_metadata(metas)
    x = {m: _read_embeddings(found, metas, meta["_rows"]) for m, found in shards.items() if found}
    return _clip_rows(meta, x, folder)


def _read_metadata(metas: list[Path]) -> Columns:
    """All metadata shards as one table; ``_row`` = ``"<shard>:<row>"``, ``_rows`` per shard."""
    tables = [pq.read_table(p) for p in metas]
    names = [c for c in tables[0].column_names if all(c in t.column_names for t in tables)]
    meta = {
        c: np.concatenate(
            [plain_column(t.column(c).to_numpy(zero_copy_only=False)) for t in tables]
        )
        for c in names
    }
    meta["_row"] = np.concatenate(
        [np.char.add(f"{s}:", np.arange(t.num_rows).astype(np.str_)) for s, t in enumerate(tables)]
    )
    meta["_rows"] = np.array([t.num_rows for t in tables])
    return meta


def _read_embeddings(found: list[Path], metas: list[Path], rows: np.ndarray) -> np.ndarray:
    parts = []
    for path, meta_path, n in zip(found, metas, rows.tolist(), strict=True):
        x = load_numpy(path)
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(
                f"{path}: expected {n} rows (as in {meta_path.name}), got shape {x.shape}"
            )
        parts.append(x)
    return np.concatenate(parts)


def _clip_rows(meta: Columns, x: dict[str, np.ndarray], folder: Path) -> tuple[np.ndarray, Columns]:
    """Images (one per distinct path) then captions, with the standard columns."""
    row = meta.pop("_row")
    meta.pop("_rows")
    path = meta.get("image_path")
    item = meta.pop("item", None)
    if item is None:
        item = path if path is not None else row
    language = meta.pop("language", meta.pop("lang", None))
    labels = {
        "image": (None, meta.pop("culture", None)),
        "text": (language, meta.pop("text_culture", None)),
    }
    for m in ("modality", "id"):
        meta.pop(m, None)
    extra = {k: v for k, v in meta.items() if v.dtype.kind in "biufU"}
    if "text" in x and language is None:
        warnings.warn(
            f"{folder}: no 'language' column in metadata/, so the captions have no language and "
            "every per-language metric of a report (recall and share by language, language TV) "
            "will be None; add a 'language' column (one language code per caption)",
            UserWarning,
            stacklevel=3,
        )
    embeddings, columns = [], []
    for modality in ("image", "text"):
        if modality not in x:
            continue
        keep = np.arange(len(row))
        if modality == "image" and path is not None:
            keep = np.sort(np.unique(path, return_index=True)[1])  # first row of each image
        lang, culture = labels[modality]
        n = len(keep)
        columns.append(
            {
                "id": np.char.add(f"{modality}-", row[keep]),
                "item": item[keep],
                "modality": np.full(n, modality),
                "language": np.full(n, "") if lang is None else lang[keep],
                "culture": np.full(n, "") if culture is None else culture[keep],
                **{EXTRA + k: v[keep] for k, v in extra.items()},
            }
        )
        embeddings.append(x[modality][keep])
    merged = {k: np.concatenate([c[k] for c in columns]) for k in columns[0]}
    return np.concatenate(embeddings), merged


def write_clip_retrieval(
    folder: str | Path, embeddings: torch.Tensor | np.ndarray, columns: Columns
) -> Path:
    """Write one shard of the clip-retrieval layout.

    The layout pairs image row i with caption row i: rows of one modality are written as they
    are; images and texts in equal numbers whose items agree row by row are written pair by
    pair; otherwise, as clip-retrieval does for several captions per image, each caption is
    written with its item's image (which must be the only image of its item), and an
    ``image_path`` column (the image's own, or its id) lets loading keep one image per path.
    """
    folder = Path(folder)
    x = as_numpy(embeddings)
    item = columns["item"]
    img = np.flatnonzero(columns["modality"] == "image")
    txt = np.flatnonzero(columns["modality"] != "image")
    extra = {k[len(EXTRA) :]: v for k, v in columns.items() if k.startswith(EXTRA)}
    ref = img if len(img) else txt
    if len(img) and len(txt) and not (len(img) == len(txt) and (item[img] == item[txt]).all()):
        img = _image_of_each_caption(columns, img, txt)
        path = extra.get("image_path", columns["id"])[img]
        extra = {**extra, "image_path": path}
        ref = txt
    meta: Columns = {"item": item[ref]}
    if len(txt):
        # the codes as given (``language_tag``, when some differ from their keys): loading keys them
        meta["language"] = columns.get("language_tag", columns["language"])[txt]
        meta["text_culture"] = columns["culture"][txt]
    if len(img):
        meta["culture"] = columns["culture"][img]
    meta.update({k: v if k == "image_path" and ref is txt else v[ref] for k, v in extra.items()})
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "metadata" / "metadata_0.parquet") as tmp:
        pq.write_table(pa.table({k: pa.array(v) for k, v in meta.items()}), tmp)
    for name, rows in (("img_emb", img), ("text_emb", txt)):
        if len(rows):
            (folder / name).mkdir(parents=True, exist_ok=True)
            with atomic_path(folder / name / f"{name}_0.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, x[rows], allow_pickle=False)
    return folder


def _image_of_each_caption(columns: Columns, img: np.ndarray, txt: np.ndarray) -> np.ndarray:
    """Row of the image of each caption's item; each item must have exactly one image and every
    image at least one caption (otherwise the layout cannot hold the set)."""
    item = columns["item"]
    image_items, counts = np.unique(item[img], return_counts=True)
    captioned = set(item[txt].tolist())
    problem = (
        f"items with several images, e.g. {image_items[counts > 1][:3].tolist()}"
        if (counts > 1).any()
        else f"captions without an image, e.g. {sorted(captioned - set(image_items.tolist()))[:3]}"
        if not captioned <= set(image_items.tolist())
        else f"images without a caption, e.g. {sorted(set(image_items.tolist()) - captioned)[:3]}"
        if set(image_items.tolist()) - captioned
        else ""
    )
    if problem:
        raise ValueError(
            "save_clip_retrieval: the layout pairs image i with caption i; expected one image "
            f"per item and a caption for each, got {problem}. Save as .npz or .parquet instead."
        )
    row_of = dict(zip(item[img].tolist(), img.tolist(), strict=True))
    return np.array([row_of[i] for i in item[txt].tolist()], dtype=np.int64)
