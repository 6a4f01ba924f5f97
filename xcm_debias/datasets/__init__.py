"""Readers for public multilingual image–caption datasets, as downloaded, to EmbeddingSets.

- :func:`read_multi30k` / :func:`load_multi30k` — Multi30K (Elliott et al., 2016; French:
  Elliott et al., 2017; Czech: Barrault et al., 2018): ``{split}.{lang}`` caption files whose
  line i describes image i of ``{split}.images.txt``.
- :func:`read_xm3600` / :func:`load_xm3600` — Crossmodal-3600 (Thapliyal et al., EMNLP 2022):
  ``captions.jsonl`` (one image per line: ``image/key``, ``image/locale`` and captions per
  language) and the ``images/`` folder of ``<key>.jpg``; the image locale is the culture label.

``read_*`` return a :class:`CaptionCorpus` (texts and labels, nothing encoded); ``load_*``
encode it with the encoders you give (``encode_texts`` for captions, ``encode_images`` for
images: :class:`~xcm_debias.encoders.OpenCLIPEncoder` has both, ``USEEncoder`` texts only).
No data ships with the package: point the readers at your copy.
"""

from __future__ import annotations

from xcm_debias.datasets.corpus import CaptionCorpus, encode_corpus
from xcm_debias.datasets.multi30k import load_multi30k, read_multi30k
from xcm_debias.datasets.xm3600 import load_xm3600, read_xm3600

__all__ = [
    "CaptionCorpus",
    "encode_corpus",
    "load_multi30k",
    "load_xm3600",
    "read_multi30k",
    "read_xm3600",
]
