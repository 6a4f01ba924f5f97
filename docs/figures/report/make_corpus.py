"""Synthetic corpus with built-in biases, for docs/report.md (writes corpus.npz and
corpus_centered.npz into the current folder).

Caption language pulls toward its culture (cultural tugging), English captions share a
direction with every image (language prevalence), and Swahili captions carry little content
(a poorly resolved language). ``corpus_centered.npz`` is a naive fix: each caption language is
moved onto the mean of all captions (Libovický et al. 2020, "language-agnostic" centering).
"""

from __future__ import annotations

import numpy as np

from xcm_debias import EmbeddingSet

rng = np.random.default_rng(0)
languages = ["de", "en", "ja", "sw"]
n_items, dim = 400, 64
content = rng.normal(size=(n_items, dim))
culture_dir = {c: rng.normal(size=dim) for c in languages}
language_dir = {lang: rng.normal(size=dim) for lang in languages}
english = rng.normal(size=dim)  # shared by all images and by English captions
culture = rng.choice(languages, size=n_items)  # the culture each image is drawn in
images = content + 0.6 * np.stack([culture_dir[c] for c in culture]) + 0.5 * english
texts, item, language = [], [], []
for lang, resolved in zip(languages, [1.0, 1.0, 1.0, 0.3], strict=True):  # sw: little content
    noise = rng.normal(size=(n_items, dim))
    english_part = 0.5 * english if lang == "en" else 0.0
    texts.append(
        resolved * content
        + 0.6 * culture_dir[lang]
        + 1.0 * language_dir[lang]
        + english_part
        + 1.2 * noise
    )
    item += [f"item{i}" for i in range(n_items)]
    language += [lang] * n_items
corpus = EmbeddingSet.concat(
    [
        EmbeddingSet(
            images, modality="image", item=[f"item{i}" for i in range(n_items)], culture=culture
        ),
        EmbeddingSet(np.concatenate(texts), modality="text", item=item, language=language),
    ]
)
corpus.save("corpus.npz")

text_rows = corpus.modality == "text"
x = corpus.embeddings.numpy().copy()
for lang in languages:
    rows = text_rows & (corpus.language == lang)
    x[rows] += x[text_rows].mean(0) - x[rows].mean(0)
corpus.with_embeddings(x).save("corpus_centered.npz")
