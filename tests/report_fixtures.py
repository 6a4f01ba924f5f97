"""Hand-made BiasReports for the report tests: three query languages (de, en, sw), four image
cultures (de, en, ja, sw), one chance level of 0.25. ``before`` is tugged and English-prevalent;
``after`` is close to chance."""

from __future__ import annotations

from xcm_debias.report import BiasReport

LANGUAGES = ["de", "en", "sw"]
CULTURES = ["de", "en", "ja", "sw"]

BEFORE_SHARES = {  # query language -> culture of the top-1 image (rows sum to 1)
    "de": {"de": 1.0, "en": 0.0, "ja": 0.0, "sw": 0.0},
    "en": {"de": 0.125, "en": 0.75, "ja": 0.125, "sw": 0.0},
    "sw": {"de": 0.0, "en": 0.0, "ja": 0.0, "sw": 1.0},
}
AFTER_SHARES = {
    "de": {"de": 0.25, "en": 0.25, "ja": 0.25, "sw": 0.25},
    "en": {"de": 0.25, "en": 0.375, "ja": 0.125, "sw": 0.25},
    "sw": {"de": 0.25, "en": 0.25, "ja": 0.25, "sw": 0.25},
}


def _metrics(
    recall_by_lang: dict[str, float],
    shares: dict[str, dict[str, float]],
    language_share: dict[str, float],
    scalars: dict[str, float],
) -> dict[str, float]:
    metrics = dict(scalars)
    for lang, value in recall_by_lang.items():
        metrics[f"t2i/recall@1/lang={lang}"] = value
    excess = []
    for lang, row in shares.items():
        metrics[f"t2i/own_culture@1/lang={lang}"] = row[lang]
        metrics[f"t2i/own_culture_chance/lang={lang}"] = 0.25
        excess.append(row[lang] - 0.25)
        for culture, value in row.items():
            metrics[f"t2i/culture_share@1/lang={lang}/culture={culture}"] = value
    metrics["t2i/own_culture_excess@1"] = sum(excess) / len(excess)
    tv = 0.0
    for lang, value in language_share.items():
        metrics[f"i2t/language_share@1/lang={lang}"] = value
        metrics[f"i2t/gallery_language_share/lang={lang}"] = 1 / 3
        tv += abs(value - 1 / 3) / 2
    metrics["i2t/language_tv@1"] = tv
    return metrics


def before_report() -> BiasReport:
    metrics = _metrics(
        {"de": 1.0, "en": 0.875, "sw": 0.25},
        BEFORE_SHARES,
        {"de": 0.25, "en": 0.75, "sw": 0.0},
        {
            "t2i/recall@1": 0.75,
            "t2i/recall@5": 0.875,
            "t2i/recall@10": 0.9375,
            "i2t/recall@1": 0.8125,
            "i2t/recall@10": 1.0,
            "i2t/recall@1/culture=de": 0.75,
            "i2t/recall@1/culture=sw": 0.875,
            "t2i/mrv": 2.5,
            "i2t/mrv": 1.25,
            "t2i/hubness_skew@10": 2.0,
            "t2i/hubness_skew_null@10": 0.5,
            "t2i/hubness_antihub@10": 0.375,
            "i2t/hubness_skew@10": 1.5,
            "modality_gap": 0.8125,
            "i2t/lbkl@1": 9.67,
        },
    )
    details = {
        "t2i/k_occurrence@10": [0, 0, 0, 1, 2, 2, 3, 5, 9, 18],
        "i2t/k_occurrence@10": [1, 1, 2, 2, 2, 3, 3, 4, 6, 16],
    }
    config = {
        "k": 10,
        "retriever": "ExactRetriever(block_size=4096, normalize=True)",
        "languages": LANGUAGES,
        "cultures": CULTURES,
    }
    return BiasReport(metrics=metrics, details=details, config=config)


def after_report() -> BiasReport:
    metrics = _metrics(
        {"de": 1.0, "en": 0.75, "sw": 0.5},
        AFTER_SHARES,
        {"de": 0.375, "en": 0.25, "sw": 0.375},
        {
            "t2i/recall@1": 0.75,
            "t2i/recall@5": 0.9375,
            "t2i/recall@10": 1.0,
            "i2t/recall@1": 0.75,
            "i2t/recall@10": 1.0,
            "i2t/recall@1/culture=de": 0.75,
            "i2t/recall@1/culture=sw": 0.75,
            "t2i/mrv": 1.0,
            "i2t/mrv": 1.5,
            "t2i/hubness_skew@10": 0.5,
            "t2i/hubness_skew_null@10": 0.5,
            "t2i/hubness_antihub@10": 0.125,
            "i2t/hubness_skew@10": 0.25,
            "modality_gap": 0.5,
            "t2i/mrr": 0.8,
        },
    )
    details = {
        "t2i/k_occurrence@10": [1, 2, 2, 2, 3, 3, 3, 4, 5, 5],
        "i2t/k_occurrence@10": [2, 2, 3, 3, 3, 3, 3, 4, 4, 3],
    }
    config = {
        "k": 10,
        "retriever": "Debiased(ExactRetriever(), LanguageProjection())",
        "languages": LANGUAGES,
        "cultures": CULTURES,
    }
    return BiasReport(metrics=metrics, details=details, config=config)
