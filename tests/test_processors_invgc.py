"""InvGC: parity with a direct dense implementation of the paper's formula, blockwise, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from synthetic_processors import make_world

from xcm_debias import EmbeddingSet
from xcm_debias.processors import InvGC, PostProcessor


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True)


def _dense_message(
    g: torch.Tensor,
    bank: torch.Tensor,
    rate: float,
    local: bool,
    pool_rate: float,
    mean_sim: float | None,
) -> torch.Tensor:
    """The paper's convolution with the full N × |B| similarity matrix."""
    sims = g @ bank.T
    if local:
        p = max(1, int(pool_rate * len(bank)))  # the reference's int(), never 0
        top = sims.topk(p, dim=1).indices
        kept = torch.zeros_like(sims).scatter(1, top, sims.gather(1, top))
        return _unit(g - rate * kept @ bank / p)
    centre = sims.mean() if mean_sim is None else mean_sim  # reference: mean over this matrix
    return _unit(g - rate * (sims - centre) @ bank / len(bank))


def _dense_invgc(g, bank_g, bank_q, r_g, r_q, local, pool_rate, mean_sims=(None, None)):  # noqa: ANN001, ANN202
    m_g = _dense_message(g, bank_g, r_g, local, pool_rate, mean_sims[0])
    m_q = _dense_message(g, bank_q, r_q, local, pool_rate, mean_sims[1])
    return _unit(0.5 * m_g + 0.5 * m_q)


def _banks(seed: int = 0, n_img: int = 120, n_txt: int = 90, dim: int = 12) -> EmbeddingSet:
    g = torch.Generator().manual_seed(seed)
    img = _unit(torch.randn(n_img, dim, generator=g) + 1.0)
    txt = _unit(torch.randn(n_txt, dim, generator=g) + 0.5)
    return EmbeddingSet.concat(
        [EmbeddingSet(img, modality="image"), EmbeddingSet(txt, modality="text")]
    )


@pytest.mark.parametrize("pool_rate", [0.01, 0.05, 0.3])
def test_local_adj_equals_the_dense_formula(pool_rate: float) -> None:
    calib, test = _banks(0), _banks(1, n_img=50)
    proc = InvGC(r_g=0.4, r_q=0.7, pool_rate=pool_rate, block_size=16).fit(calib)
    out = proc.transform(test).embeddings
    images = torch.from_numpy(test.modality == "image")
    expected = _dense_invgc(
        test.embeddings[images],
        calib.images.embeddings,
        calib.texts.embeddings,
        0.4,
        0.7,
        True,
        pool_rate,
    )
    torch.testing.assert_close(out[images], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[~images], test.embeddings[~images])  # queries untouched


def test_full_adjacency_equals_the_reference_on_the_calibration_gallery() -> None:
    calib = _banks(2)
    proc = InvGC(r_g=0.5, r_q=0.3, local_adj=False).fit(calib)
    images = calib.images.embeddings
    # transforming the calibration gallery itself, s̄ over this matrix = our fitted s̄
    expected = _dense_invgc(images, images, calib.texts.embeddings, 0.5, 0.3, False, 0.01)
    torch.testing.assert_close(proc.transform(calib.images).embeddings, expected, atol=1e-5, rtol=0)


def test_full_adjacency_uses_the_fitted_mean_similarity_on_new_rows() -> None:
    calib, test = _banks(3), _banks(4, n_img=7)
    proc = InvGC(r_g=0.5, r_q=0.3, local_adj=False, apply_to=("image", "text")).fit(calib)
    bi, bt = calib.images.embeddings, calib.texts.embeddings
    out = proc.transform(test)
    for gallery, bank_g, bank_q in (("image", bi, bt), ("text", bt, bi)):
        rows = test.where(modality=gallery).embeddings
        s_bar = (float(bank_g.mean(0) @ bank_g.mean(0)), float(bank_g.mean(0) @ bank_q.mean(0)))
        expected = _dense_invgc(rows, bank_g, bank_q, 0.5, 0.3, False, 0.01, s_bar)
        torch.testing.assert_close(
            out.where(modality=gallery).embeddings, expected, atol=1e-5, rtol=0
        )
    # a row's output does not depend on the other rows of its batch
    single = proc.transform(test[[0]]).embeddings
    torch.testing.assert_close(single[0], out.embeddings[0], atol=1e-6, rtol=0)


def test_zero_rates_only_normalise() -> None:
    calib = _banks(5)
    out = InvGC(r_g=0.0, r_q=0.0).fit(calib).transform(calib)
    torch.testing.assert_close(out.embeddings, calib.embeddings, atol=1e-6, rtol=0)


def test_invgc_reduces_mean_similarity_to_bank_neighbours() -> None:
    # the paper's motivation: gallery items crowd in a cone; InvGC spreads them
    world = make_world(n_items=60, dim=16)
    calib, test = world.split_items(0.5, seed=0)
    before = test.images.embeddings
    after = InvGC(r_g=0.5, r_q=0.5, pool_rate=0.1).fit(calib).transform(test).images.embeddings
    off = ~torch.eye(len(before), dtype=torch.bool)
    assert (after @ after.T)[off].mean() < (before @ before.T)[off].mean() - 0.01


def test_errors_are_explicit() -> None:
    only_images = _banks(6).images
    with pytest.raises(ValueError, match="got no text rows"):
        InvGC().fit(only_images)
    with pytest.raises(ValueError, match="pool_rate"):
        InvGC(pool_rate=0.0).fit(_banks(6))
    with pytest.raises(ValueError, match="r_g"):
        InvGC(r_g=float("nan")).fit(_banks(6))


@pytest.mark.parametrize("local_adj", [True, False])
def test_save_load_gives_identical_outputs(local_adj: bool, tmp_path: object) -> None:
    calib, test = _banks(7), _banks(8)
    proc = InvGC(local_adj=local_adj, pool_rate=0.1).fit(calib)
    loaded = PostProcessor.load(proc.save(tmp_path / "g.safetensors"))  # type: ignore[operator]
    assert torch.equal(loaded.transform(test).embeddings, proc.transform(test).embeddings)


def test_local_adj_never_builds_the_dense_gallery_by_bank_matrix():
    """100,000 gallery rows against two 5,000-row banks: each dense N × |B| float32 matrix is
    2 GB (the reference code builds two per bank). The transform runs in a subprocess whose
    peak resident memory must stay under 1.5 GB, and its output must match a direct LocalAdj
    computation on a sample of rows."""
    script = textwrap.dedent(
        """
        import resource, torch
        torch.set_num_threads(2)
        from xcm_debias import EmbeddingSet
        from xcm_debias.processors import InvGC
        gen = torch.Generator().manual_seed(0)
        unit = lambda x: torch.nn.functional.normalize(x, dim=1)
        bank_i, bank_t = unit(torch.randn(5_000, 8, generator=gen)), unit(torch.randn(5_000, 8, generator=gen))
        calib = EmbeddingSet(torch.cat([bank_i, bank_t]), modality=["image"] * 5_000 + ["text"] * 5_000)
        gallery = unit(torch.randn(100_000, 8, generator=gen))
        inv = InvGC(r_g=0.3, r_q=0.2, pool_rate=0.002).fit(calib)
        out = inv.transform(EmbeddingSet(gallery, modality="image")).embeddings
        def message(g, bank, rate):
            vals, idx = torch.topk(g @ bank.T, 10, dim=1)
            return unit(g - rate * (vals[:, :, None] * bank[idx]).sum(dim=1) / 10)
        rows = gallery[::997]
        direct = unit(message(rows, bank_i, 0.3) + message(rows, bank_t, 0.2))
        assert torch.allclose(out[::997], direct, atol=1e-5), (out[::997] - direct).abs().max()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    peak_mb = int(out.stdout.strip().splitlines()[-1])
    assert peak_mb < 1536, f"peak RSS {peak_mb} MB"
