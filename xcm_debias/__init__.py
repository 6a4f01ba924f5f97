"""xcm_debias: measure and remove language and culture bias in multilingual image–text retrieval.

Post-processes frozen embeddings of any dual encoder with small fitted torch modules.

The names below, and subpackages such as ``xcm_debias.processors``, load on first use
(PEP 562), so ``import xcm_debias`` and the command line's ``--help`` do not pay for importing
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "BiasReport": "xcm_debias.report",
    "Debiased": "xcm_debias.debiased",
    "EmbeddingSet": "xcm_debias.data",
    "ExactRetriever": "xcm_debias.retrieval",
    "FaissRetriever": "xcm_debias.faiss_retriever",
    "Ranking": "xcm_debias.retrieval",
    "Retriever": "xcm_debias.retrieval",
    "recommended": "xcm_debias.configs",
}

__all__ = [
    "BiasReport",
    "Debiased",
    "EmbeddingSet",
    "ExactRetriever",
    "FaissRetriever",
    "Ranking",
    "Retriever",
    "__version__",
    "recommended",
]

if TYPE_CHECKING:
    from xcm_debias.configs import recommended
    from xcm_debias.data import EmbeddingSet
    from xcm_debias.debiased import Debiased
    from xcm_debias.faiss_retriever import FaissRetriever
    from xcm_debias.report import BiasReport
    from xcm_debias.retrieval import ExactRetriever, Ranking, Retriever


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:  # a subpackage, as the eager imports once made available: xcm_debias.processors
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'xcm_debias' has no attribute {name!r}") from None
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
