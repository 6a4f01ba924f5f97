"""OpenCLIPEncoder on a tiny open_clip CLIP built offline (random weights, 32-d).

The tiny architecture is registered with ``open_clip.add_model_config`` from a JSON file, as a
user would register their own; weights are seeded, saved to a checkpoint and loaded back
through ``pretrained=PATH`` wherever a second encoder with the same weights is needed.
"""

from __future__ import annotations

import json
import warnings
from importlib.util import find_spec

import huggingface_hub.constants
import numpy as np
import open_clip
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from PIL import Image
from safetensors.torch import save_file

from xcm_debias.data import EmbeddingSet
from xcm_debias.encoders.open_clip_encoder import (
    FLORES200_CODES,
    OpenCLIPEncoder,
    WeightsUnavailableError,
    _is_download_failure,
)

TINY = "xcm-tiny-clip-test"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TEXTS = [
    "a red circle on a blue background",
    "ein roter Kreis auf blauem Hintergrund",
    "un cercle rouge sur fond bleu",
    "two dogs play in the snow",
    "zwei Hunde spielen im Schnee",
    "deux chiens jouent dans la neige",
    "mbwa wawili wanacheza kwenye theluji",
    "hai con chó chơi trong tuyết",
    "雪の中で遊ぶ二匹の犬",
]
LANGUAGES = ["en", "de", "fr", "en", "de", "fr", "sw", "vi", "ja"]
ITEMS = ["circle", "circle", "circle", "dogs", "dogs", "dogs", "dogs", "dogs", "dogs"]


@pytest.fixture(scope="module")
def tiny_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder)
    return TINY


@pytest.fixture(scope="module")
def encoder(tiny_name: str) -> OpenCLIPEncoder:
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="randomly initialised"):
        return OpenCLIPEncoder(tiny_name, batch_size=7, progress=False)


@pytest.fixture(scope="module")
def checkpoint(encoder: OpenCLIPEncoder, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.model.state_dict().items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [
        (40, 48),
        (32, 32),
        (64, 36),
        (50, 50),
        (33, 71),
        (40, 40),
        (48, 40),
        (36, 36),
        (90, 60),
    ]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def _same_weights(tiny_name: str, checkpoint: str, **kwargs: object) -> OpenCLIPEncoder:
    kwargs.setdefault("progress", False)
    return OpenCLIPEncoder(tiny_name, pretrained=checkpoint, **kwargs)


# ---------------------------------------------------------------- outputs and parity
def test_outputs_are_unit_norm_float32_rows_of_the_model_dimension(encoder, images):
    image_rows = encoder.embed_images(images)
    text_rows = encoder.embed_texts(TEXTS, LANGUAGES)
    for rows, n in ((image_rows, len(images)), (text_rows, len(TEXTS))):
        assert rows.shape == (n, TINY_CONFIG["embed_dim"])
        assert rows.dtype == torch.float32 and rows.device.type == "cpu"
        torch.testing.assert_close(rows.norm(dim=1), torch.ones(n), atol=1e-6, rtol=0)
    # different inputs give different directions (not a constant output)
    assert float((image_rows @ image_rows.T).fill_diagonal_(0).max()) < 0.9999


def test_embeddings_equal_a_direct_open_clip_forward(encoder, tiny_name, images):
    model, _, preprocess = open_clip.create_model_and_transforms(tiny_name)
    model.load_state_dict(encoder.model.state_dict())
    model.eval()
    tokenizer = open_clip.get_tokenizer(tiny_name)
    with torch.no_grad():
        image_ref = model.encode_image(torch.stack([preprocess(im) for im in images]))
        text_ref = model.encode_text(tokenizer(TEXTS))
    torch.testing.assert_close(
        encoder.embed_images(images),
        image_ref / image_ref.norm(dim=1, keepdim=True),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        encoder.embed_texts(TEXTS, "en"),
        text_ref / text_ref.norm(dim=1, keepdim=True),
        atol=1e-6,
        rtol=0,
    )


def test_batch_size_one_and_seven_give_the_same_embeddings(encoder, tiny_name, checkpoint, images):
    one = _same_weights(tiny_name, checkpoint, batch_size=1)
    torch.testing.assert_close(
        one.embed_images(images), encoder.embed_images(images), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        one.embed_texts(TEXTS, LANGUAGES), encoder.embed_texts(TEXTS, LANGUAGES), atol=1e-6, rtol=0
    )


def test_encoding_twice_is_bitwise_identical(encoder, images):
    assert torch.equal(encoder.embed_images(images), encoder.embed_images(images))
    assert torch.equal(encoder.embed_texts(TEXTS, LANGUAGES), encoder.embed_texts(TEXTS, LANGUAGES))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_pretrained_path_loads_the_saved_weights(encoder, tiny_name, images, tmp_path, suffix):
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    loaded = _same_weights(tiny_name, str(path), batch_size=encoder.batch_size)
    assert torch.equal(loaded.embed_images(images), encoder.embed_images(images))
    assert torch.equal(loaded.embed_texts(TEXTS, "en"), encoder.embed_texts(TEXTS, "en"))


def test_local_dir_model_loads_config_and_weights(encoder, tiny_name, images, tmp_path):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CONFIG}))
    state = {k: v.contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(state, str(tmp_path / "open_clip_model.safetensors"))
    local = OpenCLIPEncoder(f"local-dir:{tmp_path}", batch_size=encoder.batch_size, progress=False)
    assert torch.equal(local.embed_images(images), encoder.embed_images(images))


def test_bf16_on_cpu_returns_float32_close_to_fp32(encoder, tiny_name, checkpoint, images):
    half = _same_weights(tiny_name, checkpoint, precision="bf16")
    got, ref = half.embed_images(images), encoder.embed_images(images)
    assert got.dtype == torch.float32
    cosine = (got * ref).sum(dim=1)
    assert float(cosine.min()) > 0.98
    assert not torch.equal(got, ref)  # it really ran in bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_defaults_to_fp16_and_matches_cpu_fp32(encoder, tiny_name, checkpoint, images):
    gpu = _same_weights(tiny_name, checkpoint, device="cuda")
    assert gpu.precision == "fp16"
    assert next(gpu.model.visual.transformer.parameters()).dtype == torch.float16
    for got, ref in (
        (gpu.embed_images(images), encoder.embed_images(images)),
        (gpu.embed_texts(TEXTS, LANGUAGES), encoder.embed_texts(TEXTS, LANGUAGES)),
    ):
        assert got.dtype == torch.float32 and got.device.type == "cpu"
        assert float((got * ref).sum(dim=1).min()) > 0.99


# ---------------------------------------------------------------- inputs and labels
def test_labels_are_carried_into_the_embedding_set(encoder, images):
    texts = encoder.encode_texts(
        TEXTS,
        LANGUAGES,
        item=ITEMS,
        id=[f"t{i}" for i in range(9)],
        culture="x",
        extra={"n": np.arange(9)},
    )
    assert isinstance(texts, EmbeddingSet)
    assert texts.modality.tolist() == ["text"] * 9
    assert texts.language.tolist() == LANGUAGES
    assert texts.item.tolist() == ITEMS
    assert texts.id.tolist() == [f"t{i}" for i in range(9)]
    assert texts.culture.tolist() == ["x"] * 9
    assert texts.extra["n"].tolist() == list(range(9))
    assert texts.extra["caption"].tolist() == TEXTS
    assert torch.equal(texts.embeddings, encoder.embed_texts(TEXTS, LANGUAGES))

    cultures = ["de", "en", "fr", "de", "en", "fr", "de", "en", "fr"]
    pictures = encoder.encode_images(images, item=[f"i{i}" for i in range(9)], culture=cultures)
    assert pictures.modality.tolist() == ["image"] * 9
    assert pictures.culture.tolist() == cultures
    assert pictures.item.tolist() == [f"i{i}" for i in range(9)]
    assert (pictures.language == "").all()
    assert pictures.extra["caption"].tolist() == [""] * 9
    corpus = EmbeddingSet.concat([pictures, encoder.encode_texts(TEXTS, LANGUAGES, item=ITEMS)])
    assert corpus.modality.tolist() == ["image"] * 9 + ["text"] * 9
    assert corpus.extra["caption"].tolist() == [""] * 9 + TEXTS


def test_one_language_code_applies_to_every_text(encoder):
    assert encoder.encode_texts(TEXTS, "de").language.tolist() == ["de"] * 9


def test_pil_images_and_their_png_files_give_equal_embeddings(encoder, images, tmp_path):
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    from_pil = encoder.embed_images(images)
    assert torch.equal(encoder.embed_images(paths), from_pil)
    assert torch.equal(encoder.embed_images([str(p) for p in paths]), from_pil)
    mixed = [paths[i] if i % 2 else images[i] for i in range(len(images))]
    assert torch.equal(encoder.embed_images(mixed), from_pil)


def test_threaded_image_loading_keeps_order_and_values(encoder, tiny_name, checkpoint, images):
    threaded = _same_weights(tiny_name, checkpoint, batch_size=4, num_workers=2)
    torch.testing.assert_close(
        threaded.embed_images(images), encoder.embed_images(images), atol=1e-6, rtol=0
    )


def test_bad_inputs_name_the_argument(encoder, images, tmp_path):
    with pytest.raises(ValueError, match="texts: expected at least one"):
        encoder.encode_texts([], "en")
    with pytest.raises(ValueError, match="images: expected at least one"):
        encoder.encode_images([])
    with pytest.raises(ValueError, match="language: expected 9 labels"):
        encoder.encode_texts(TEXTS, ["en", "de"])
    with pytest.raises(ValueError, match="item: expected 9 labels"):
        encoder.encode_texts(TEXTS, LANGUAGES, item=ITEMS[:3])
    with pytest.raises(ValueError, match="culture: expected 9 labels"):
        encoder.encode_images(images, culture=["de"])
    with pytest.raises(ValueError, match=r"extra\['n'\]: expected 9 values"):
        encoder.encode_images(images, extra={"n": [1, 2]})
    with pytest.raises(TypeError, match="texts: expected a list of texts, got str"):
        encoder.encode_texts("a red circle", "en")
    with pytest.raises(TypeError, match=r"texts\[1\]: expected a string, got int"):
        encoder.encode_texts(["a", 3], "en")
    with pytest.raises(ValueError, match=r"texts\[0\]: expected a non-empty string"):
        encoder.encode_texts(["  ", "b"], "en")
    with pytest.raises(FileNotFoundError, match=r"images\[1\]: expected an image file"):
        encoder.encode_images([images[0], tmp_path / "missing.png"])
    with pytest.raises(TypeError, match=r"images\[0\]: expected a PIL.Image.Image or a file path"):
        encoder.encode_images([np.zeros((4, 4, 3))])


def test_constructor_rejects_bad_settings(tiny_name, checkpoint):
    with pytest.raises(ValueError, match="precision: 'fp16' needs a CUDA device"):
        _same_weights(tiny_name, checkpoint, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="precision: expected one of"):
        _same_weights(tiny_name, checkpoint, precision="fp8")
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1"):
        _same_weights(tiny_name, checkpoint, batch_size=0)
    with pytest.raises(TypeError, match="tokenizer_languages: expected a mapping"):
        _same_weights(tiny_name, checkpoint, tokenizer_languages={"de": 7})
    with pytest.raises(ValueError, match="device: expected"):
        _same_weights(tiny_name, checkpoint, device="not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA here"):
            _same_weights(tiny_name, checkpoint, device="cuda")


def test_unknown_model_name_says_how_to_list_models():
    with pytest.raises(ValueError, match=r"open_clip.list_models\(\)") as info:
        OpenCLIPEncoder("ViT-B-23", progress=False)
    assert "ViT-B-32" in str(info.value)  # a close match is suggested
    assert "open_clip.list_pretrained()" in str(info.value)


def test_unknown_tag_lists_the_tags_and_a_missing_file_is_named():
    with pytest.raises(ValueError, match="laion2b_s34b_b79k") as info:
        OpenCLIPEncoder("ViT-B-32", pretrained="no-such-tag", progress=False)
    assert "no-such-tag" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OpenCLIPEncoder("ViT-B-32", pretrained="/nowhere/weights.safetensors", progress=False)


def test_pretrained_with_a_hub_name_is_rejected():
    with pytest.raises(ValueError, match="pretrained: expected None with a hf-hub: model name"):
        OpenCLIPEncoder("hf-hub:timm/ViT-B-16-SigLIP-i18n-256", pretrained="webli")


# ------------------------------------------------------------------ missing weights
@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; set both so no request is attempted
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_unreachable_tag_weights_raise_weights_unavailable(offline, tmp_path):
    with pytest.raises(WeightsUnavailableError) as info:
        OpenCLIPEncoder("ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for expected in (
        "'ViT-B-32'",
        "pretrained='laion2b_s34b_b79k'",
        "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "HF_HUB_OFFLINE=1",
        "pretrained='/path/to/checkpoint'",
    ):
        assert expected in message
    assert isinstance(info.value.__cause__, Exception)


def test_unreachable_hub_model_raises_weights_unavailable(offline, tmp_path):
    with pytest.raises(WeightsUnavailableError, match="local-dir:") as info:
        OpenCLIPEncoder("hf-hub:timm/ViT-B-16-SigLIP-i18n-256", cache_dir=tmp_path)
    assert "https://huggingface.co/timm/ViT-B-16-SigLIP-i18n-256" in str(info.value)


def test_download_failures_are_recognised_through_exception_chains():
    def chained(outer: Exception, inner: Exception) -> Exception:
        try:
            try:
                raise inner
            except Exception:
                raise outer  # noqa: B904 - implicit chaining, as open_clip does
        except Exception as exc:
            return exc

    assert _is_download_failure(chained(RuntimeError("x"), OfflineModeIsEnabled("offline")))
    assert _is_download_failure(chained(RuntimeError("x"), LocalEntryNotFoundError("miss")))
    assert not _is_download_failure(RuntimeError("x"))
    assert not _is_download_failure(chained(RuntimeError("x"), ValueError("shape mismatch")))


@pytest.mark.skipif(find_spec("transformers") is not None, reason="transformers is installed")
def test_hugging_face_text_tower_without_transformers_says_what_to_install():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImportError, match=r"pip install 'xcm_debias\[multilingual\]'"):
            OpenCLIPEncoder("xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k")


# --------------------------------------------------------- language-aware tokenizers
class LanguageTaggingTokenizer:
    """Stands in for open_clip's HFTokenizer of NLLB (which needs ``transformers`` and the
    NLLB vocabulary): it tokenises ``"<code> <text>"`` under the language last set, so the
    source language changes the tokens as NLLB's language prefix token does."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.language: str | None = None
        self.calls: list[tuple[str | None, list[str]]] = []

    def set_lang_fn(self, code: str) -> None:
        self.language = code

    def set_language(self, code: str) -> None:
        self.set_lang_fn(code)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        self.calls.append((self.language, list(texts)))
        return self.inner([f"{self.language} {t}" for t in texts])


def test_language_aware_tokenizer_gets_each_texts_flores_code(encoder, tiny_name, checkpoint):
    nllb_like = _same_weights(
        tiny_name, checkpoint, batch_size=2, tokenizer_languages={"de": "deu_Latn"}
    )
    nllb_like._tokenizer = LanguageTaggingTokenizer(nllb_like._tokenizer)
    got = nllb_like.embed_texts(TEXTS, LANGUAGES)

    tokenised = {t: code for code, batch in nllb_like._tokenizer.calls for t in batch}
    assert [tokenised[t] for t in TEXTS] == [FLORES200_CODES[lang] for lang in LANGUAGES]
    assert all(len(batch) <= 2 for _, batch in nllb_like._tokenizer.calls)
    # rows come back in input order: row i is text i tokenised under its own language
    prefixed = [f"{FLORES200_CODES[lang]} {t}" for t, lang in zip(TEXTS, LANGUAGES, strict=True)]
    torch.testing.assert_close(got, encoder.embed_texts(prefixed, "en"), atol=1e-6, rtol=0)


def test_language_aware_tokenizer_needs_a_code_for_every_language(tiny_name, checkpoint):
    nllb_like = _same_weights(tiny_name, checkpoint, tokenizer_languages={"xx": "xxx_Latn"})
    nllb_like._tokenizer = LanguageTaggingTokenizer(nllb_like._tokenizer)
    nllb_like.embed_texts(["a", "b", "c"], ["xx", "deu_Latn", "en"])
    assert sorted(code for code, _ in nllb_like._tokenizer.calls) == [
        "deu_Latn",
        "eng_Latn",
        "xxx_Latn",
    ]
    with pytest.raises(ValueError, match="'yy' has no tokenizer code; pass tokenizer_languages"):
        nllb_like.embed_texts(["a"], "yy")


def test_language_aware_tokenizer_takes_any_spelling_and_identified_languages(
    tiny_name, checkpoint
):
    nllb_like = _same_weights(tiny_name, checkpoint)
    nllb_like._tokenizer = LanguageTaggingTokenizer(nllb_like._tokenizer)
    nllb_like.embed_texts(["a", "b"], ["EN", "ger"])
    assert sorted(code for code, _ in nllb_like._tokenizer.calls) == ["deu_Latn", "eng_Latn"]
    nllb_like._tokenizer.calls.clear()
    data = nllb_like.encode_texts(TEXTS)  # no languages: identified from the texts
    tokenised = {t: code for code, batch in nllb_like._tokenizer.calls for t in batch}
    assert [tokenised[t] for t in TEXTS] == [FLORES200_CODES[lang] for lang in LANGUAGES]
    assert data.language.tolist() == LANGUAGES


# ------------------------------------------------------ languages from the text
def test_texts_without_a_language_get_the_identified_one(encoder):
    labelled = encoder.encode_texts(TEXTS, LANGUAGES, item=ITEMS)
    identified = encoder.encode_texts(TEXTS, item=ITEMS)
    assert identified.language.tolist() == LANGUAGES
    torch.testing.assert_close(identified.embeddings, labelled.embeddings, atol=0, rtol=0)
    # given codes are kept (as spelled, keyed for matching); only the empty ones are identified
    partial = encoder.encode_texts(TEXTS, ["EN", "", "", "", "", "", "sw", "", "ja"])
    assert partial.language.tolist() == LANGUAGES
    assert partial.language_tag.tolist() == ["EN", *LANGUAGES[1:]]
    # among candidates only: every text is labelled with one of them
    two = encoder.encode_texts(TEXTS[:6], candidate_languages=["ENG", "deu"])
    assert set(two.language_tag.tolist()) == {"ENG", "deu"}
    assert two.language[[0, 1, 3, 4]].tolist() == ["en", "de", "en", "de"]


# ---------------------------------------------------------------------- progress
def test_progress_bar_goes_to_stderr_and_can_be_disabled(tiny_name, checkpoint, capsys):
    loud = _same_weights(tiny_name, checkpoint, progress=True)
    loud.embed_texts(TEXTS, "en")
    captured = capsys.readouterr()
    assert f"encoding texts ({tiny_name})" in captured.err and "9/9" in captured.err
    assert captured.out == ""
    loud.progress = False
    loud.embed_texts(TEXTS, "en")
    assert capsys.readouterr().err == ""


# -------------------------------------------------------------------- end to end
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220)}
SHAPES = ("circle", "square")
WORDS = {
    "en": (
        {"red": "red", "green": "green", "blue": "blue"},
        {"circle": "circle", "square": "square"},
    ),
    "de": (
        {"red": "rot", "green": "grün", "blue": "blau"},
        {"circle": "Kreis", "square": "Quadrat"},
    ),
    "fr": (
        {"red": "rouge", "green": "vert", "blue": "bleu"},
        {"circle": "cercle", "square": "carré"},
    ),
}


def _drawn_corpus(encoder: OpenCLIPEncoder) -> EmbeddingSet:
    """12 items (colour × shape × 2 backgrounds), one drawn image each (culture de/fr/en by
    background), captions in en/de/fr: the shape of a real image folder + captions table."""
    from PIL import ImageDraw

    images, image_items, cultures, texts, text_items, languages = [], [], [], [], [], []
    backgrounds = {"de": (250, 250, 250), "fr": (20, 20, 20), "en": (200, 200, 120)}
    for n, (colour, shape, culture) in enumerate(
        (c, s, k) for c in COLOURS for s in SHAPES for k in ("de", "fr")
    ):
        culture = culture if n % 3 else "en"
        image = Image.new("RGB", (32, 32), backgrounds[culture])
        box = (8, 8, 24, 24)
        draw = ImageDraw.Draw(image)
        (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
        item = f"{colour}-{shape}-{n}"
        images.append(image)
        image_items.append(item)
        cultures.append(culture)
        for language, (colour_word, shape_word) in WORDS.items():
            texts.append(f"{colour_word[colour]} {shape_word[shape]}")
            text_items.append(item)
            languages.append(language)
    return EmbeddingSet.concat(
        [
            encoder.encode_images(images, item=image_items, culture=cultures),
            encoder.encode_texts(texts, languages, item=text_items),
        ]
    )


def test_encoded_corpus_fits_and_searches_through_debiased(encoder):
    from xcm_debias.debiased import Debiased
    from xcm_debias.processors import LanguageProjection
    from xcm_debias.retrieval import ExactRetriever

    calibration, test = _drawn_corpus(encoder).split_items(test_size=0.5, seed=0)
    fair = Debiased(ExactRetriever(), LanguageProjection(method="center")).fit(calibration)
    ranking = fair.search(test.texts, test.images, k=3)
    assert ranking.indices.shape == (len(test.texts), 3)
    assert int(ranking.indices.max()) < len(test.images)
    assert bool(torch.isfinite(ranking.scores).all())


def test_bias_report_of_an_encoded_corpus_matches_dense_recall(encoder):
    pytest.importorskip("xcm_debias.report.evaluate")
    from xcm_debias.debiased import Debiased
    from xcm_debias.processors import LanguageProjection
    from xcm_debias.report import BiasReport
    from xcm_debias.retrieval import ExactRetriever

    calibration, test = _drawn_corpus(encoder).split_items(test_size=0.5, seed=0)
    before = BiasReport.evaluate(ExactRetriever(), test, k=3)
    texts, pictures = test.texts, test.images
    top1 = (texts.embeddings @ pictures.embeddings.T).argmax(dim=1).numpy()
    dense_recall = float((pictures.item[top1] == texts.item).mean())
    assert before.metrics["t2i/recall@1"] == pytest.approx(dense_recall, abs=1e-9)

    fair = Debiased(ExactRetriever(), LanguageProjection(method="center")).fit(calibration)
    after = BiasReport.evaluate(fair, test, k=3)
    for key in ("t2i/recall@1", "i2t/recall@1", "i2t/language_tv@1", "t2i/mrv"):
        assert np.isfinite(after.metrics[key])
    assert 0.0 <= after.metrics["t2i/recall@1"] <= 1.0
