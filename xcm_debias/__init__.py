"""xcm_debias: measure and remove language and culture bias in multilingual image–text retrieval.

Post-processes frozen embeddings of any dual encoder with small fitted torch modules.
"""

from __future__ import annotations

from xcm_debias.configs import recommended
from xcm_debias.data import EmbeddingSet
from xcm_debias.debiased import Debiased
from xcm_debias.faiss_retriever import FaissRetriever
from xcm_debias.report import BiasReport
from xcm_debias.retrieval import ExactRetriever, Ranking, Retriever

__version__ = "0.1.0"

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
