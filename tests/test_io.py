from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet
from xcm_debias.io import load_clip_retrieval


def corpus() -> EmbeddingSet:
    g = torch.Generator().manual_seed(1)
    img = EmbeddingSet(
        torch.randn(4, 6, generator=g),
        modality="image",
        item=["a", "b", "c", "d"],
        culture=["de", "fr", "de", "fr"],
        extra={"objects": ["circle;square", "star", "circle", "star;square"]},
    )
    txt = EmbeddingSet(
        torch.randn(4, 6, generator=g),
        modality="text",
        item=["a", "b", "c", "d"],
        language=["en", "de", "sw", "fr"],
        extra={"objects": ["circle;square", "star", "circle", "star;square"]},
    )
    return EmbeddingSet.concat([img, txt])


def assert_same(a: EmbeddingSet, b: EmbeddingSet, same_ids: bool = True) -> None:
    assert torch.equal(a.embeddings.float(), b.embeddings.float())
    for name in ("item", "modality", "language", "culture") + (("id",) if same_ids else ()):
        assert (a.label(name) == b.label(name)).all(), name
    assert sorted(a.extra) == sorted(b.extra)
    for name in a.extra:
        assert (a.extra[name] == b.extra[name]).all()


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_file_round_trip_is_exact(tmp_path, suffix):
    data = corpus()
    path = data.save(tmp_path / f"corpus{suffix}")
    assert_same(data, EmbeddingSet.load(path))


def test_clip_retrieval_folder_round_trip(tmp_path):
    data = corpus()
    data.save(tmp_path / "folder")
    assert (tmp_path / "folder" / "img_emb" / "img_emb_0.npy").exists()
    assert (tmp_path / "folder" / "metadata" / "metadata_0.parquet").exists()
    assert_same(data, EmbeddingSet.load(tmp_path / "folder"), same_ids=False)


def test_clip_retrieval_layout_as_written_by_clip_retrieval(tmp_path):
    """Two shards, no item column: each metadata row is one image–caption pair."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for name in ("img_emb", "text_emb", "metadata"):
        (tmp_path / name).mkdir()
    for shard, n in enumerate((3, 2)):
        np.save(
            tmp_path / "img_emb" / f"img_emb_{shard}.npy",
            rng.normal(size=(n, 4)).astype(np.float16),
        )
        np.save(
            tmp_path / "text_emb" / f"text_emb_{shard}.npy",
            rng.normal(size=(n, 4)).astype(np.float16),
        )
        table = pa.table(
            {"image_path": [f"{shard}_{i}.jpg" for i in range(n)], "caption": ["x"] * n}
        )
        pq.write_table(table, tmp_path / "metadata" / f"metadata_{shard}.parquet")
    with pytest.warns(UserWarning, match="no 'language' column"):
        data = load_clip_retrieval(tmp_path)
    assert len(data) == 10 and data.embeddings.dtype == torch.float16
    assert (data.images.item == data.texts.item).all()
    assert data.images.extra["image_path"].tolist() == [
        "0_0.jpg",
        "0_1.jpg",
        "0_2.jpg",
        "1_0.jpg",
        "1_1.jpg",
    ]


def test_clip_retrieval_save_refuses_unpaired_sets(tmp_path):
    data = corpus()
    with pytest.raises(ValueError, match=r"pairs image i with caption i.*several images"):
        EmbeddingSet.concat([data, data.images]).save(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"images without a caption, e.g. \['d'\]"):
        EmbeddingSet.concat([data.images, data.texts[:3]]).save(tmp_path / "bad")


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        EmbeddingSet.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "x.npz", vectors=np.ones((2, 2)))
    with pytest.raises(ValueError, match="'embeddings'"):
        EmbeddingSet.load(tmp_path / "x.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="metadata"):
        EmbeddingSet.load(tmp_path / "empty")
