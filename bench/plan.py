"""Planning: codec configurations, a dataset, the resolution ladder, rate points, devices and
rounds → the cells of a run. :mod:`bench.session` plans here for every caller (``bench run``, the
gate, the anchor tools): two layouts, :class:`PlanSpec` (a dataset, its rate ladders and the
resolution ladder) and :class:`CropPlanSpec` (given images, one centre crop: the gate's).

Planning is cheap and checks nothing it does not need for the cells' keys (file hashes). Checks
that read pixels — the Kodak check, :func:`image_notes` — run afterwards, only on the cells that
are still to run, so re-running a finished command does not decode every image again.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import datasets
from bench.cells import Cell
from bench.codecs import registry
from bench.codecs.base import CodecConfig, RatePoint
from bench.errors import DatasetError, UsageError
from bench.images import ImageError, file_sha256, load_image

#: an image of a plan: (path, name, sha256 of the file)
PlannedImage = tuple[Path, str, str]


@dataclass(frozen=True)
class PlanSpec:
    """What to run, as ``bench run`` takes it (see its ``--help`` for each field)."""

    dataset: str | None = None  # None: Kodak if present, else the bundled samples
    images: int | None = None  # the first N images of the dataset; 0: ladder cells only
    rates: str | None = None  # comma-separated rate labels; None: each codec's whole ladder
    ladder: str = "default"  # 'default', 'none' or WxH,WxH
    ladder_set: str = "highres"
    ladder_per_size: int = 2
    ladder_rates: str = "mid"  # 'mid' or 'all'
    device: str | None = None  # overrides every codec's device
    rounds: int = 1  # every cell this many times (round 1, 2, ...)


@dataclass(frozen=True)
class CropPlanSpec:
    """Given images at one centre crop, per image every configuration in the order given (the gate's
    layout: its yardstick first), every rate point, once per round (round by round)."""

    images: tuple[PlannedImage, ...]
    crop: str  # 'WxH'
    dataset: str  # the cells' dataset label
    device: str = "cpu"
    rounds: int = 1
    rates: tuple[str, ...] | None = None  # rate labels to run (each configuration must have them); None: all


def select_codecs(codecs: str | None, codecs_dir: str | Path | None) -> tuple[list[CodecConfig], list[str]]:
    """The configurations ``codecs`` names ('default', 'all' or a comma-separated list) that can
    run here, and a note for each one that cannot."""
    configs = registry.load_configs(codecs_dir)
    notes = [f"{name}: unavailable — {exc}" for name, exc in configs.broken.items()]
    if codecs in (None, "default"):
        wanted = [c for c in configs.values() if c.default_run]
    elif codecs == "all":
        wanted = list(configs.values())
    else:
        names = labels(codecs)
        unknown = [n for n in names if n not in configs and n not in configs.broken]
        if unknown:
            close = suggest(unknown, [*configs, *configs.broken])
            raise UsageError(f"unknown codec(s): {', '.join(unknown)}"
                             + (f"; did you mean {', '.join(close)}?" if close else "") + " (see python -m bench list)")
        wanted = [configs[n] for n in names]  # a broken configuration raises its ConfigError here
        notes = []
    usable = []
    for config in wanted:
        reason = registry.availability(config)
        if reason:
            notes.append(f"{config.name}: unavailable — {reason}")
        else:
            usable.append(config)
    return usable, notes


def suggest(unknown: Iterable[str], known: Iterable[str], most: int = 4) -> list[str]:
    """Known names close to the unknown ones: those they begin (``jpeg`` → ``jpeg-420``, ``jpeg-444``),
    then difflib's close matches (typos), at most ``most`` per unknown name."""
    known = sorted(set(known))
    found: list[str] = []
    for name in unknown:
        prefixed = [k for k in known if name and k.startswith(name)]
        found += (prefixed + difflib.get_close_matches(name, known, n=most, cutoff=0.6))[:most]
    return list(dict.fromkeys(found))


def check_device(device: str | None) -> None:
    """``--device``: refuse (:class:`UsageError`) a device name torch would not take, or a CUDA
    device this machine does not have — before any cell runs, rather than one error row per cell
    (or ok rows labelled with a device that never ran them)."""
    if device is None or device in ("cpu", "auto"):
        return
    if not registry.DEVICE_RE.fullmatch(device):
        raise UsageError(f"--device {device!r}: unknown device; use cpu, cuda, cuda:N or auto")
    from bench.device import cuda_count

    count, index = cuda_count(), int(device.partition(":")[2] or 0)
    if index >= count:
        have = f"{count} CUDA device(s) (cuda:0 … cuda:{count - 1})" if count else "no CUDA device"
        raise UsageError(f"--device {device}: this machine has {have}; use --device cpu or auto")


def labels(text: str) -> list[str]:
    """The non-empty items of a comma-separated list."""
    return [label.strip() for label in text.split(",") if label.strip()]


def ladder_sizes(text: str) -> list[tuple[int, int]]:
    """``--ladder``: 'default', 'none' or WxH,WxH; a bad size is a :class:`UsageError` naming it."""
    if text in ("default", "none"):
        return list(datasets.DEFAULT_LADDER) if text == "default" else []
    try:
        return [datasets.parse_size(s) for s in text.split(",")]
    except UsageError as exc:
        raise UsageError(f"--ladder: {exc}; use 'default', 'none' or sizes like 256x256,768x512") from None


def _rates(config: CodecConfig, wanted: list[str]) -> list[RatePoint]:
    try:
        return [config.rate(label) for label in wanted]
    except KeyError as exc:
        raise UsageError(f"--rates: {exc.args[0]}; give labels every chosen codec has, or run the codecs "
                         "separately") from None


def resolve_device(config: CodecConfig, override: str | None) -> str:
    """The device a codec's cells run on: the override, else its configuration's; 'auto' → cuda if present."""
    from bench.device import cuda_available

    device = override or config.device
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device


def image_cells(config: CodecConfig, rates: Iterable[RatePoint], dataset: str, images: Iterable[PlannedImage],
                resolutions: Sequence[str], device: str, round_: int = 1) -> list[Cell]:
    """The cells of one configuration on some images: per image, per resolution, per rate point."""
    return [Cell(config, rate, dataset, name, str(path), sha, resolution, device, round_)
            for path, name, sha in images for resolution in resolutions for rate in rates]


def _sha_or_unreadable(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return "unreadable"  # the cell then fails with the reason, as an error row


def plan_crops(spec: CropPlanSpec, configs: list[CodecConfig]) -> list[Cell]:
    """The cells of a :class:`CropPlanSpec`: round by round, per image, per configuration, per rate point."""
    rates = {c.name: _rates(c, list(spec.rates)) if spec.rates else list(c.rates) for c in configs}
    return [cell for k in range(1, spec.rounds + 1) for image in spec.images for config in configs
            for cell in image_cells(config, rates[config.name], spec.dataset, [image], [spec.crop], spec.device, k)]


def plan(spec: PlanSpec | CropPlanSpec, configs: list[CodecConfig]) -> tuple[list[Cell], list[str]]:
    """Every cell of the run plus notes for the user. A :class:`PlanSpec`: round by round, per
    configuration, the dataset's images at native size over the chosen rate points, then the
    ladder's crops; a :class:`CropPlanSpec`: :func:`plan_crops`."""
    if isinstance(spec, CropPlanSpec):
        return plan_crops(spec, configs), []
    notes: list[str] = []
    wanted = labels(spec.rates) if spec.rates else None
    rates_of = {c.name: _rates(c, wanted) if wanted else list(c.rates) for c in configs}
    dataset = datasets.resolve(spec.dataset) if spec.dataset else datasets.default_dataset()
    if dataset.name == "samples":
        notes.append(f"no Kodak under {datasets.data_dir()}: using {dataset.note}")
    paths = list(dataset.paths)[: spec.images] if spec.images is not None else list(dataset.paths)
    native = [(p, p.stem, _sha_or_unreadable(p)) for p in paths]

    ladder_entries = []
    if spec.ladder != "none":
        try:
            ladder_set = datasets.resolve(spec.ladder_set)
        except DatasetError as exc:
            notes.append(f"{exc}; resolution ladder built from {dataset.name} instead")
            ladder_set = dataset
        images, errors = datasets.load_all(ladder_set)
        notes += [f"ladder: {reason}" for reason in errors.values()]
        ladder_entries, skipped = datasets.ladder(images, ladder_sizes(spec.ladder), spec.ladder_per_size)
        if skipped:
            notes.append(f"ladder sizes skipped (no image large enough, no upscaling): {', '.join(skipped)}")

    cells: list[Cell] = []
    for k in range(1, spec.rounds + 1):
        for config in configs:
            device = resolve_device(config, spec.device)
            rates = rates_of[config.name]
            cells += image_cells(config, rates, dataset.name, native, ["native"], device, k)
            if ladder_entries and config.rates:
                mid = [config.middle_rate] if spec.ladder_rates == "mid" else rates
                for entry in ladder_entries:
                    cells += image_cells(config, mid, f"ladder:{entry.image.path.parent.name}",
                                         [(entry.image.path, entry.image.name, entry.image.sha256)],
                                         [entry.label], device, k)
    return cells, notes


def image_notes(cells: Iterable[Cell]) -> list[str]:
    """Check the images of ``cells`` that claim to be Kodak (dataset ``kodak``) against the
    published pixels; one note per image that differs or cannot be read. Call it with the cells
    still to run: each distinct image is decoded once, finished ones not at all."""
    paths = list(dict.fromkeys(Path(c.image_path) for c in cells if c.dataset == "kodak"))
    if not paths:
        return []
    hashes = datasets.kodak_pixel_hashes()
    notes = []
    for path in paths:
        try:
            if path.name not in hashes:
                notes.append(f"{path.name}: not one of the published Kodak images (no reference pixels)")
            elif datasets.pixel_sha256(load_image(path).pixels) != hashes[path.name]:
                notes.append(f"{path.name}: decoded pixels differ from the published Kodak image")
        except ImageError as exc:
            notes.append(str(exc))
    return notes
