"""Named image sets and the resolution ladder.

Sets resolve under ``$BENCH_DATA_DIR`` (default ``./data``):

- ``kodak`` — ``kodak/kodim01.png … kodim24.png``, verified against the decoded-pixel SHA-256 of
  each image (so a lossless re-encode of the same pixels passes; a different image does not);
- ``highres`` — every image in ``clic-pro-valid-subset/``, ``tecnick-subset/``,
  ``imagecompression-info-subset/`` and ``highres/`` that exist;
- ``samples`` — colour photographs bundled with scikit-image, the fallback when no dataset is
  present (nothing to download);
- any folder path — a custom set of its PNG/JPEG/PPM/TIFF/WebP/BMP/GIF files;
- one image file — a set of that image alone (e.g. a ladder of crops of one picture, as
  ``python -m bench.decode_scaling`` runs).

An image's id in the results store is its file name without the extension, so the ids of one set
must be unique: a set holding ``a.png`` and ``a.bmp`` (or, for ``highres``, the same name in two
of its folders) is refused with both paths named, rather than one id silently standing for two
pictures (or ids that change when a file is added, which would orphan stored results).

The resolution ladder (:func:`ladder`) takes centre crops: for each target W×H it uses the first
``per_size`` images of the ladder set — largest first, ties by name — that are at least W wide and
H high. Nothing is upscaled or rotated, so a size no image can hold is skipped (and reported).

``python -m bench.datasets fetch kodak`` downloads Kodak from its public home and verifies it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from bench.argparsing import ArgumentParser
from bench.download import download
from bench.errors import BenchError, DatasetError, UsageError, describe, quiet_broken_pipe
from bench.folders import missing_folders, remove_empty
from bench.images import ImageError, LoadedImage, centre_crop, load_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".pnm", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
HIGHRES_FOLDERS = ("clic-pro-valid-subset", "tecnick-subset", "imagecompression-info-subset", "highres")
SAMPLE_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field")
KODAK_URL = "https://r0k.us/graphics/kodak/kodak/"
DEFAULT_LADDER = ((256, 256), (512, 512), (768, 512), (1024, 1024), (2048, 1365), (3072, 2048))


@dataclass(frozen=True)
class Dataset:
    name: str
    paths: tuple[Path, ...]
    note: str = ""


def data_dir() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", "data"))


def kodak_pixel_hashes() -> dict[str, str]:
    """``{file name: SHA-256 of the decoded RGB8 pixels}`` shipped with the package."""
    text = resources.files("bench").joinpath("data/kodak_pixels.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return {row[0]: row[-1] for row in rows}


def pixel_sha256(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def _images_in(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))


def _unique_ids(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """``paths`` unchanged if their ids (file stems) are unique; else :class:`UsageError` naming both files."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise UsageError(f"{seen[path.stem]} and {path} would both be image {path.stem!r}: image ids are file "
                             "names without the extension and must be unique in a set; rename or remove one")
        seen[path.stem] = path
    return paths


def _samples() -> Dataset:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    paths = []
    for name in SAMPLE_NAMES:
        found = sorted(folder.glob(name + ".*"))
        if found:
            paths.append(found[0])
    return Dataset("samples", tuple(paths), f"scikit-image {skimage.__version__} bundled photographs")


def resolve(name: str, root: Path | None = None) -> Dataset:
    """Find the image files of a named set (or a folder).

    Raises :class:`DatasetError` (a ``FileNotFoundError``) if absent and :class:`UsageError` when two
    files would share an image id.
    """
    root = root or data_dir()
    if name == "samples":
        return _samples()
    if name == "kodak":
        folder = root / "kodak"
        expected = kodak_pixel_hashes()
        paths = tuple(folder / f for f in sorted(expected) if (folder / f).is_file())
        if not paths:
            raise DatasetError(f"Kodak not found in {folder} (get it with: python -m bench.datasets fetch kodak)")
        if len(paths) != len(expected):
            log.warning("Kodak in %s is incomplete: %d of %d images", folder, len(paths), len(expected))
        return Dataset("kodak", paths, str(folder))
    if name == "highres":
        paths = tuple(p for sub in HIGHRES_FOLDERS if (root / sub).is_dir() for p in _images_in(root / sub))
        if not paths:
            raise DatasetError(f"no high-resolution images under {root} (looked in {', '.join(HIGHRES_FOLDERS)}); "
                               "set BENCH_DATA_DIR to the folder that holds them")
        return Dataset("highres", _unique_ids(paths), str(root))
    folder = Path(name)
    if folder.is_dir():
        paths = _images_in(folder)
        if not paths:
            raise DatasetError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return Dataset(folder.name, _unique_ids(paths), str(folder))
    if folder.is_file() and folder.suffix.lower() in IMAGE_SUFFIXES:
        return Dataset(folder.stem, (folder,), str(folder))
    raise DatasetError(f"unknown dataset {name!r}: use kodak, highres, samples, a folder path or an image file")


def default_dataset() -> Dataset:
    """Kodak if present under ``$BENCH_DATA_DIR``, else the bundled samples (and say so)."""
    try:
        return resolve("kodak")
    except DatasetError as exc:
        log.warning("%s — falling back to scikit-image's bundled photographs", exc)
        return resolve("samples")


def verify_kodak(images: list[LoadedImage]) -> list[str]:
    """Names of Kodak images whose decoded pixels do not match the published set."""
    expected = kodak_pixel_hashes()
    return [im.path.name for im in images if expected.get(im.path.name) != pixel_sha256(im.pixels)]


def load_all(dataset: Dataset) -> tuple[list[LoadedImage], dict[str, str]]:
    """Load every image; returns the good ones and ``{path: reason}`` for the unusable ones."""
    images, errors = [], {}
    for path in dataset.paths:
        try:
            images.append(load_image(path))
        except ImageError as exc:
            errors[str(path)] = str(exc)
    if dataset.name == "kodak":
        for bad in verify_kodak(images):
            errors[bad] = f"{bad}: decoded pixels differ from the published Kodak image"
        images = [im for im in images if im.path.name not in errors]
    return images, errors


@dataclass(frozen=True)
class LadderEntry:
    image: LoadedImage
    width: int
    height: int

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height}"

    def pixels(self) -> np.ndarray:
        return centre_crop(self.image.pixels, self.width, self.height)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"resolution {text!r} is not WxH, e.g. 768x512") from None
    if w < 8 or h < 8:
        raise UsageError(f"resolution {text!r} is too small (each side must be ≥ 8)")
    return w, h


def ladder(images: list[LoadedImage], sizes=DEFAULT_LADDER, per_size: int = 2) -> tuple[list[LadderEntry], list[str]]:
    """Centre crops for each size (see module docstring); returns entries and skipped sizes."""
    ordered = sorted(images, key=lambda im: (-im.width * im.height, im.name))
    entries, skipped = [], []
    for width, height in sizes:
        fits = [im for im in ordered if im.width >= width and im.height >= height][:per_size]
        if not fits:
            skipped.append(f"{width}x{height}")
        entries.extend(LadderEntry(im, width, height) for im in fits)
    return entries, skipped


# --- fetching ------------------------------------------------------------------------------------

def fetch_kodak(root: Path | None = None, base_url: str = KODAK_URL, timeout: float = 60.0) -> Path:
    """Download the 24 Kodak PNGs into ``root/kodak`` and verify each one's pixels.

    Files already present and correct are kept. Each download goes to a temporary file that is
    renamed into place only after verification, so an interrupted fetch leaves nothing half-written;
    a fetch that fails before its first image removes the (empty) folders it made.
    """
    folder = (root or data_dir()) / "kodak"
    made = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _fetch_into(folder, base_url, timeout)
    except BaseException:
        remove_empty(made)
        raise


def _fetch_into(folder: Path, base_url: str, timeout: float) -> Path:
    """The body of :func:`fetch_kodak`, into an existing ``folder``."""
    expected = kodak_pixel_hashes()
    for name, digest in sorted(expected.items()):
        target = folder / name
        if target.is_file():
            try:
                if pixel_sha256(load_image(target).pixels) == digest:
                    continue
            except ImageError:
                pass
            log.warning("%s is not the published image; downloading it again", target)
        url = base_url.rstrip("/") + "/" + name
        part = download(url, folder, timeout)
        try:
            got = pixel_sha256(load_image(part).pixels)
        except ImageError as exc:
            part.unlink(missing_ok=True)
            raise RuntimeError(f"{url}: downloaded file is not a valid image ({exc})") from exc
        if got != digest:
            part.unlink(missing_ok=True)
            raise RuntimeError(f"{url}: pixel checksum mismatch (got {got[:12]}…, expected {digest[:12]}…)")
        part.replace(target)
        log.info("fetched %s", target)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m bench.datasets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download a dataset with checksum verification")
    fetch.add_argument("name", choices=["kodak"])
    fetch.add_argument("--root", type=Path, default=None, help="data directory (default $BENCH_DATA_DIR or ./data)")
    fetch.add_argument("--base-url", default=KODAK_URL)
    show = sub.add_parser("show", help="list the images of a set")
    show.add_argument("name")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return _fetch(args) if args.command == "fetch" else _show(args.name)
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        return quiet_broken_pipe()
    except KeyboardInterrupt:  # Ctrl-C: images already verified stay, a partial one never takes its name
        print("interrupted", file=sys.stderr)
        return 130
    except (BenchError, OSError) as exc:  # a user error or the disk: one line, no traceback
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2


def _fetch(args: argparse.Namespace) -> int:
    try:
        folder = fetch_kodak(args.root, args.base_url)
    except RuntimeError as exc:  # a failed download or a wrong image: a one-line error, exit 2 like the others
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Kodak verified in {folder}")
    return 0


def _show(name: str) -> int:
    images, errors = load_all(resolve(name))
    for im in images:
        print(f"{im.name}\t{im.width}x{im.height}\t{'; '.join(im.conversions) or '-'}")
    for reason in errors.values():
        print(f"UNUSABLE\t{reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
