from __future__ import annotations

import os

import pytest
import torch

# the machine has 2 cores shared by the whole suite; keep torch from oversubscribing
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def no_hub_probe(monkeypatch):
    """No test reaches the network: the encoders' hub probe answers "unreachable"."""
    from xcm_debias.encoders import _offline

    monkeypatch.setattr(_offline, "reachable", lambda host, port, timeout=1.0: False)
