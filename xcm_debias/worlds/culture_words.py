"""Culture-explicit captions: the culture named in words, in each language's grammar.

A *culture-explicit* caption describes the same content as a plain caption and names a culture
(the one whose background it asks for) in one of two forms:

- ``"style"``: an adjective of style or people (*in Japanese style*, *im japanischen Stil*,
  *de style japonais*, *в японском стиле*, *kwa mtindo wa Kijapani*, *theo phong cách Nhật Bản*);
- ``"country"``: the country as the origin of the pattern (*from Japan*, *aus Japan*,
  *motif traditionnel du Japon*, *с узором из Японии*, *kutoka Japani*, *với hoa văn Nhật Bản*).

Grammar handled per language: German dative adjective after *im* (*im deutschen Stil*);
French masculine adjective after *style* and the article/elision of the country (*du Japon*,
*d'Italie*, *de France*); Spanish and Italian masculine adjective after *estilo*/*stile*,
Italian articulated preposition (*del Giappone*, *dell'Italia*, *della Francia*); Russian
prepositional adjective (*в японском стиле*) and genitive country after *из* (*из Японии*,
*из Вьетнама*); Japanese *風* (style) and *の模様* (pattern of) after the country name; Swahili
*Ki-* language/people prefix (*Kijapani*) and *U-* country prefix (*Ujerumani*); Vietnamese
country names after the head noun (*phong cách Nhật Bản*). The eight cultures are named after
the countries of their languages (the Swahili culture as Kenya).
"""

from __future__ import annotations

from xcm_debias.worlds.captions import LANGUAGES, caption
from xcm_debias.worlds.scenes import CULTURES, Scene

#: the two ways a caption names a culture
FORMS: tuple[str, ...] = ("style", "country")

_ORDER = ("de", "fr", "es", "it", "ja", "ru", "sw", "vi")


def _table(*names: str) -> dict[str, str]:
    return dict(zip(_ORDER, names, strict=True))


# language -> (style template, country template, style words, country words); "{c}" is the
# plain caption, "{w}" the culture word
_WORDS: dict[str, tuple[str, str, dict[str, str], dict[str, str]]] = {
    "en": (
        "{c}, in {w} style",
        "{c}, from {w}",
        _table(
            "German", "French", "Spanish", "Italian", "Japanese", "Russian", "Kenyan", "Vietnamese"
        ),
        _table("Germany", "France", "Spain", "Italy", "Japan", "Russia", "Kenya", "Vietnam"),
    ),
    "de": (
        "{c}, im {w} Stil",
        "{c}, aus {w}",
        _table(
            "deutschen",
            "französischen",
            "spanischen",
            "italienischen",
            "japanischen",
            "russischen",
            "kenianischen",
            "vietnamesischen",
        ),
        _table(
            "Deutschland",
            "Frankreich",
            "Spanien",
            "Italien",
            "Japan",
            "Russland",
            "Kenia",
            "Vietnam",
        ),
    ),
    "fr": (
        "{c}, de style {w}",
        "{c}, motif traditionnel {w}",
        _table(
            "allemand",
            "français",
            "espagnol",
            "italien",
            "japonais",
            "russe",
            "kényan",
            "vietnamien",
        ),
        _table(
            "d'Allemagne",
            "de France",
            "d'Espagne",
            "d'Italie",
            "du Japon",
            "de Russie",
            "du Kenya",
            "du Viêt Nam",
        ),
    ),
    "es": (
        "{c}, de estilo {w}",
        "{c}, con un motivo de {w}",
        _table(
            "alemán", "francés", "español", "italiano", "japonés", "ruso", "keniano", "vietnamita"
        ),
        _table("Alemania", "Francia", "España", "Italia", "Japón", "Rusia", "Kenia", "Vietnam"),
    ),
    "it": (
        "{c}, in stile {w}",
        "{c}, con un motivo {w}",
        _table(
            "tedesco",
            "francese",
            "spagnolo",
            "italiano",
            "giapponese",
            "russo",
            "keniota",
            "vietnamita",
        ),
        _table(
            "della Germania",
            "della Francia",
            "della Spagna",
            "dell'Italia",
            "del Giappone",
            "della Russia",
            "del Kenya",
            "del Vietnam",
        ),
    ),
    "ja": (
        "{w}風の絵：{c}",
        "{c}（{w}の模様）",
        _table(
            "ドイツ", "フランス", "スペイン", "イタリア", "日本", "ロシア", "ケニア", "ベトナム"
        ),
        _table(
            "ドイツ", "フランス", "スペイン", "イタリア", "日本", "ロシア", "ケニア", "ベトナム"
        ),
    ),
    "ru": (
        "{c}, в {w} стиле",
        "{c}, с узором из {w}",
        _table(
            "немецком",
            "французском",
            "испанском",
            "итальянском",
            "японском",
            "русском",
            "кенийском",
            "вьетнамском",
        ),
        _table("Германии", "Франции", "Испании", "Италии", "Японии", "России", "Кении", "Вьетнама"),
    ),
    "sw": (
        "{c}, kwa mtindo wa {w}",
        "{c}, kutoka {w}",
        _table(
            "Kijerumani",
            "Kifaransa",
            "Kihispania",
            "Kiitaliano",
            "Kijapani",
            "Kirusi",
            "Kikenya",
            "Kivietinamu",
        ),
        _table(
            "Ujerumani", "Ufaransa", "Uhispania", "Italia", "Japani", "Urusi", "Kenya", "Vietnam"
        ),
    ),
    "vi": (
        "{c}, theo phong cách {w}",
        "{c}, với hoa văn {w}",
        _table("Đức", "Pháp", "Tây Ban Nha", "Ý", "Nhật Bản", "Nga", "Kenya", "Việt Nam"),
        _table("Đức", "Pháp", "Tây Ban Nha", "Ý", "Nhật Bản", "Nga", "Kenya", "Việt Nam"),
    ),
}


def culture_caption(
    scene: Scene, language: str, template: int, culture: str, form: str = "style"
) -> str:
    """The caption of ``scene`` (``language``, ``template``) naming ``culture`` in ``form``.

    ``form`` is ``"style"`` (an adjective of style or people) or ``"country"`` (the country as
    the pattern's origin); the content words are those of :func:`caption`.
    """
    if culture not in CULTURES:
        raise ValueError(f"culture: expected one of {sorted(CULTURES)}, got {culture!r}")
    if form not in FORMS:
        raise ValueError(f"form: expected one of {FORMS}, got {form!r}")
    if language not in _WORDS:
        raise ValueError(f"language: expected one of {LANGUAGES}, got {language!r}")
    plain = caption(scene, language, template).rstrip(".")
    style, country, style_words, country_words = _WORDS[language]
    pattern, words = (style, style_words) if form == "style" else (country, country_words)
    text = pattern.format(c=plain, w=words[culture])
    return text[:1].upper() + text[1:]


__all__ = ["FORMS", "culture_caption"]
