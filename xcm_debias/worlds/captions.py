"""Caption vocabulary and templates of the world, per language.

Nine languages: English; six that USE-m3 covers (German, French, Spanish, Italian, Japanese,
Russian); two it does not (Swahili, Vietnamese: low-resource *for this encoder*). Each language
has three templates for a single object and three for a pair, written with its own grammar:

- German: adjective endings by gender and case (``ein roter Kreis``, ``ein rotes Quadrat``;
  dative ``mit einem roten Herzen``), verb-second order (``Links ist ... zu sehen``).
- French, Spanish, Italian: colour after the noun, agreeing in gender (``une étoile verte``,
  ``una estrella roja``, ``una stella rossa``; invariable ``blu``, ``viola``, ``azul``, ``verde``);
  ``d'un``/``d'une`` elision.
- Russian: adjective–noun agreement in gender, nominative and instrumental
  (``с синим квадратом``, ``с красной звездой``), participle agreement (``изображена``).
- Japanese: prenominal colour (``赤い円``, ``緑の星``), postpositions (``左に...があります``).
- Swahili: noun-class agreement (class 3 ``mduara mwekundu``, class 9 ``nyota nyekundu``;
  invariable colours with the associative ``wa``/``ya``: ``mraba wa buluu``, ``nyota ya njano``).
- Vietnamese: head-first noun phrases with ``màu`` (``một hình tròn màu đỏ``).

Templates differ in wording and in what they say (two of the three pair templates omit the
left/right order), so captions are not one fixed string per item.
"""

from __future__ import annotations

from collections.abc import Callable

from xcm_debias.worlds.scenes import Scene, SceneObject

#: every caption language of the world, English first
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "it", "ja", "ru", "sw", "vi")
#: languages the USE-m3 encoder was trained on (well resolved)
HIGH_RESOURCE: tuple[str, ...] = ("en", "de", "fr", "es", "it", "ja", "ru")
#: languages USE-m3 was not trained on (poorly resolved: low-resource for this encoder)
LOW_RESOURCE: tuple[str, ...] = ("sw", "vi")
#: the culture associated with each language (English has none)
CULTURE_OF_LANGUAGE: dict[str, str] = {lang: lang for lang in LANGUAGES if lang != "en"}

N_TEMPLATES = 3

Forms = dict[str, str]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ----------------------------------------------------------------------------- English
_EN_POS = {"left": "on the left", "center": "in the middle", "right": "on the right"}


def _en_forms(o: SceneObject) -> Forms:
    return {"np": f"a {o.colour} {o.shape}"}


_EN_SINGLE = ("{np} {pos}", "a photo of {np} {pos}", "There is {np} {pos}.")
_EN_PAIR = (
    "{np1} on the left and {np2} on the right",
    "a picture of {np1} and {np2}",
    "{np1} next to {np2}",
)

# ----------------------------------------------------------------------------- German
# noun, gender, dative singular
_DE_NOUN = {
    "circle": ("Kreis", "m", "Kreis"),
    "square": ("Quadrat", "n", "Quadrat"),
    "triangle": ("Dreieck", "n", "Dreieck"),
    "star": ("Stern", "m", "Stern"),
    "cross": ("Kreuz", "n", "Kreuz"),
    "heart": ("Herz", "n", "Herzen"),
}
_DE_ADJ = {
    "red": "rot",
    "yellow": "gelb",
    "green": "grün",
    "blue": "blau",
    "purple": "violett",
    "black": "schwarz",
    "white": "weiß",
}
_DE_POS = {
    "left": ("auf der linken Seite", "Links"),
    "center": ("in der Mitte", "In der Mitte"),
    "right": ("auf der rechten Seite", "Rechts"),
}


def _de_forms(o: SceneObject) -> Forms:
    noun, gender, dative = _DE_NOUN[o.shape]
    adj = _DE_ADJ[o.colour]
    nominative = {"m": f"ein {adj}er", "n": f"ein {adj}es", "f": f"eine {adj}e"}[gender]
    dative_article = "einer" if gender == "f" else "einem"
    return {"np": f"{nominative} {noun}", "dat": f"{dative_article} {adj}en {dative}"}


_DE_SINGLE = ("{np} {pos}", "Ein Bild mit {dat} {pos}", "{adv} ist {np} zu sehen.")
_DE_PAIR = (
    "{np1} links und {np2} rechts",
    "Ein Bild mit {dat1} und {dat2}",
    "Links {np1}, rechts {np2}",
)

# ----------------------------------------------------------------------------- French
_FR_NOUN = {
    "circle": ("cercle", "m"),
    "square": ("carré", "m"),
    "triangle": ("triangle", "m"),
    "star": ("étoile", "f"),
    "cross": ("croix", "f"),
    "heart": ("cœur", "m"),
}
_FR_ADJ = {
    "red": ("rouge", "rouge"),
    "yellow": ("jaune", "jaune"),
    "green": ("vert", "verte"),
    "blue": ("bleu", "bleue"),
    "purple": ("violet", "violette"),
    "black": ("noir", "noire"),
    "white": ("blanc", "blanche"),
}
_FR_POS = {"left": "à gauche", "center": "au centre", "right": "à droite"}


def _fr_forms(o: SceneObject) -> Forms:
    noun, gender = _FR_NOUN[o.shape]
    masc, fem = _FR_ADJ[o.colour]
    article, adj = ("un", masc) if gender == "m" else ("une", fem)
    return {"np": f"{article} {noun} {adj}"}


_FR_SINGLE = ("{np} {pos}", "une photo d'{np} {pos}", "Il y a {np} {pos}.")
_FR_PAIR = (
    "{np1} à gauche et {np2} à droite",
    "une image avec {np1} et {np2}",
    "{np1} à côté d'{np2}",
)

# ----------------------------------------------------------------------------- Spanish
_ES_NOUN = {
    "circle": ("círculo", "m"),
    "square": ("cuadrado", "m"),
    "triangle": ("triángulo", "m"),
    "star": ("estrella", "f"),
    "cross": ("cruz", "f"),
    "heart": ("corazón", "m"),
}
_ES_ADJ = {
    "red": ("rojo", "roja"),
    "yellow": ("amarillo", "amarilla"),
    "green": ("verde", "verde"),
    "blue": ("azul", "azul"),
    "purple": ("morado", "morada"),
    "black": ("negro", "negra"),
    "white": ("blanco", "blanca"),
}
_ES_POS = {"left": "a la izquierda", "center": "en el centro", "right": "a la derecha"}


def _es_forms(o: SceneObject) -> Forms:
    noun, gender = _ES_NOUN[o.shape]
    masc, fem = _ES_ADJ[o.colour]
    article, adj = ("un", masc) if gender == "m" else ("una", fem)
    return {"np": f"{article} {noun} {adj}"}


_ES_SINGLE = ("{np} {pos}", "una foto de {np} {pos}", "Hay {np} {pos}.")
_ES_PAIR = (
    "{np1} a la izquierda y {np2} a la derecha",
    "una imagen con {np1} y {np2}",
    "{np1} junto a {np2}",
)

# ----------------------------------------------------------------------------- Italian
_IT_NOUN = {
    "circle": ("cerchio", "m"),
    "square": ("quadrato", "m"),
    "triangle": ("triangolo", "m"),
    "star": ("stella", "f"),
    "cross": ("croce", "f"),
    "heart": ("cuore", "m"),
}
_IT_ADJ = {
    "red": ("rosso", "rossa"),
    "yellow": ("giallo", "gialla"),
    "green": ("verde", "verde"),
    "blue": ("blu", "blu"),
    "purple": ("viola", "viola"),
    "black": ("nero", "nera"),
    "white": ("bianco", "bianca"),
}
_IT_POS = {"left": "a sinistra", "center": "al centro", "right": "a destra"}


def _it_forms(o: SceneObject) -> Forms:
    noun, gender = _IT_NOUN[o.shape]
    masc, fem = _IT_ADJ[o.colour]
    article, adj = ("un", masc) if gender == "m" else ("una", fem)
    return {"np": f"{article} {noun} {adj}"}


_IT_SINGLE = ("{np} {pos}", "una foto di {np} {pos}", "C'è {np} {pos}.")
_IT_PAIR = (
    "{np1} a sinistra e {np2} a destra",
    "un'immagine con {np1} e {np2}",
    "{np1} accanto a {np2}",
)

# ----------------------------------------------------------------------------- Japanese
_JA_NOUN = {
    "circle": "円",
    "square": "正方形",
    "triangle": "三角形",
    "star": "星",
    "cross": "十字",
    "heart": "ハート",
}
_JA_ADJ = {
    "red": "赤い",
    "yellow": "黄色い",
    "green": "緑の",
    "blue": "青い",
    "purple": "紫の",
    "black": "黒い",
    "white": "白い",
}
_JA_POS = {"left": "左", "center": "中央", "right": "右"}


def _ja_forms(o: SceneObject) -> Forms:
    return {"np": f"{_JA_ADJ[o.colour]}{_JA_NOUN[o.shape]}"}


_JA_SINGLE = ("{pos}に{np}があります", "{np}が{pos}にある画像", "{pos}の{np}")
_JA_PAIR = ("左に{np1}、右に{np2}", "{np1}と{np2}", "{np1}の右に{np2}があります")

# ----------------------------------------------------------------------------- Russian
# noun (nominative), gender, instrumental
_RU_NOUN = {
    "circle": ("круг", "m", "кругом"),
    "square": ("квадрат", "m", "квадратом"),
    "triangle": ("треугольник", "m", "треугольником"),
    "star": ("звезда", "f", "звездой"),
    "cross": ("крест", "m", "крестом"),
    "heart": ("сердце", "n", "сердцем"),
}
# nominative m, f, n; instrumental m/n, f
_RU_ADJ = {
    "red": ("красный", "красная", "красное", "красным", "красной"),
    "yellow": ("жёлтый", "жёлтая", "жёлтое", "жёлтым", "жёлтой"),
    "green": ("зелёный", "зелёная", "зелёное", "зелёным", "зелёной"),
    "blue": ("синий", "синяя", "синее", "синим", "синей"),
    "purple": ("фиолетовый", "фиолетовая", "фиолетовое", "фиолетовым", "фиолетовой"),
    "black": ("чёрный", "чёрная", "чёрное", "чёрным", "чёрной"),
    "white": ("белый", "белая", "белое", "белым", "белой"),
}
_RU_SHOWN = {"m": "изображён", "f": "изображена", "n": "изображено"}
_RU_POS = {
    "left": ("слева", "Слева"),
    "center": ("в центре", "В центре"),
    "right": ("справа", "Справа"),
}


def _ru_forms(o: SceneObject) -> Forms:
    noun, gender, instrumental = _RU_NOUN[o.shape]
    nom_m, nom_f, nom_n, ins_mn, ins_f = _RU_ADJ[o.colour]
    nominative = {"m": nom_m, "f": nom_f, "n": nom_n}[gender]
    ins_adj = ins_f if gender == "f" else ins_mn
    return {
        "np": f"{nominative} {noun}",
        "ins": f"{ins_adj} {instrumental}",
        "shown": _RU_SHOWN[gender],
    }


_RU_SINGLE = ("{np} {pos}", "{adv} {shown} {np}", "картинка с {ins} {pos}")
_RU_PAIR = ("{np1} слева и {np2} справа", "картинка с {ins1} и {ins2}", "{np1} рядом с {ins2}")

# ----------------------------------------------------------------------------- Swahili
# noun, noun class (3: m-mi, 9: n-n)
_SW_NOUN = {
    "circle": ("mduara", 3),
    "square": ("mraba", 3),
    "triangle": ("pembetatu", 9),
    "star": ("nyota", 9),
    "cross": ("msalaba", 3),
    "heart": ("moyo", 3),
}
# agreeing adjective stems take the class prefix (mw-/ny-); the others are nouns of colour
# joined by the associative -a (wa for class 3, ya for class 9)
_SW_AGREEING = {"red": "ekundu", "white": "eupe", "black": "eusi"}
_SW_ASSOCIATIVE = {"yellow": "njano", "green": "kijani", "blue": "buluu", "purple": "zambarau"}
_SW_POS = {"left": "upande wa kushoto", "center": "katikati", "right": "upande wa kulia"}


def _sw_forms(o: SceneObject) -> Forms:
    noun, noun_class = _SW_NOUN[o.shape]
    if o.colour in _SW_AGREEING:
        prefix = "mw" if noun_class == 3 else "ny"
        colour = f"{prefix}{_SW_AGREEING[o.colour]}"
    else:
        colour = f"{'wa' if noun_class == 3 else 'ya'} {_SW_ASSOCIATIVE[o.colour]}"
    return {"np": f"{noun} {colour}"}


_SW_SINGLE = ("{np} {pos}", "picha ya {np} {pos}", "Kuna {np} {pos}.")
_SW_PAIR = (
    "{np1} upande wa kushoto na {np2} upande wa kulia",
    "picha ya {np1} na {np2}",
    "{np1} karibu na {np2}",
)

# ----------------------------------------------------------------------------- Vietnamese
_VI_NOUN = {
    "circle": "hình tròn",
    "square": "hình vuông",
    "triangle": "hình tam giác",
    "star": "ngôi sao",
    "cross": "hình chữ thập",
    "heart": "hình trái tim",
}
_VI_ADJ = {
    "red": "đỏ",
    "yellow": "vàng",
    "green": "xanh lá",
    "blue": "xanh dương",
    "purple": "tím",
    "black": "đen",
    "white": "trắng",
}
_VI_POS = {"left": "ở bên trái", "center": "ở giữa", "right": "ở bên phải"}


def _vi_forms(o: SceneObject) -> Forms:
    return {"np": f"một {_VI_NOUN[o.shape]} màu {_VI_ADJ[o.colour]}"}


_VI_SINGLE = ("{np} {pos}", "bức ảnh có {np} {pos}", "Có {np} {pos}.")
_VI_PAIR = (
    "{np1} ở bên trái và {np2} ở bên phải",
    "bức ảnh có {np1} và {np2}",
    "{np1} bên cạnh {np2}",
)


# ----------------------------------------------------------------------------- tables
def _plain_pos(table: dict[str, str]) -> Callable[[str], Forms]:
    return lambda slot: {"pos": table[slot]}


def _pos_and_adverb(table: dict[str, tuple[str, str]]) -> Callable[[str], Forms]:
    return lambda slot: {"pos": table[slot][0], "adv": table[slot][1]}


# language -> (object forms, position forms, single templates, pair templates)
_TABLES: dict[
    str,
    tuple[
        Callable[[SceneObject], Forms],
        Callable[[str], Forms],
        tuple[str, ...],
        tuple[str, ...],
    ],
] = {
    "en": (_en_forms, _plain_pos(_EN_POS), _EN_SINGLE, _EN_PAIR),
    "de": (_de_forms, _pos_and_adverb(_DE_POS), _DE_SINGLE, _DE_PAIR),
    "fr": (_fr_forms, _plain_pos(_FR_POS), _FR_SINGLE, _FR_PAIR),
    "es": (_es_forms, _plain_pos(_ES_POS), _ES_SINGLE, _ES_PAIR),
    "it": (_it_forms, _plain_pos(_IT_POS), _IT_SINGLE, _IT_PAIR),
    "ja": (_ja_forms, _plain_pos(_JA_POS), _JA_SINGLE, _JA_PAIR),
    "ru": (_ru_forms, _pos_and_adverb(_RU_POS), _RU_SINGLE, _RU_PAIR),
    "sw": (_sw_forms, _plain_pos(_SW_POS), _SW_SINGLE, _SW_PAIR),
    "vi": (_vi_forms, _plain_pos(_VI_POS), _VI_SINGLE, _VI_PAIR),
}


def caption(scene: Scene, language: str, template: int = 0) -> str:
    """The caption of ``scene`` in ``language`` with template number ``template`` (0–2)."""
    if not isinstance(scene, Scene):
        raise TypeError(f"scene: expected a Scene, got {type(scene).__name__}")
    if language not in _TABLES:
        raise ValueError(f"language: expected one of {LANGUAGES}, got {language!r}")
    if (
        isinstance(template, bool)
        or not isinstance(template, int)
        or not 0 <= template < N_TEMPLATES
    ):
        raise ValueError(f"template: expected an integer in [0, {N_TEMPLATES}), got {template!r}")
    forms, positions, single, pair = _TABLES[language]
    if len(scene.objects) == 1:
        obj = scene.objects[0]
        text = single[template].format(**forms(obj), **positions(obj.slot))
    else:
        left, right = scene.objects
        fields = {f"{k}1": v for k, v in forms(left).items()}
        fields.update({f"{k}2": v for k, v in forms(right).items()})
        text = pair[template].format(**fields)
    return _cap(text)
