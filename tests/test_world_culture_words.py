"""Culture-explicit captions: hand-checked grammar, completeness, the content kept."""

from __future__ import annotations

import pytest

from xcm_debias.worlds.captions import LANGUAGES, N_TEMPLATES, caption
from xcm_debias.worlds.culture_words import FORMS, culture_caption
from xcm_debias.worlds.scenes import CULTURES, Scene

STAR = Scene.from_item_id("green-star@center")
CROSS_STAR = Scene.from_item_id("red-cross@left+yellow-star@right")

# (language, scene, template, culture, form) -> the caption, checked by hand
EXPECTED = {
    ("en", STAR, 2, "ja", "style"): "There is a green star in the middle, in Japanese style",
    ("en", CROSS_STAR, 2, "sw", "country"): "A red cross next to a yellow star, from Kenya",
    (
        "de",
        STAR,
        2,
        "fr",
        "style",
    ): "In der Mitte ist ein grüner Stern zu sehen, im französischen Stil",
    (
        "de",
        CROSS_STAR,
        2,
        "ru",
        "country",
    ): "Links ein rotes Kreuz, rechts ein gelber Stern, aus Russland",
    (
        "fr",
        CROSS_STAR,
        2,
        "ja",
        "country",
    ): "Une croix rouge à côté d'une étoile jaune, motif traditionnel du Japon",
    (
        "fr",
        STAR,
        1,
        "it",
        "country",
    ): "Une photo d'une étoile verte au centre, motif traditionnel d'Italie",
    ("fr", STAR, 1, "de", "style"): "Une photo d'une étoile verte au centre, de style allemand",
    ("es", STAR, 2, "ja", "style"): "Hay una estrella verde en el centro, de estilo japonés",
    (
        "it",
        CROSS_STAR,
        2,
        "it",
        "country",
    ): "Una croce rossa accanto a una stella gialla, con un motivo dell'Italia",
    (
        "it",
        CROSS_STAR,
        2,
        "ja",
        "country",
    ): "Una croce rossa accanto a una stella gialla, con un motivo del Giappone",
    ("ja", STAR, 0, "de", "style"): "ドイツ風の絵：中央に緑の星があります",
    ("ja", CROSS_STAR, 2, "vi", "country"): "赤い十字の右に黄色い星があります（ベトナムの模様）",
    ("ru", STAR, 1, "ja", "style"): "В центре изображена зелёная звезда, в японском стиле",
    ("ru", STAR, 1, "vi", "country"): "В центре изображена зелёная звезда, с узором из Вьетнама",
    ("sw", STAR, 2, "ja", "style"): "Kuna nyota ya kijani katikati, kwa mtindo wa Kijapani",
    ("sw", STAR, 2, "de", "country"): "Kuna nyota ya kijani katikati, kutoka Ujerumani",
    ("vi", STAR, 0, "ja", "style"): "Một ngôi sao màu xanh lá ở giữa, theo phong cách Nhật Bản",
    ("vi", STAR, 0, "es", "country"): "Một ngôi sao màu xanh lá ở giữa, với hoa văn Tây Ban Nha",
}


@pytest.mark.parametrize(("key", "expected"), list(EXPECTED.items()), ids=lambda x: str(x)[:24])
def test_hand_checked_culture_captions(key, expected):
    language, scene, template, culture, form = key
    assert culture_caption(scene, language, template, culture, form) == expected


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_culture_and_form_is_named_distinctly_around_the_same_content(language):
    for template in range(N_TEMPLATES):
        plain = caption(CROSS_STAR, language, template).rstrip(".")
        for form in FORMS:
            texts = [culture_caption(CROSS_STAR, language, template, c, form) for c in CULTURES]
            assert len(set(texts)) == len(CULTURES)  # the culture word differs
            for text in texts:
                assert "{" not in text and "  " not in text
                # the content words are the plain caption's (first letter may be recased)
                assert plain[1:] in text


def test_culture_caption_validates_inputs():
    with pytest.raises(ValueError, match="culture: expected one of"):
        culture_caption(STAR, "en", 0, "en")
    with pytest.raises(ValueError, match="form: expected one of"):
        culture_caption(STAR, "en", 0, "ja", "people")
    with pytest.raises(ValueError, match="language: expected one of"):
        culture_caption(STAR, "xx", 0, "ja")
    with pytest.raises(ValueError, match="template"):
        culture_caption(STAR, "en", 3, "ja")
