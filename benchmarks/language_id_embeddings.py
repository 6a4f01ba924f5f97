"""Caption language from the embedding alone: classifier families on the embedded world.

Usage::

    python benchmarks/language_id_embeddings.py            # seeds 0 1 2, writes the JSON
    python benchmarks/language_id_embeddings.py --seeds 0 --no-write

For each world seed, each family is fitted on the calibration split's captions (540: 60 items ×
9 languages) and scored on the test split's (2160), on the label models' input
``z = √d (x/‖x‖ − μ)``. Recorded per family: the cross-fitted accuracy and negative
log-likelihood on calibration (5 folds by item, the folds of the label models; logits
temperature-scaled on the out-of-fold logits, as the label models do) — the criterion a
selection among families would use — and the number of test captions misidentified. The
question it answers: would another family (chosen by its cross-fitted log-loss) identify the
world's caption languages from the embeddings well enough for label-free search to match
labelled search? The shipped classifier is the first row. Two more rows change the input
rather than the family: LDA on the component of the embedding orthogonal to the calibration
images' culture means (culture words should not move the language decision), and LDA refitted
by EM with the test captions as unlabelled rows (semi-supervised; test errors only). Also the
string identifier (``xcm_debias.langid``, restricted to the calibration languages) on the test
captions' text.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _harness import ROOT, write_json
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from xcm_debias.calibration.folds import item_folds
from xcm_debias.calibration.labels import fit_lda, fit_temperature
from xcm_debias.langid import identify_languages
from xcm_debias.processors._stats import ledoit_wolf_shrinkage
from xcm_debias.worlds import world_calibration_test

Logits = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


def lda(shrinkage: str | float) -> Logits:
    def logits(z: np.ndarray, y: np.ndarray, new: np.ndarray, k: int) -> np.ndarray:
        weight, bias = fit_lda(torch.from_numpy(z), y, k, shrinkage)
        return (torch.from_numpy(new) @ weight + bias).numpy()

    return logits


def sklearn_scores(make: Callable[[], Any], method: str) -> Logits:
    """Logits of a scikit-learn classifier: its decision function, or log predict_proba."""

    def logits(z: np.ndarray, y: np.ndarray, new: np.ndarray, k: int) -> np.ndarray:
        model = make().fit(z, y)
        if method == "proba":
            return np.log(np.clip(model.predict_proba(new), 1e-9, 1.0))
        return model.decision_function(new)

    return logits


def centroid(z: np.ndarray, y: np.ndarray, new: np.ndarray, k: int) -> np.ndarray:
    """Cosine to each class mean (nearest-centroid rule)."""
    means = np.stack([z[y == c].mean(axis=0) for c in range(k)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return new / np.linalg.norm(new, axis=1, keepdims=True) @ means.T


SHIPPED = "LDA, Ledoit–Wolf shrinkage (shipped)"
ORTHOGONAL = "LDA on the component orthogonal to the image culture means"
SEMI_SUPERVISED = "LDA refitted by EM on the unlabelled test captions (semi-supervised)"
FAMILIES: dict[str, Logits] = {
    SHIPPED: lda("ledoit-wolf"),
    "LDA, shrinkage 0.5": lda(0.5),
    "multinomial logistic, C = 0.1": sklearn_scores(
        lambda: LogisticRegression(C=0.1, max_iter=3000), "decision"
    ),
    "multinomial logistic, C = 1": sklearn_scores(
        lambda: LogisticRegression(C=1.0, max_iter=3000), "decision"
    ),
    "multinomial logistic, C = 10": sklearn_scores(
        lambda: LogisticRegression(C=10.0, max_iter=3000), "decision"
    ),
    "linear SVM, C = 1": sklearn_scores(lambda: SVC(C=1.0, kernel="linear"), "decision"),
    "RBF SVM, C = 10": sklearn_scores(lambda: SVC(C=10.0), "decision"),
    "MLP (256 hidden, α = 0.01)": sklearn_scores(
        lambda: MLPClassifier((256,), alpha=1e-2, max_iter=2000, random_state=0), "proba"
    ),
    "kNN (k = 10, cosine)": sklearn_scores(
        lambda: KNeighborsClassifier(10, metric="cosine"), "proba"
    ),
    "nearest centroid (cosine)": centroid,
}


def prepared(x: torch.Tensor, mean: torch.Tensor | None = None) -> tuple[np.ndarray, Any]:
    x = torch.nn.functional.normalize(x.double(), dim=1)
    mean = x.mean(dim=0) if mean is None else mean
    return ((x - mean) * math.sqrt(x.shape[1])).numpy(), mean


def scored(
    logits: Logits, z: np.ndarray, y: np.ndarray, new: np.ndarray, truth: np.ndarray, folds: Any
) -> dict[str, Any]:
    """Cross-fitted accuracy and NLL (temperature-scaled) on calibration; test errors."""
    k = int(y.max()) + 1
    held = np.zeros((len(z), k))
    for fold in range(int(folds.max()) + 1):
        rows = folds == fold
        held[rows] = logits(z[~rows], y[~rows], z[rows], k)
    target = torch.from_numpy(y)
    temperature = fit_temperature(torch.from_numpy(held), target)
    nll = float(torch.nn.functional.cross_entropy(torch.from_numpy(held) / temperature, target))
    wrong = logits(z, y, new, k).argmax(axis=1) != truth
    return {
        "cross_fitted_accuracy": float((held.argmax(axis=1) == y).mean()),
        "cross_fitted_nll": nll,
        "temperature": temperature,
        "test_wrong": int(wrong.sum()),
        "test_rows": int(len(wrong)),
    }


def without_cultures(images: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Projection onto the complement of the span of the calibration images' culture means
    (unit-normalised, centred): the directions a culture word could pull a caption along."""
    x = torch.nn.functional.normalize(images.embeddings.double(), dim=1)
    cultures = np.unique(images.culture)
    means = torch.stack([x[torch.from_numpy(images.culture == c)].mean(dim=0) for c in cultures])
    basis, values, _ = torch.linalg.svd((means - means.mean(dim=0)).T, full_matrices=False)
    basis = basis[:, values > 1e-8 * values.max()]
    return lambda rows: rows.double() - (rows.double() @ basis) @ basis.T


def semi_supervised_lda(
    z: np.ndarray, y: np.ndarray, new: np.ndarray, temperature: float, rounds: int = 10
) -> np.ndarray:
    """Predicted classes of ``new`` by LDA refitted by EM over the labelled rows and ``new``
    (McLachlan, "Iterative reclassification procedure for constructing an asymptotically optimal
    rule of allocation in discriminant analysis", JASA 1975): each round, ``new``'s tempered
    posteriors weight its rows in the class means, shares and pooled covariance (shrinkage δ of
    the labelled fit's Ledoit–Wolf estimate)."""
    k, d = int(y.max()) + 1, z.shape[1]
    labelled_means = np.stack([z[y == c].mean(axis=0) for c in range(k)])
    delta = ledoit_wolf_shrinkage(torch.from_numpy(z - labelled_means[y]))
    weight, bias = (t.numpy() for t in fit_lda(torch.from_numpy(z), y, k, "ledoit-wolf"))
    rows, known = np.concatenate([z, new]), np.eye(k)[y]
    for _ in range(rounds):
        logits = (new @ weight + bias) / temperature
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        r = np.concatenate([known, p / p.sum(axis=1, keepdims=True)])
        shares = r.sum(axis=0)
        means = r.T @ rows / shares[:, None]
        scatter = sum(((rows - means[c]) * r[:, c : c + 1]).T @ (rows - means[c]) for c in range(k))
        scatter /= r.sum()
        cov = (1 - delta) * scatter + delta * np.trace(scatter) / d * np.eye(d)
        weight = np.linalg.solve(cov, means.T)
        bias = -0.5 * (means.T * weight).sum(axis=0) + np.log(shares / shares.sum())
    return (new @ weight + bias).argmax(axis=1)


def run_seed(seed: int) -> dict[str, Any]:
    calib, test = world_calibration_test(seed=seed)
    texts, queries = calib.texts, test.texts
    classes, y = np.unique(texts.language, return_inverse=True)
    truth = np.searchsorted(classes, queries.language)
    z, mean = prepared(texts.embeddings)
    new, _ = prepared(queries.embeddings, mean)
    folds = item_folds(texts, 5, 0, "benchmark")
    out: dict[str, Any] = {"seed": seed, "families": {}}
    for name, logits in FAMILIES.items():
        out["families"][name] = scored(logits, z, y, new, truth, folds)
        print(f"seed {seed}  {name:40s} {out['families'][name]}", flush=True)
    project = without_cultures(calib.images)
    z_perp, mean_perp = prepared(project(texts.embeddings))
    new_perp, _ = prepared(project(queries.embeddings), mean_perp)
    out["families"][ORTHOGONAL] = scored(lda("ledoit-wolf"), z_perp, y, new_perp, truth, folds)
    temperature = out["families"][SHIPPED]["temperature"]
    predicted = semi_supervised_lda(z, y, new, temperature)
    out["families"][SEMI_SUPERVISED] = {"test_wrong": int((predicted != truth).sum())}
    found = identify_languages(list(queries.extra["caption"]), list(classes))
    out["string_identifier_test_wrong"] = int((np.asarray(found) != queries.language).sum())
    return out


def table(results: list[dict[str, Any]]) -> list[str]:
    seeds = [r["seed"] for r in results]
    head = "| family | " + " | ".join(
        f"seed {s}: cross-fitted NLL | seed {s}: test captions wrong" for s in seeds
    )
    lines = [head + " |", "|---" * (2 * len(seeds) + 1) + "|"]
    for name in [*FAMILIES, ORTHOGONAL, SEMI_SUPERVISED]:
        cells = []
        for r in results:
            f = r["families"][name]
            nll = f"{f['cross_fitted_nll']:.4f}" if "cross_fitted_nll" in f else "—"
            cells += [nll, str(f["test_wrong"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    strings = " | ".join(f"— | {r['string_identifier_test_wrong']}" for r in results)
    lines.append(f"| strings (py3langid, restricted) | {strings} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = [run_seed(seed) for seed in args.seeds]
    print("\n".join(table(results)))
    if not args.no_write:
        path = write_json("language_id_embeddings", {"seeds": results})
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
