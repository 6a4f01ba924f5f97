from __future__ import annotations

import pytest

from xcm_debias.encoders import USE_LANGUAGES
from xcm_debias.worlds.captions import (
    CULTURE_OF_LANGUAGE,
    HIGH_RESOURCE,
    LANGUAGES,
    LOW_RESOURCE,
    N_TEMPLATES,
    caption,
)
from xcm_debias.worlds.scenes import CULTURES, Scene, all_scenes

STAR = Scene.from_item_id("green-star@center")
HEART_CIRCLE = Scene.from_item_id("blue-heart@left+white-circle@right")
CROSS_STAR = Scene.from_item_id("red-cross@left+yellow-star@right")

# hand-written expected captions: gender/case/class agreement and word order per language
EXPECTED = {
    ("en", STAR, 2): "There is a green star in the middle.",
    ("en", HEART_CIRCLE, 0): "A blue heart on the left and a white circle on the right",
    ("de", STAR, 2): "In der Mitte ist ein grüner Stern zu sehen.",
    ("de", HEART_CIRCLE, 1): "Ein Bild mit einem blauen Herzen und einem weißen Kreis",
    ("de", CROSS_STAR, 2): "Links ein rotes Kreuz, rechts ein gelber Stern",
    ("fr", STAR, 1): "Une photo d'une étoile verte au centre",
    ("fr", CROSS_STAR, 2): "Une croix rouge à côté d'une étoile jaune",
    ("fr", HEART_CIRCLE, 0): "Un cœur bleu à gauche et un cercle blanc à droite",
    ("es", CROSS_STAR, 0): "Una cruz roja a la izquierda y una estrella amarilla a la derecha",
    ("es", STAR, 2): "Hay una estrella verde en el centro.",
    ("it", HEART_CIRCLE, 1): "Un'immagine con un cuore blu e un cerchio bianco",
    ("it", CROSS_STAR, 2): "Una croce rossa accanto a una stella gialla",
    ("ja", STAR, 0): "中央に緑の星があります",
    ("ja", CROSS_STAR, 2): "赤い十字の右に黄色い星があります",
    ("ru", STAR, 1): "В центре изображена зелёная звезда",
    ("ru", HEART_CIRCLE, 1): "Картинка с синим сердцем и белым кругом",
    ("ru", CROSS_STAR, 2): "Красный крест рядом с жёлтой звездой",
    ("sw", CROSS_STAR, 1): "Picha ya msalaba mwekundu na nyota ya njano",
    ("sw", HEART_CIRCLE, 2): "Moyo wa buluu karibu na mduara mweupe",
    ("sw", STAR, 2): "Kuna nyota ya kijani katikati.",
    ("vi", STAR, 0): "Một ngôi sao màu xanh lá ở giữa",
    ("vi", CROSS_STAR, 2): "Một hình chữ thập màu đỏ bên cạnh một ngôi sao màu vàng",
}


@pytest.mark.parametrize(("key", "expected"), list(EXPECTED.items()), ids=lambda x: str(x)[:20])
def test_hand_checked_captions(key, expected):
    language, scene, template = key
    assert caption(scene, language, template) == expected


def test_language_groups_match_the_encoder_coverage():
    assert len(LANGUAGES) == 9 and LANGUAGES[0] == "en"
    assert set(HIGH_RESOURCE) | set(LOW_RESOURCE) == set(LANGUAGES)
    assert all(lang in USE_LANGUAGES for lang in HIGH_RESOURCE)
    assert not any(lang in USE_LANGUAGES for lang in LOW_RESOURCE)
    assert set(CULTURE_OF_LANGUAGE.values()) == set(CULTURES)
    assert "en" not in CULTURE_OF_LANGUAGE


@pytest.mark.parametrize("language", LANGUAGES)
def test_caption_tables_are_complete_and_injective(language):
    # every content × template has a caption; within a template no two contents share one
    scenes = all_scenes()
    for template in range(N_TEMPLATES):
        texts = [caption(s, language, template) for s in scenes]
        assert all(t and "{" not in t and "}" not in t and "  " not in t for t in texts)
        assert len(set(texts)) == len(scenes)


@pytest.mark.parametrize("language", LANGUAGES)
def test_templates_give_different_wordings(language):
    for scene in (STAR, HEART_CIRCLE):
        assert len({caption(scene, language, t) for t in range(N_TEMPLATES)}) == N_TEMPLATES


def test_romance_agreement_and_elision_hold_everywhere():
    for scene in all_scenes():
        fr = caption(scene, "fr", 1)
        assert " de un" not in fr and " de une" not in fr
        for lang in ("fr", "es", "it"):
            text = caption(scene, lang, 0)
            # feminine nouns take a feminine article
            for noun in ("étoile", "croix", "estrella", "cruz", "stella", "croce"):
                if f" {noun} " in f" {text} ":
                    assert f"una {noun}" in text.lower() or f"une {noun}" in text.lower()


def test_caption_validates_inputs():
    with pytest.raises(ValueError, match="language"):
        caption(STAR, "xx")
    with pytest.raises(ValueError, match="template"):
        caption(STAR, "en", 3)
    with pytest.raises(ValueError, match="template"):
        caption(STAR, "en", True)
    with pytest.raises(TypeError, match="scene"):
        caption("star", "en")
