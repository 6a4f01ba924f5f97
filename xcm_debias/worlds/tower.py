"""The world's image tower: a small CNN mapping a drawn scene to the USE-m3 text space.

Six 3×3 convolutions (three of stride 2: 32 → 16 → 8 → 4 px) with batch norm and ReLU, then
a linear map of the flattened ``4 × 4`` feature grid (flattening keeps *where* things are, so
"left"/"right" can be learned) to 512 dimensions, L2-normalised. With ``width=16`` it has about
1.2 M parameters. A learnable logit scale (CLIP's inverse temperature, stored as its log) is
part of the module because LiT training learns it (Zhai et al., "LiT: Zero-Shot Transfer with
Locked-image text Tuning", CVPR 2022 — here the *text* tower is the locked one).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from xcm_debias._validation import check_positive_int

#: pixel normalisation (uint8 / 255 − mean) / std, the same for every channel
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


def _block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class ImageTower(nn.Module):
    """CNN image encoder: ``[B, 3, S, S]`` normalised pixels → ``[B, dim]`` unit vectors.

    Args:
        width: channels of the first layer (doubled at each stride-2 layer).
        dim: output dimension (512, USE-m3's).
        image_size: input side in pixels (a multiple of 8).
        init_temperature: initial softmax temperature of the contrastive loss.
    """

    def __init__(
        self,
        width: int = 16,
        dim: int = 512,
        image_size: int = 32,
        init_temperature: float = 0.07,
    ) -> None:
        super().__init__()
        self.width = check_positive_int(width, "width")
        self.dim = check_positive_int(dim, "dim")
        self.image_size = check_positive_int(image_size, "image_size", minimum=8)
        if self.image_size % 8:
            raise ValueError(f"image_size: expected a multiple of 8, got {image_size}")
        if not 0 < init_temperature < 1:
            raise ValueError(
                f"init_temperature: expected a number in (0, 1), got {init_temperature}"
            )
        w = self.width
        self.features = nn.Sequential(
            *_block(3, w, 1),
            *_block(w, 2 * w, 2),
            *_block(2 * w, 2 * w, 1),
            *_block(2 * w, 4 * w, 2),
            *_block(4 * w, 4 * w, 1),
            *_block(4 * w, 8 * w, 2),
        )
        side = self.image_size // 8
        self.head = nn.Linear(8 * w * side * side, self.dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-norm embeddings of normalised pixels (see :func:`to_pixels`)."""
        if pixels.ndim != 4 or pixels.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"pixels: expected [B, 3, {self.image_size}, {self.image_size}], "
                f"got {tuple(pixels.shape)}"
            )
        z = self.head(self.features(pixels).flatten(1))
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
        """Embeddings of uint8 images ``[N, S, S, 3]`` in eval mode (float32, unit norm)."""
        was_training = self.training
        self.eval()
        try:
            out = [
                self(to_pixels(images[start : start + batch_size]))
                for start in range(0, len(images), batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out)


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, S, S, 3]`` images → normalised float32 ``[N, 3, S, S]`` (a new tensor)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise TypeError(
            "images: expected a uint8 array [N, S, S, 3], got "
            f"{type(images).__name__} {getattr(images, 'dtype', '')} {getattr(images, 'shape', '')}"
        )
    if images.shape[-1] != 3:
        raise ValueError(f"images: expected 3 colour channels last, got shape {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - PIXEL_MEAN) / PIXEL_STD
