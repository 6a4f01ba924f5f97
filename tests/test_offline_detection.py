"""Weights offline: the hub is probed once (monkeypatched sockets here, never the real network);
unreachable, huggingface_hub searches only the cache, so a missing file fails at once."""

from __future__ import annotations

import sys
import threading

import pytest
from huggingface_hub import constants

from xcm_debias.encoders import _offline

REACHABLE = _offline.reachable  # the real probe (conftest stubs it out for every other test)


@pytest.fixture(autouse=True)
def online_mode(monkeypatch):
    """Start every test with offline mode off, whatever the environment says."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def refuse(*args, **kwargs):
    raise OSError("[Errno -2] Name or service not known")


class Connection:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_reachable_follows_the_socket(monkeypatch):
    calls = []
    monkeypatch.setattr(
        _offline.socket, "create_connection", lambda *a, **k: calls.append(a) or Connection()
    )
    assert REACHABLE("hub.example", 443)
    assert calls == [(("hub.example", 443),)]
    monkeypatch.setattr(_offline.socket, "create_connection", refuse)
    assert not REACHABLE("hub.example", 443)


def test_a_probe_that_hangs_counts_as_unreachable(monkeypatch):
    release = threading.Event()

    def hang(*args, **kwargs):  # e.g. a resolver that never answers
        release.wait()
        return Connection()

    monkeypatch.setattr(_offline.socket, "create_connection", hang)
    try:
        assert not REACHABLE("hub.example", 443, timeout=0.05)
    finally:
        release.set()


def test_unreachable_hub_switches_huggingface_hub_offline_for_the_block(monkeypatch):
    monkeypatch.setattr(_offline, "reachable", lambda host, port: False)
    with _offline.offline_unless_reachable() as reason:
        assert constants.is_offline_mode()
        assert reason.startswith("no network: huggingface.co:443 did not answer within 1 s")
    assert not constants.is_offline_mode()


def test_reachable_hub_or_nothing_to_fetch_changes_nothing(monkeypatch):
    monkeypatch.setattr(_offline, "reachable", lambda host, port: True)
    with _offline.offline_unless_reachable() as reason:
        assert reason is None and not constants.is_offline_mode()

    def never(host, port):
        raise AssertionError("no probe when nothing is downloaded")

    monkeypatch.setattr(_offline, "reachable", never)
    with _offline.offline_unless_reachable(needed=False) as reason:
        assert reason is None


def test_hub_address_follows_hf_endpoint(monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", "http://mirror.local:8080")
    assert _offline.hub_address() == ("mirror.local", 8080)


def test_encoder_offline_fails_with_the_reason_and_searches_only_the_cache(monkeypatch, tmp_path):
    from xcm_debias.encoders.open_clip_encoder import OpenCLIPEncoder, WeightsUnavailableError

    monkeypatch.setattr(_offline, "reachable", lambda host, port: False)
    with pytest.raises(WeightsUnavailableError) as info:
        OpenCLIPEncoder("ViT-B-32", "openai", device="cpu", cache_dir=str(tmp_path))
    message = str(info.value)
    assert message.startswith("no network: huggingface.co:443 did not answer")
    assert "'ViT-B-32', pretrained='openai'" in message and "HF_HUB_OFFLINE=1" in message
    assert "offline mode is enabled" in message or "local cache" in message
    assert not constants.is_offline_mode()  # restored after the block


def test_missing_transformers_names_the_multilingual_extra(monkeypatch):
    from xcm_debias.encoders.open_clip_encoder import _check_transformers_available

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    config = {"text_cfg": {"hf_model_name": "xlm-roberta-base"}}
    with pytest.raises(ImportError, match=r"pip install 'xcm_debias\[multilingual\]'"):
        _check_transformers_available("xlm-roberta-base-ViT-B-32", config)
    _check_transformers_available("ViT-B-32", {"text_cfg": {}})  # no Hugging Face tower: fine
