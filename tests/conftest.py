"""Shared fixtures. Data-dependent tests read $BENCH_DATA_DIR (e.g. ../shared/datasets)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("BENCH_DATA_DIR")
    if not value or not (Path(value) / "kodak").is_dir():
        pytest.skip("BENCH_DATA_DIR with kodak/ is not set (e.g. BENCH_DATA_DIR=../shared/datasets)")
    return Path(value).resolve()


@pytest.fixture(scope="session")
def kodak_image(data_dir: Path) -> np.ndarray:
    from bench.images import load_image

    return load_image(data_dir / "kodak" / "kodim23.png").pixels


@pytest.fixture(scope="session")
def kodak01(data_dir: Path) -> np.ndarray:
    from bench.images import load_image

    return load_image(data_dir / "kodak" / "kodim01.png").pixels


@pytest.fixture(scope="session")
def kodak_crop(kodak_image: np.ndarray) -> np.ndarray:
    """A small, detailed 96×128 crop: quick to code with every codec."""
    return np.ascontiguousarray(kodak_image[200:296, 300:428])


@pytest.fixture
def codecs_dir() -> Path:
    return PROJECT / "codecs"
