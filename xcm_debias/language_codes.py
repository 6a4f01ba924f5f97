"""Language codes: one matching key per language, whatever spelling a table uses.

``EN``, ``en``, ``eng``, ``en-US``, ``en_US`` and ``en-Latn-GB`` name one language. Every place
that matches languages (``EmbeddingSet.language``, ``where(language=...)``, the
``culture_of_language`` and ``low_resource`` arguments of ``BiasReport.evaluate``) goes through
:func:`language_key`, so that they count as one; ``EmbeddingSet.language_tag`` keeps the codes
as given, for display.

The key of a BCP 47 tag (IETF RFC 5646; ``_`` accepted for ``-``) is

    key(tag) = lang                 if script(tag) is the usual script of lang
             = lang + "-" + script  otherwise

where ``lang`` is the primary language subtag in its shortest standard form (ISO 639-1 when the
language has one: ``eng``/``EN`` → ``en``, the ISO 639-2/B codes ``ger``/``fre``/``cze`` →
``de``/``fr``/``cs``, deprecated codes ``iw``/``in`` → ``he``/``id``) and ``script`` is the tag's
script subtag, or the script its region implies (CLDR likely subtags: ``zh-TW`` → ``Hant``).
Regions, variants and extensions are dropped: ``en-US`` and ``en-GB`` match, ``zh-TW`` and
``zh-CN`` do not (traditional and simplified characters are written differently, and encoders
see them as different text). Macrolanguages are not merged (``cmn``, ``swh`` stay as given).

A value that is not a language tag of a registered language (``"lang0"``, ``"L1"``, ``"A"``) is
its own key, unchanged: free group labels keep working. The code tables are the IANA language
subtag registry and CLDR's likely subtags, as shipped by the ``langcodes`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import langcodes
import numpy as np

__all__ = ["language_key", "language_keys"]


@lru_cache(maxsize=4096)
def language_key(code: str) -> str:
    """The matching key of one language code (see the module docstring; ``""`` stays ``""``).

    >>> [language_key(c) for c in ("EN", "eng", "en_US", "ger", "zh-TW", "sh", "lang0")]
    ['en', 'en', 'en', 'de', 'zh-Hant', 'sr-Latn', 'lang0']
    """
    if not isinstance(code, str):
        raise TypeError(f"code: expected a language code string, got {type(code).__name__}")
    try:
        tag = langcodes.Language.get(code.strip().replace("_", "-"), normalize=True)
    except langcodes.LanguageTagError:
        return code
    language = tag.language
    if language is None or not langcodes.Language.make(language=language).is_valid():
        return code
    script = tag.script or _likely_script(tag)
    usual = _likely_script(langcodes.Language.make(language=language))
    return language if script in (None, usual) else f"{language}-{script}"


def language_keys(codes: Sequence[str] | np.ndarray) -> np.ndarray:
    """:func:`language_key` of every value of a 1-D string array (each distinct value once).

    Returns ``codes`` itself (no copy) when every value already is its key.
    """
    values = np.asarray(codes)
    if values.dtype.kind != "U" or values.ndim != 1:
        raise TypeError(
            f"codes: expected a 1-D array of strings, got dtype {values.dtype} shape {values.shape}"
        )
    distinct, inverse = np.unique(values, return_inverse=True)
    keys = [language_key(str(v)) for v in distinct.tolist()]
    if keys == distinct.tolist():
        return values
    return np.asarray(keys, dtype=np.str_)[inverse.reshape(-1)]


def _likely_script(tag: langcodes.Language) -> str | None:
    """The script CLDR's likely subtags give ``tag`` (``None`` when they give another language)."""
    full = tag.maximize()
    return full.script if full.language == tag.language else None
