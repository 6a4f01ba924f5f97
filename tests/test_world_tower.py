from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from xcm_debias.worlds import TrainConfig, load_tower, tower_config, train_tower
from xcm_debias.worlds.captions import CULTURE_OF_LANGUAGE, HIGH_RESOURCE
from xcm_debias.worlds.culture_words import FORMS, culture_caption
from xcm_debias.worlds.load import WEIGHTS_DIR
from xcm_debias.worlds.reference import read_reference, write_reference
from xcm_debias.worlds.tower import ImageTower, to_pixels
from xcm_debias.worlds.train import caption_language, clip_loss, make_training_set, save_tower


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XCM_DEBIAS_CACHE", str(tmp_path / "cache"))


def test_shipped_weights_reproduce_the_reference_embeddings():
    tower = load_tower()
    images, expected = read_reference(WEIGHTS_DIR)
    got = tower.embed(images)
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=0)
    # and the reference is not degenerate: four scenes, four distinct directions
    gram = expected @ expected.T
    assert float(gram.fill_diagonal_(0).max()) < 0.99


def test_shipped_weights_are_small_and_documented():
    size = (WEIGHTS_DIR / "tower.safetensors").stat().st_size
    assert size < 6_000_000
    meta = tower_config()
    config = TrainConfig.from_dict(meta["config"])
    assert config.image_size == 32 and 0 < config.native_rate < 1
    assert meta["training"]["seconds"]["total"] > 0


def test_tower_outputs_unit_vectors_deterministically_in_eval_mode():
    torch.manual_seed(0)
    tower = ImageTower(width=4).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    a, b = tower.embed(images, batch_size=2), tower.embed(images)
    assert a.shape == (5, 512)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_to_pixels_normalises_without_touching_the_input():
    images = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
    pixels = to_pixels(images)
    assert pixels.shape == (1, 3, 8, 8)
    torch.testing.assert_close(pixels, torch.full((1, 3, 8, 8), 2.0))  # (1 − 0.5) / 0.25
    assert images.max() == 255
    with pytest.raises(TypeError, match="images"):
        to_pixels(images.astype(np.float32))
    with pytest.raises(ValueError, match="pixels"):
        ImageTower(width=4)(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="image_size"):
        ImageTower(image_size=30)


def test_clip_loss_equals_the_hand_computed_value():
    # two orthogonal unit pairs, scale s: each row's softmax is [e^s, 1] / (e^s + 1)
    x = torch.eye(2)
    s = 3.0
    expected = math.log(1 + math.exp(-s))
    got = clip_loss(x, x, torch.tensor(math.log(s)))
    assert abs(float(got) - expected) < 1e-6


def test_caption_languages_follow_the_web_like_mix():
    config = TrainConfig(native_rate=0.5, low_resource_native_rate=0.1, english_rate=0.8)
    rng = np.random.default_rng(0)
    n = 20000
    de = [caption_language("de", config, rng) for _ in range(n)]
    sw = [caption_language("sw", config, rng) for _ in range(n)]
    # binomial SE at n = 20000 is ≤ 0.0036: 0.015 is over 4 SE
    assert abs(de.count("de") / n - 0.5) < 0.015
    assert abs(de.count("en") / n - 0.5 * 0.8) < 0.015
    assert set(de) <= set(HIGH_RESOURCE)
    assert abs(sw.count("sw") / n - 0.1) < 0.015
    assert abs(sw.count("en") / n - 0.9 * 0.8) < 0.015
    assert "vi" not in sw


def test_training_set_is_seeded_and_respects_the_held_back_pairs():
    config = TrainConfig(n_images=40)
    a, b = make_training_set(config), make_training_set(config)
    assert a.captions == b.captions and np.array_equal(a.images, b.images)
    c = make_training_set(TrainConfig(n_images=40, seed=1))
    assert a.captions != c.captions
    assert all(s.in_training_distribution for s in a.scenes)
    native = {v: k for k, v in CULTURE_OF_LANGUAGE.items()}
    assert any(lang == native[c] for lang, c in zip(a.languages, a.cultures, strict=True))


def test_explicit_training_captions_name_the_images_own_culture():
    a = make_training_set(TrainConfig(n_images=200, image_size=16))
    plain = make_training_set(TrainConfig(n_images=200, image_size=16, explicit_rate=0.0))
    # the explicit draws have their own stream: the pairs are those of explicit_rate 0
    assert a.scenes == plain.scenes and a.languages == plain.languages
    assert not any(plain.explicit)
    assert 75 <= sum(a.explicit) <= 125  # 0.5 · 200 = 100, binomial SD 7.1
    for scene, culture, language, text, named in zip(
        a.scenes, a.cultures, a.languages, a.captions, a.explicit, strict=True
    ):
        if named:
            forms = {
                culture_caption(scene, language, t, culture, f) for t in range(3) for f in FORMS
            }
            assert text in forms


def test_one_training_step_runs_saves_and_reloads(tmp_path):
    config = TrainConfig(n_images=24, batch_size=8, epochs=1, width=4, threads=1)
    tower, log = train_tower(config, max_steps=1, progress=False)
    assert log["steps"] == 1 and math.isfinite(log["final_loss"])
    save_tower(tower, config, tmp_path / "w", log)
    write_reference(tower, tmp_path / "w")
    meta = json.loads((tmp_path / "w" / "tower.json").read_text())
    assert meta["config"]["width"] == 4
    again = load_tower(tmp_path / "w")
    images, expected = read_reference(tmp_path / "w")
    torch.testing.assert_close(again.embed(images), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(again.embed(images), tower.embed(images), atol=1e-6, rtol=0)


def test_config_and_loading_errors_are_explicit(tmp_path):
    with pytest.raises(ValueError, match="native_rate"):
        TrainConfig(native_rate=1.5)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"nativ_rate": 0.5})
    with pytest.raises(FileNotFoundError, match="xcm-debias world train"):
        load_tower(tmp_path / "missing")
