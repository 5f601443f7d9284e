"""Training images: the folder, a fixed held-out split, and seeded random crops with flips.

Images are every PNG/JPEG under the training folder (``$BENCH_TRAIN_DIR``, else
``$BENCH_DATA_DIR/train``; in ``../shared`` that is BSDS500 + Urban100). Test sets (Kodak, CLIC,
Tecnick, imagecompression.info) never live there and a folder named like one is refused, so
nothing is tuned on them. Every 25th image in sorted path order is *held out*: the trainer
evaluates on those and trains on the rest. A batch is a pure function of (seed, step), so a
resumed run draws exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import ImageError

log = logging.getLogger(__name__)

#: Files the trainer reads.
SUFFIXES = (".png", ".jpg", ".jpeg")
#: Every HOLDOUT_EVERY-th image (sorted by relative path) is held out for evaluation.
HOLDOUT_EVERY = 25
#: Folder names of the suite's test sets: refused as training data.
TEST_SETS = ("kodak", "clic", "tecnick", "imagecompression")


def default_train_dir() -> Path:
    """``$BENCH_TRAIN_DIR``, else ``$BENCH_DATA_DIR/train`` (``./data/train`` by default)."""
    if os.environ.get("BENCH_TRAIN_DIR"):
        return Path(os.environ["BENCH_TRAIN_DIR"]).expanduser()
    return Path(os.environ.get("BENCH_DATA_DIR", "data")).expanduser() / "train"


def list_images(folder: Path) -> list[Path]:
    """Training image files under ``folder``, sorted; ``FileNotFoundError``/``ValueError`` if unusable."""
    if not folder.is_dir():
        raise FileNotFoundError(f"training folder not found: {folder} (set BENCH_TRAIN_DIR or BENCH_DATA_DIR)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    for path in files:
        parts = [q.lower() for q in path.relative_to(folder).parts]
        if any(name in part for part in parts for name in TEST_SETS):
            raise ValueError(f"{path}: a test set ({', '.join(TEST_SETS)}) is not training data")
    if len(files) < 2:
        raise ValueError(f"{folder}: needs at least 2 training images, found {len(files)}")
    return files


@dataclass
class TrainingSet:
    """Decoded training and held-out images (uint8 H×W×3)."""

    train: list[np.ndarray]
    heldout: list[np.ndarray]
    train_names: list[str]
    heldout_names: list[str]

    @classmethod
    def load(cls, folder: Path, min_side: int, holdout_every: int = HOLDOUT_EVERY) -> TrainingSet:
        """Decode every image of ``folder``; images smaller than ``min_side`` are skipped (logged);
        every ``holdout_every``-th (sorted by path) is held out."""
        from PIL import Image

        train, heldout, train_names, heldout_names = [], [], [], []
        for i, path in enumerate(list_images(folder)):
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"))
            except OSError as exc:
                raise ImageError(f"{path}: cannot be read as an image: {exc}") from None
            name = str(path.relative_to(folder))
            if min(arr.shape[:2]) < min_side:
                log.info("skipping %s: %s×%s is smaller than the %d px crop", name, *arr.shape[:2], min_side)
                continue
            if i % holdout_every == holdout_every - 1:
                heldout.append(arr)
                heldout_names.append(name)
            else:
                train.append(arr)
                train_names.append(name)
        if not train or not heldout:
            raise ValueError(f"{folder}: no usable training or held-out images (crop {min_side} px)")
        return cls(train, heldout, train_names, heldout_names)

    def batch(self, seed: int, step: int, size: int, crop: int) -> np.ndarray:
        """``size`` random ``crop``² crops with random horizontal/vertical flips: N×crop×crop×3 uint8."""
        rng = np.random.default_rng([seed, step])
        out = np.empty((size, crop, crop, 3), dtype=np.uint8)
        for k in range(size):
            img = self.train[int(rng.integers(len(self.train)))]
            top = int(rng.integers(img.shape[0] - crop + 1))
            left = int(rng.integers(img.shape[1] - crop + 1))
            patch = img[top : top + crop, left : left + crop]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1]
            out[k] = patch
        return out

    def heldout_crops(self, crop: int) -> np.ndarray:
        """The centre ``crop``² crop of every held-out image (a fixed evaluation batch)."""
        out = []
        for img in self.heldout:
            top, left = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
            out.append(img[top : top + crop, left : left + crop])
        return np.stack(out)
