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

Culture-explicit queries. A text extra column ``named_culture`` (the culture a caption names
in words, ``""`` when it names none) splits the text→image queries in two: own-culture keys are
computed on the *implicit* queries only (the bias: a culture nobody asked for), and
``t2i/named_culture@1`` (overall and ``/lang=<l>``) is the share of *explicit* queries whose
top-1 image has the named culture (the content: a culture that was asked for), with
``t2i/named_culture_chance`` the share a culture-blind retriever that finds the content would
reach (1/8 on the world). Without the column every query is implicit.

Uncertainty. ``uncertainty[key]`` is the standard error of ``metrics[key]`` where one is
defined (:mod:`xcm_debias.metrics.uncertainty`): of a mean over queries for recall@k, MRR,
mAP@k (overall and per group), own-culture@1 and language share@1 (the binomial SE for a
share); of a mean over items or image queries for MRV; of a mean of per-language means for the
own-culture excess; a bootstrap over queries (200 resamples, seed 0) for language TV@1/@k and
hubness skew@k. Non-finite SEs are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.debiased import Debiased
from xcm_debias.language_codes import language_key
from xcm_debias.metrics import (
    antihub_share,
    average_precision_at_k,
    bootstrap_se,
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
    mean_se,
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
    stratified_mean_se,
    subset_ranks_from_topk,
    total_variation,
    unfaithful_top1_share,
)
from xcm_debias.metrics.ranks import check_ranking, check_retriever
from xcm_debias.pipeline_spec import pipeline_spec
from xcm_debias.report import label_free
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.registry import implements
from xcm_debias.report.render_json import jsonable
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


@implements("evaluate")
def evaluate_report(
    retriever: Retriever,
    corpus: EmbeddingSet,
    k: int = 10,
    culture_of_language: Mapping[str, str] | None = None,
    *,
    low_resource: Sequence[str] | None = None,
    cooccurring_objects: Sequence[tuple[str, str]] | None = None,
    infer_labels: bool = False,
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
        infer_labels: evaluate a label-free search: the retriever (a fitted pipeline with
            label models) gets every row without ``language`` and ``culture`` and infers them;
            the metrics are still scored with the corpus's labels, and, where the corpus has
            them, ``provenance["labels"]["gold"]`` holds each metric searched with the labels
            given and with them inferred (:mod:`xcm_debias.report.label_free`).

    Returns:
        A :class:`BiasReport` with flat ``metrics``, ``details`` (k-occurrence lists),
        ``config``, ``uncertainty`` (standard errors, see the module docstring) and
        ``provenance`` (``{"selection": retriever.selection_.to_dict()}`` when the retriever
        has a ``selection_``, e.g. the recall guard's candidates, as plain JSON data;
        ``"labels"`` when the retriever inferred group labels at search, see
        :mod:`xcm_debias.report.inferred_labels`).
    """
    check_retriever(retriever)
    if not isinstance(corpus, EmbeddingSet):
        raise TypeError(f"corpus: expected an EmbeddingSet, got {type(corpus).__name__}")
    if not isinstance(infer_labels, bool):
        raise TypeError(f"infer_labels: expected a bool, got {type(infer_labels).__name__}")
    if infer_labels:
        options = {
            "k": k,
            "culture_of_language": culture_of_language,
            "low_resource": low_resource,
            "cooccurring_objects": cooccurring_objects,
        }
        record = label_free.label_record(retriever, corpus, label_free=True)
        if record is None:
            raise ValueError(
                "infer_labels: expected a retriever with label models (a fitted Debiased whose "
                f"stages read language or culture), got {type(retriever).__name__} without any"
            )
        inferred = evaluate_report(label_free.LabelFreeRetriever(retriever), corpus, **options)
        gold = evaluate_report(retriever, corpus, **options)
        return label_free.with_gold(inferred, gold, record)
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
    _named_cultures(texts, cultures)  # validated before any retrieval runs

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
    uncertainty = _hubness_se(t2i, i2t, k)
    for direction, group_label, group_name in (
        (t2i, "language", "lang"),
        (i2t, "culture", "culture"),
    ):
        uncertainty.update(
            _query_means_se(direction, k, direction.queries.label(group_label), group_name)
        )
    if languages:
        for name, rows in (
            ("t2i", (t2i.ranks, t2i.queries.item, t2i.queries.language)),
            ("i2t", _i2t_language_ranks(retriever, i2t)),
        ):
            mrv_metrics, mrv_se = _mrv(name, rows)
            metrics.update(mrv_metrics)
            uncertainty.update(mrv_se)
        metrics.update(_language_share(i2t, k, low))
        uncertainty.update(_language_tv_se(i2t, k))
        if cultures:
            metrics.update(_culture_share(t2i))
    named = _named_cultures(t2i.queries, cultures)
    if own_map:
        own_rows = _own_culture_rows(t2i, own_map, named)
        metrics.update(_own_culture(t2i, own_rows))
        uncertainty.update(_own_culture_se(own_rows))
    if named is not None and (named != "").any():
        named_metrics, named_se = _named_culture(t2i, named)
        metrics.update(named_metrics)
        uncertainty.update(named_se)
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
        "pipeline": pipeline_spec(retriever) if isinstance(retriever, Debiased) else None,
        "n_images": len(images),
        "n_texts": len(texts),
        "n_t2i_queries": len(t2i.queries),
        "n_culture_explicit_queries": 0 if named is None else int((named != "").sum()),
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
    selection = getattr(retriever, "selection_", None)
    provenance = {} if selection is None else {"selection": _plain(selection, "selection_")}
    labels = label_free.label_record(retriever, corpus, label_free=False)
    if labels is not None:
        provenance["labels"] = labels
    return BiasReport(
        metrics=metrics,
        details=details,
        config=config,
        uncertainty={key: se for key, se in uncertainty.items() if np.isfinite(se)},
        provenance=provenance,
    )


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
        lang = language_key(lang)  # matched as the texts' language labels are ("EN" is "en")
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
    keys = {language_key(lang) if isinstance(lang, str) else lang for lang in low_resource}
    unknown = sorted(keys - set(languages), key=str)
    if not low_resource or unknown:
        raise ValueError(
            f"low_resource: expected languages of the corpus's texts {languages}, got "
            f"{list(low_resource)} ({'empty' if not low_resource else f'unknown: {unknown}'})"
        )
    return sorted(keys)


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


def _named_cultures(texts: EmbeddingSet, cultures: list[str]) -> np.ndarray | None:
    """Per text row, the culture its caption names (``""``: none), or ``None`` without the
    ``named_culture`` extra column."""
    column = texts.extra.get("named_culture")
    if column is None:
        return None
    if column.dtype.kind != "U":
        raise TypeError(
            f"corpus.extra['named_culture']: expected strings (a culture or ''), got dtype "
            f"{column.dtype}"
        )
    unknown = sorted(set(column.tolist()) - set(cultures) - {""})
    if unknown:
        raise ValueError(
            f"corpus.extra['named_culture']: expected '' or a culture of the images "
            f"{cultures}, got {unknown[:5]}"
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


@dataclass(frozen=True)
class _OwnCultureRows:
    """The t2i queries whose language has an own culture: language, own-culture top-1, chance."""

    language: np.ndarray
    is_own: np.ndarray
    chance: np.ndarray
    hit: np.ndarray  # the top-1 image is relevant


def _own_culture_rows(
    t2i: _Direction, own_map: dict[str, str], named: np.ndarray | None = None
) -> _OwnCultureRows | None:
    """The implicit queries (``named`` empty) whose language has an own culture."""
    lang = t2i.queries.language
    own = np.array([own_map.get(value, "") for value in lang.tolist()], dtype=np.str_)
    mask = own != ""
    if named is not None:
        mask &= named == ""
    if not mask.any():
        return None
    own = own[mask]
    top1 = t2i.gallery.culture[t2i.indices[mask, 0]]
    chance_q = own_culture_chance(
        t2i.queries.item[mask], own, t2i.gallery.item, t2i.gallery.culture
    )
    return _OwnCultureRows(
        lang[mask], own_culture_at_1(top1, own), chance_q, t2i.relevance[mask, 0]
    )


def _own_culture(t2i: _Direction, rows: _OwnCultureRows | None) -> Metrics:
    """Tugging (t2i): own-culture@1 per language against chance; excess; hits and misses."""
    if rows is None:
        return {}
    lang, is_own, chance_q = rows.language, rows.is_own, rows.chance
    own_by_lang = group_mean(is_own, lang)
    chance_by_lang = group_mean(chance_q, lang)
    hits, misses = by_outcome(is_own, lang, rows.hit)
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


def _named_culture(t2i: _Direction, named: np.ndarray) -> tuple[Metrics, Metrics]:
    """Content (t2i): the share of culture-explicit queries whose top-1 image has the culture
    they name, overall and per query language; its chance level; their SEs."""
    mask = named != ""
    wanted = named[mask]
    top1 = t2i.gallery.culture[t2i.indices[mask, 0]]
    hit = own_culture_at_1(top1, wanted)  # 1[top-1 culture = the given culture]
    chance = own_culture_chance(
        t2i.queries.item[mask], wanted, t2i.gallery.item, t2i.gallery.culture
    )
    metrics: Metrics = {
        "t2i/named_culture@1": float(hit.mean()),
        "t2i/named_culture_chance": float(chance.mean()),
    }
    se: Metrics = {"t2i/named_culture@1": mean_se(hit)}
    lang = t2i.queries.language[mask]
    if (lang != "").any():
        for language, value in group_mean(hit, lang).items():
            metrics[f"t2i/named_culture@1/lang={language}"] = value
        for language, value in group_mean(chance, lang).items():
            metrics[f"t2i/named_culture_chance/lang={language}"] = value
        se.update(_group_se(hit, lang, "t2i/named_culture@1", "lang"))
    return metrics, se


def _mrv(
    name: str, rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None
) -> tuple[Metrics, Metrics]:
    """MRV from (rank, group, language) rows, and the SE of ``mrv`` (a mean over groups).

    t2i: the groups are items and the rank is the first relevant image's, for each caption
    language. i2t: the groups are the image queries and the rank is that of the right caption
    among the captions of one language (:func:`_i2t_language_ranks`)."""
    if rows is None:
        return {}, {}
    ranks, groups, languages = rows
    spreads = rank_spread_per_group(ranks, groups, languages)
    if not spreads:
        return {}, {}
    metrics = {
        f"{name}/mrv": mrv(ranks, groups, languages),
        f"{name}/mrv_var": mrv_var(ranks, groups, languages),
    }
    return metrics, {f"{name}/mrv": mean_se(list(spreads.values()))}


def _i2t_language_ranks(
    retriever: Retriever, i2t: _Direction
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per image query and language l: the rank of the right caption among the language-l
    captions only.

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
        return None
    return np.concatenate(ranks), np.concatenate(groups), np.concatenate(languages)


# ---------------------------------------------------------------- uncertainty
def _query_means_se(d: _Direction, k: int, groups: np.ndarray, group_name: str) -> Metrics:
    """SE of recall@{1,5,k}, MRR and mAP@k, each a mean over the direction's queries, overall
    and per group (query language for t2i, query-image culture for i2t)."""
    per_query = {f"recall@{c}": recall_at_k(d.ranks, c) for c in sorted({1, 5, k})}
    per_query["mrr"] = reciprocal_rank(d.ranks)
    per_query[f"map@{k}"] = average_precision_at_k(d.relevance, d.n_relevant, k)
    out = {}
    for key, values in per_query.items():
        out[f"{d.name}/{key}"] = mean_se(values)
        out.update(_group_se(values, groups, f"{d.name}/{key}", group_name))
    return out


def _group_se(values: np.ndarray, groups: np.ndarray, base: str, group_name: str) -> Metrics:
    """SE of the mean of ``values`` within each non-empty group: ``<base>/<group_name>=<g>``."""
    return {
        f"{base}/{group_name}={group}": mean_se(values[groups == group])
        for group in np.unique(groups).tolist()
        if group != ""
    }


def _hubness_se(t2i: _Direction, i2t: _Direction, k: int) -> Metrics:
    """Bootstrap SE of the skewness of N_k over the queries (their top-k lists resampled)."""
    out = {}
    for d in (t2i, i2t):
        n_gallery = len(d.gallery)
        out[f"{d.name}/hubness_skew@{k}"] = bootstrap_se(
            lambda rows, d=d, n=n_gallery: skewness(k_occurrence(d.indices[rows], n)),
            len(d.queries),
        )
    return out


def _language_tv_se(i2t: _Direction, k: int) -> Metrics:
    """Bootstrap SE of language TV@{1,k} over the image queries (the gallery share is fixed)."""
    retrieved = i2t.gallery.language[i2t.indices]
    gallery = gallery_language_share(i2t.gallery.language)

    def tv(rows: np.ndarray, cut: int) -> float:
        return total_variation(language_share_at_k(retrieved[rows], cut), gallery)

    out = {
        f"i2t/language_tv@{cut}": bootstrap_se(lambda rows, c=cut: tv(rows, c), len(i2t.queries))
        for cut in sorted({1, k})
    }
    for lang in gallery:  # the share of top-1 captions in a language: a binomial share
        out[f"i2t/language_share@1/lang={lang}"] = mean_se(retrieved[:, 0] == lang)
    return out


def _own_culture_se(rows: _OwnCultureRows | None) -> Metrics:
    """SE of own-culture@1 (a share of queries) and of its excess over chance (a mean over
    languages of per-language means, queries resampled within their language)."""
    if rows is None:
        return {}
    excess = rows.is_own - rows.chance
    return {
        "t2i/own_culture@1": mean_se(rows.is_own),
        "t2i/own_culture_excess@1": stratified_mean_se(excess, rows.language),
        **_group_se(rows.is_own.astype(np.float64), rows.language, "t2i/own_culture@1", "lang"),
        **_group_se(excess, rows.language, "t2i/own_culture_excess@1", "lang"),
    }


def _plain(value: object, name: str) -> dict[str, object]:
    """``value.to_dict()`` (or a mapping itself) as plain JSON data: lists, numbers, strings,
    ``None`` for NaN."""
    to_dict = getattr(value, "to_dict", None)
    data = to_dict() if callable(to_dict) else value
    if not isinstance(data, Mapping):
        raise TypeError(
            f"retriever.{name}: expected an object whose to_dict() returns a mapping, got "
            f"{type(data).__name__}"
        )
    return {str(key): jsonable(item) for key, item in data.items()}


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
