from __future__ import annotations

import os

import torch

# the machine has 2 cores shared by the whole suite; keep torch from oversubscribing
torch.set_num_threads(min(2, os.cpu_count() or 1))
