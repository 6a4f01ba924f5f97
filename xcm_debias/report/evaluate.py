"""``evaluate_report``: run text→image and image→text on a corpus and compute every metric.

Orchestration only: each number comes from a pure function of :mod:`xcm_debias.metrics`; this
module chooses queries and galleries, runs the retriever once per direction (a top-k search plus
the full ranks of the queries whose top k misses), and names the results with the stable keys
that ``docs/metrics.md`` lists.

Directions. **t2i**: the corpus's texts are queries, its images the gallery. **i2t**: the
images are queries, the multilingual captions the gallery. Relevance = same ``item``. A query
without any relevant row on the other side (an image nobody captioned) is left out of that
direction's queries but stays in the gallery of the other direction; ``config`` counts them.

Labels. Texts carry a language on every row or on none: without languages, every per-language
key (``/lang=``), language share, MRV and LBKL are omitted. Images without cultures omit the
own-culture and per-culture keys. ``culture_of_language`` maps a language to its culture
(default: the culture whose label equals the language code); a language whose culture no image
carries (or that has no culture) gets no own-culture keys; ``config["culture_of_language"]``
holds the map actually used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.metrics import (
    antihub_share,
    average_precision_at_k,
    by_outcome,
    decorrelated_by_objects,
    faithfulness_loss,
    first_relevant_ranks,
    gallery_language_share,
    group_mean,
    group_share,
    hub_occurrence,
    k_occurrence,
    language_share_at_k,
    lbkl_at_k,
    modality_gap,
    mrv,
    mrv_var,
    odmap_at_k,
    own_culture_at_1,
    own_culture_chance,
    own_culture_excess,
    random_null,
    rank_spread_per_group,
    recall_at_k,
    reciprocal_rank,
    relevance_at_k,
    relevant_counts,
    robin_hood_index,
    skewness,
    spread,
    subset_ranks_from_topk,
    total_variation,
    unfaithful_top1_share,
)
from xcm_debias.metrics.ranks import check_ranking, check_retriever
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.retrieval import Retriever

Metrics = dict[str, float]


@dataclass(frozen=True)
class _Direction:
    """One retrieval direction, run once: queries, gallery, top-k and full first ranks."""

    name: str
    queries: EmbeddingSet
    gallery: EmbeddingSet
    indices: np.ndarray  # [Q, k'] gallery rows, best first
    relevance: np.ndarray  # [Q, k'] bool
    ranks: np.ndarray  # [Q] 1-based rank of the first relevant gallery row
    n_relevant: np.ndarray  # [Q] R_q
    kept: np.ndarray  # [rows of the query modality] bool: the row is one of the queries

    @property
    def n_left_out(self) -> int:
        """Rows of the query modality without a relevant gallery row (not queried)."""
        return int((~self.kept).sum())


def evaluate_report(
    retriever: Retriever,
    corpus: EmbeddingSet,
    k: int = 10,
    culture_of_language: Mapping[str, str] | None = None,
    *,
    low_resource: Sequence[str] | None = None,
    cooccurring_objects: Sequence[tuple[str, str]] | None = None,
) -> BiasReport:
    """Every metric of ``retriever`` on ``corpus`` (text→image and image→text).

    Args:
        retriever: anything with ``search(queries, gallery, k) -> Ranking``; ``rank_of`` is used
            when present, and ``transform(EmbeddingSet) -> EmbeddingSet`` (a retriever that
            changes embeddings) places the modality gap in the retriever's own space.
        corpus: image and text rows; relevance = same ``item``.
        k: cut-off of the top-k metrics (recall is also reported at 1 and 5).
        culture_of_language: language -> its associated culture (default: same label).
        low_resource: languages counted as low-resource by 3XCM's LBKL/DLBKL; ``None`` omits
            those keys (no default list is guessed).
        cooccurring_objects: object pairs that co-occur in training, for ODmAP-style@k with the
            ``objects`` extra column; without it, a boolean ``decorrelated`` extra column is
            used when present; otherwise ODmAP keys are omitted.

    Returns:
        A :class:`BiasReport` with flat ``metrics``, ``details`` (k-occurrence lists) and
        ``config``.
    """
    check_retriever(retriever)
    if not isinstance(corpus, EmbeddingSet):
        raise TypeError(f"corpus: expected an EmbeddingSet, got {type(corpus).__name__}")
    k = check_positive_int(k, "k")
    is_image = corpus.modality == "image"
    if not is_image.any() or is_image.all():
        raise ValueError(
            f"corpus: expected image and text rows, got {int(is_image.sum())} images and "
            f"{int((~is_image).sum())} texts"
        )
    images, texts = corpus[is_image], corpus[~is_image]
    languages = _languages(texts)
    cultures = images.cultures()
    own_map = _culture_of_language(culture_of_language, languages, cultures)
    low = _low_resource(low_resource, languages)
    decorrelated = _decorrelated(corpus, cooccurring_objects)

    t2i = _run(retriever, texts, images, k, "t2i")
    i2t = _run(retriever, images, texts, k, "i2t")
    metrics: Metrics = {}
    for direction, group_label, group_name in (
        (t2i, "language", "lang"),
        (i2t, "culture", "culture"),
    ):
        groups = direction.queries.label(group_label)
        has_groups = bool((groups != "").any())
        metrics.update(_retrieval(direction, k, groups if has_groups else None, group_name))
        metrics.update(_hubness(direction, k))
    if languages:
        metrics.update(_mrv_t2i(t2i))
        metrics.update(_mrv_i2t(retriever, i2t))
        metrics.update(_language_share(i2t, k, low))
        if cultures:
            metrics.update(_culture_share(t2i))
    if own_map:
        metrics.update(_own_culture(t2i, own_map))
    odmap_config = None
    if decorrelated is not None:
        metrics.update(_odmap(t2i, i2t, k, decorrelated[~is_image], decorrelated[is_image]))
        odmap_config = (
            {"cooccurring_objects": [list(p) for p in cooccurring_objects]}
            if cooccurring_objects is not None
            else {"column": "decorrelated"}
        )
    gap_space, gap_corpus = _embedding_space(retriever, corpus)
    metrics["modality_gap"] = modality_gap(
        gap_corpus.embeddings[gap_corpus.modality == "image"],
        gap_corpus.embeddings[gap_corpus.modality == "text"],
    )

    details = {
        f"{d.name}/k_occurrence@{k}": k_occurrence(d.indices, len(d.gallery)).tolist()
        for d in (t2i, i2t)
    }
    config = {
        "k": k,
        "retriever": repr(retriever),
        "n_images": len(images),
        "n_texts": len(texts),
        "n_t2i_queries": len(t2i.queries),
        "n_i2t_queries": len(i2t.queries),
        "n_texts_without_image": t2i.n_left_out,
        "n_images_without_caption": i2t.n_left_out,
        "languages": languages,
        "cultures": cultures,
        "culture_of_language": own_map,
        "low_resource": low,
        "odmap": odmap_config,
        "modality_gap_space": gap_space,
    }
    return BiasReport(metrics=metrics, details=details, config=config)


# ------------------------------------------------------------------ validation
def _languages(texts: EmbeddingSet) -> list[str]:
    """The texts' languages; all texts labelled or none (else a clear error)."""
    missing = int((texts.language == "").sum())
    if 0 < missing < len(texts):
        raise ValueError(
            f"corpus: expected a language on every text or on none, got {missing} of "
            f"{len(texts)} texts without one"
        )
    return texts.languages()


def _culture_of_language(
    mapping: Mapping[str, str] | None, languages: list[str], cultures: list[str]
) -> dict[str, str]:
    """Resolve the language -> own culture map for the languages present in the corpus."""
    if mapping is None:
        return {lang: lang for lang in languages if lang in cultures}
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"culture_of_language: expected a mapping language -> culture, got "
            f"{type(mapping).__name__}"
        )
    resolved = {}
    for lang, culture in mapping.items():
        if not isinstance(lang, str) or not isinstance(culture, str) or not lang or not culture:
            raise TypeError(
                f"culture_of_language: expected non-empty strings, got {lang!r} -> {culture!r}"
            )
        # a language absent from the texts has no queries; a culture no image carries has no
        # chance level: either way the language gets no own-culture keys (config shows the map)
        if lang in languages and culture in cultures:
            resolved[lang] = culture
    return resolved


def _low_resource(low_resource: Sequence[str] | None, languages: list[str]) -> list[str] | None:
    if low_resource is None:
        return None
    if isinstance(low_resource, str) or not isinstance(low_resource, Sequence):
        raise TypeError(
            f"low_resource: expected a sequence of language codes, got {type(low_resource).__name__}"
        )
    unknown = sorted(set(low_resource) - set(languages))
    if not low_resource or unknown:
        raise ValueError(
            f"low_resource: expected languages of the corpus's texts {languages}, got "
            f"{list(low_resource)} ({'empty' if not low_resource else f'unknown: {unknown}'})"
        )
    return sorted(set(low_resource))


def _decorrelated(
    corpus: EmbeddingSet, cooccurring_objects: Sequence[tuple[str, str]] | None
) -> np.ndarray | None:
    """Per corpus row: does it show one object of a training co-occurring pair alone?"""
    extra = corpus.extra
    if cooccurring_objects is not None:
        if "objects" not in extra:
            raise ValueError(
                "cooccurring_objects: expected an 'objects' extra column on the corpus "
                f"(';'-joined object names), got extra columns {sorted(extra)}"
            )
        return decorrelated_by_objects(extra["objects"], cooccurring_objects)
    if "decorrelated" not in extra:
        return None
    column = extra["decorrelated"]
    if column.dtype.kind in "iu" and np.isin(column, (0, 1)).all():
        column = column.astype(bool)
    if column.dtype != bool:
        raise TypeError(
            f"corpus.extra['decorrelated']: expected booleans, got dtype {column.dtype}"
        )
    return column


def _embedding_space(retriever: Retriever, corpus: EmbeddingSet) -> tuple[str, EmbeddingSet]:
    transform = getattr(retriever, "transform", None)
    if not callable(transform):
        return "corpus", corpus
    moved = transform(corpus)
    if not isinstance(moved, EmbeddingSet) or len(moved) != len(corpus):
        raise TypeError(
            f"retriever.transform: expected an EmbeddingSet of {len(corpus)} rows, got "
            f"{type(moved).__name__}"
        )
    return "retriever.transform", moved


# ------------------------------------------------------------------ directions
def _run(
    retriever: Retriever, queries: EmbeddingSet, gallery: EmbeddingSet, k: int, name: str
) -> _Direction:
    """Search and rank one direction (queries without a relevant gallery row left out)."""
    counts = relevant_counts(queries.item, gallery.item)
    answerable = counts > 0
    if not answerable.any():
        raise ValueError(
            f"corpus: expected {name} queries sharing an item with the gallery, got none "
            f"({len(queries)} {queries.modality[0]}s, no common item)"
        )
    if not answerable.all():
        queries = queries[answerable]
    ranking = check_ranking(
        retriever.search(queries, gallery, k), len(queries), len(gallery), k, "retriever.search"
    )
    ranks = first_relevant_ranks(retriever, queries, gallery, ranking)
    indices = ranking.indices.cpu().numpy().astype(np.int64)
    return _Direction(
        name=name,
        queries=queries,
        gallery=gallery,
        indices=indices,
        relevance=relevance_at_k(indices, queries.item, gallery.item),
        ranks=ranks,
        n_relevant=counts[answerable],
        kept=answerable,
    )


def _retrieval(d: _Direction, k: int, groups: np.ndarray | None, group_name: str) -> Metrics:
    """recall@{1,5,k}, MRR, mAP@k; per group and the spread of recall@1 across groups."""
    per_query = {f"recall@{c}": recall_at_k(d.ranks, c) for c in sorted({1, 5, k})}
    per_query["mrr"] = reciprocal_rank(d.ranks)
    per_query[f"map@{k}"] = average_precision_at_k(d.relevance, d.n_relevant, k)
    out = {f"{d.name}/{key}": float(values.mean()) for key, values in per_query.items()}
    if groups is None:
        return out
    for key, values in per_query.items():
        for group, value in group_mean(values, groups).items():
            out[f"{d.name}/{key}/{group_name}={group}"] = value
    recall_1 = group_mean(per_query["recall@1"], groups)
    s = spread(recall_1)
    for stat, value in (("worst", s.worst), ("best", s.best)):
        out[f"{d.name}/recall@1/{stat}_{group_name}"] = value
    out[f"{d.name}/recall@1/{group_name}_gap"] = s.gap
    out[f"{d.name}/recall@1/{group_name}_std"] = s.std
    return out


def _hubness(d: _Direction, k: int) -> Metrics:
    n_k = k_occurrence(d.indices, len(d.gallery))
    null = random_null(d.indices.shape[1], len(d.queries), len(d.gallery))
    prefix = f"{d.name}/hubness"
    return {
        f"{prefix}_skew@{k}": skewness(n_k),
        f"{prefix}_antihub@{k}": antihub_share(n_k),
        f"{prefix}_robin_hood@{k}": robin_hood_index(n_k),
        f"{prefix}_hub_occurrence@{k}": hub_occurrence(n_k),
        f"{prefix}_skew_null@{k}": null.skewness,
        f"{prefix}_antihub_null@{k}": null.antihub_share,
    }


# ------------------------------------------------------------ bias families
def _language_share(i2t: _Direction, k: int, low_resource: list[str] | None) -> Metrics:
    """Prevalence (i2t): language share@1/@k vs the gallery's, TV, faithfulness, LBKL."""
    retrieved = i2t.gallery.language[i2t.indices]
    gallery = gallery_language_share(i2t.gallery.language)
    out: Metrics = {}
    for lang, share in gallery.items():
        out[f"i2t/gallery_language_share/lang={lang}"] = share
    for cut in sorted({1, k}):
        shares = dict.fromkeys(gallery, 0.0) | language_share_at_k(retrieved, cut)
        for lang, share in shares.items():
            out[f"i2t/language_share@{cut}/lang={lang}"] = share
        out[f"i2t/language_tv@{cut}"] = total_variation(shares, gallery)
        out[f"i2t/faithfulness_loss@{cut}"] = faithfulness_loss(i2t.relevance, cut)
    unfaithful = dict.fromkeys(gallery, 0.0) | unfaithful_top1_share(i2t.relevance, retrieved)
    for lang, share in unfaithful.items():
        out[f"i2t/faithfulness_loss@1/lang={lang}"] = share
    if low_resource is not None:
        for cut in sorted({1, k}):
            out[f"i2t/lbkl@{cut}"] = lbkl_at_k(retrieved, low_resource, cut)
        out[f"i2t/dlbkl@{k}"] = lbkl_at_k(retrieved, low_resource, k, discounted=True)
    return out


def _culture_share(t2i: _Direction) -> Metrics:
    """The language × culture-of-the-top-1-image heat map (t2i)."""
    top1 = t2i.gallery.culture[t2i.indices[:, 0]]
    table = group_share(top1, t2i.queries.language)
    cultures = t2i.gallery.cultures()
    return {
        f"t2i/culture_share@1/lang={lang}/culture={culture}": row.get(culture, 0.0)
        for lang, row in table.items()
        for culture in cultures
    }


def _own_culture(t2i: _Direction, own_map: dict[str, str]) -> Metrics:
    """Tugging (t2i): own-culture@1 per language against chance; excess; hits and misses."""
    lang = t2i.queries.language
    own = np.array([own_map.get(value, "") for value in lang.tolist()], dtype=np.str_)
    mask = own != ""
    if not mask.any():
        return {}
    lang, own = lang[mask], own[mask]
    top1 = t2i.gallery.culture[t2i.indices[mask, 0]]
    is_own = own_culture_at_1(top1, own)
    chance_q = own_culture_chance(
        t2i.queries.item[mask], own, t2i.gallery.item, t2i.gallery.culture
    )
    own_by_lang = group_mean(is_own, lang)
    chance_by_lang = group_mean(chance_q, lang)
    hits, misses = by_outcome(is_own, lang, t2i.relevance[mask, 0])
    out: Metrics = {
        "t2i/own_culture@1": float(is_own.mean()),
        "t2i/own_culture_chance": float(chance_q.mean()),
        "t2i/own_culture_excess@1": own_culture_excess(own_by_lang, chance_by_lang),
    }
    for language in own_by_lang:
        out[f"t2i/own_culture@1/lang={language}"] = own_by_lang[language]
        out[f"t2i/own_culture_chance/lang={language}"] = chance_by_lang[language]
        out[f"t2i/own_culture_excess@1/lang={language}"] = (
            own_by_lang[language] - chance_by_lang[language]
        )
        out[f"t2i/own_culture_hits@1/lang={language}"] = hits[language]
        out[f"t2i/own_culture_misses@1/lang={language}"] = misses[language]
    return out


def _mrv_t2i(t2i: _Direction) -> Metrics:
    """MRV over items: the spread across caption languages of the first relevant image's rank."""
    queries = t2i.queries
    if not rank_spread_per_group(t2i.ranks, queries.item, queries.language):
        return {}
    return {
        "t2i/mrv": mrv(t2i.ranks, queries.item, queries.language),
        "t2i/mrv_var": mrv_var(t2i.ranks, queries.item, queries.language),
    }


def _mrv_i2t(retriever: Retriever, i2t: _Direction) -> Metrics:
    """MRV over image queries: per language l, the rank of the right caption among the
    language-l captions only; spread across languages.

    Read off the i2t top-k where the right language-l caption is in it (exact: every
    language-l caption ahead of it is in the top k too); the other queries are ranked on the
    language-l captions alone."""
    gallery_language = i2t.gallery.language
    ranks, groups, languages = [], [], []
    for lang in i2t.gallery.languages():
        in_language = gallery_language == lang
        gallery = i2t.gallery[in_language]
        answerable = relevant_counts(i2t.queries.item, gallery.item) > 0
        if not answerable.any():
            continue
        known = subset_ranks_from_topk(
            i2t.relevance[answerable], in_language[i2t.indices[answerable]]
        )
        pending = known == 0
        if pending.any():
            rows = np.flatnonzero(answerable)[pending]
            known[pending] = first_relevant_ranks(retriever, i2t.queries[rows], gallery)
        ranks.append(known)
        groups.append(i2t.queries.id[answerable])
        languages.append(np.full(int(answerable.sum()), lang))
    if not ranks:
        return {}
    all_ranks, all_groups = np.concatenate(ranks), np.concatenate(groups)
    all_languages = np.concatenate(languages)
    if not rank_spread_per_group(all_ranks, all_groups, all_languages):
        return {}
    return {
        "i2t/mrv": mrv(all_ranks, all_groups, all_languages),
        "i2t/mrv_var": mrv_var(all_ranks, all_groups, all_languages),
    }


def _odmap(
    t2i: _Direction,
    i2t: _Direction,
    k: int,
    text_decorrelated: np.ndarray,
    image_decorrelated: np.ndarray,
) -> Metrics:
    """ODmAP-style@k per direction; ``odmap@k`` is the image→text one (the paper's setting)."""
    out: Metrics = {}
    for d, flags in ((t2i, text_decorrelated), (i2t, image_decorrelated)):
        mask = flags[d.kept]
        if mask.any():
            ap = average_precision_at_k(d.relevance, d.n_relevant, k)
            out[f"{d.name}/odmap@{k}"] = odmap_at_k(ap, mask)
    if f"i2t/odmap@{k}" in out:
        out[f"odmap@{k}"] = out[f"i2t/odmap@{k}"]
    return out
