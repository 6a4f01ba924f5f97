"""Bias metrics of multilingual image–text retrieval: pure functions, one module per family.

Each function takes per-query arrays (ranks, relevance of the retrieved slots, labels) and
returns per-query values or a number; formulas and sources are in each docstring and in
``docs/metrics.md``. :class:`xcm_debias.BiasReport` only orchestrates them.

=====================  =====================================================================
module                 metrics
=====================  =====================================================================
``ranks``              full rank of the first relevant gallery row (``rank_of`` or search)
``relevance``          relevance by shared item, relevant pairs and counts
``recall``             recall@k (multi-positive), reciprocal rank (MRR), AP@k (INQUIRE)
``groups``             per-language / per-culture means and their spread
``consistency``        Mean Rank Variance (``mrv`` = std as CCRK's code, ``mrv_var``)
``language_share``     language share@k, TV distance, faithfulness loss, 3XCM LBKL/DLBKL
``culture``            own-culture@1, chance, excess, hits/misses
``hubness``            k-occurrence, skewness, anti-hubs, Robin Hood, hub occurrence, null
``modality_gap``       distance between image and text centroids
``odmap``              ODmAP-style@k on queries that break a training co-occurrence
``uncertainty``        standard errors: of a mean, of a mean of group means, bootstrap
=====================  =====================================================================
"""

from __future__ import annotations

from xcm_debias.metrics.consistency import mrv, mrv_var, rank_spread_per_group
from xcm_debias.metrics.culture import (
    by_outcome,
    own_culture_at_1,
    own_culture_chance,
    own_culture_excess,
)
from xcm_debias.metrics.groups import GroupSpread, group_mean, group_share, spread
from xcm_debias.metrics.hubness import (
    HubnessNull,
    antihub_share,
    hub_occurrence,
    k_occurrence,
    random_null,
    robin_hood_index,
    skewness,
)
from xcm_debias.metrics.language_share import (
    faithfulness_loss,
    gallery_language_share,
    language_share_at_k,
    lbkl_at_k,
    total_variation,
    unfaithful_top1_share,
)
from xcm_debias.metrics.modality_gap import modality_gap
from xcm_debias.metrics.odmap import decorrelated_by_objects, odmap_at_k
from xcm_debias.metrics.ranks import first_relevant_ranks, subset_ranks_from_topk
from xcm_debias.metrics.recall import average_precision_at_k, recall_at_k, reciprocal_rank
from xcm_debias.metrics.relevance import relevance_at_k, relevant_counts, relevant_pairs
from xcm_debias.metrics.uncertainty import bootstrap_se, mean_se, stratified_mean_se

__all__ = [
    "GroupSpread",
    "HubnessNull",
    "antihub_share",
    "average_precision_at_k",
    "bootstrap_se",
    "by_outcome",
    "decorrelated_by_objects",
    "faithfulness_loss",
    "first_relevant_ranks",
    "gallery_language_share",
    "group_mean",
    "group_share",
    "hub_occurrence",
    "k_occurrence",
    "language_share_at_k",
    "lbkl_at_k",
    "mean_se",
    "modality_gap",
    "mrv",
    "mrv_var",
    "odmap_at_k",
    "own_culture_at_1",
    "own_culture_chance",
    "own_culture_excess",
    "random_null",
    "rank_spread_per_group",
    "recall_at_k",
    "reciprocal_rank",
    "relevance_at_k",
    "relevant_counts",
    "relevant_pairs",
    "robin_hood_index",
    "skewness",
    "spread",
    "stratified_mean_se",
    "subset_ranks_from_topk",
    "total_variation",
    "unfaithful_top1_share",
]
