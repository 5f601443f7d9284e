"""Conversions between the benchmark's H×W×3 uint8 images and models' 1×3×H×W tensors in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an H×W×3 uint8 RGB image (raise ``ValueError`` with what is wrong)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got {got}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image {image.shape}")
    return image


def to_tensor(image: np.ndarray, device: str | torch.device = "cpu") -> Tensor:
    """H×W×3 uint8 → 1×3×H×W float32 in [0, 1]."""
    check_image(image)
    x = torch.tensor(image, dtype=torch.uint8, device=device)  # a copy: inputs may be read-only
    return x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(x: Tensor) -> np.ndarray:
    """1×3×H×W float in [0, 1] → H×W×3 uint8 (clamped, rounded to nearest)."""
    x = x.detach().clamp(0, 1).mul(255.0).round_().to(torch.uint8)
    return x[0].permute(1, 2, 0).contiguous().cpu().numpy()
