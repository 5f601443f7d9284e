"""Find codec adapters by name and codec configurations by file.

Adapters are classes implementing :class:`bench.codecs.base.Codec`. Built-in ones are listed
below as import paths (imported only when used, so ``bench list`` stays fast); third-party ones
register under the ``bench.codecs`` entry-point group, e.g. in their ``pyproject.toml``::

    [project.entry-points."bench.codecs"]
    mycodec = "mypkg.adapter:MyCodec"

An adapter may also be named by import path (``adapter = "mypkg.adapter:MyCodec"``) in a TOML file.

Configurations are TOML files, one per configuration, in ``codecs/`` (or ``$BENCH_CODECS_DIR``).
"""

from __future__ import annotations

import importlib
import os
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bench.codecs.base import Codec, CodecConfig, RatePoint

BUILTIN_ADAPTERS: dict[str, str] = {
    "jpeg": "bench.codecs.pillow_codecs:JpegCodec",
    "webp": "bench.codecs.pillow_codecs:WebpCodec",
    "avif": "bench.codecs.pillow_codecs:AvifCodec",
    "jpeg2000": "bench.codecs.pillow_codecs:Jpeg2000Codec",
    "avif10": "bench.codecs.imagecodecs_codecs:Avif10Codec",
    "jpegxl": "bench.codecs.imagecodecs_codecs:JpegXLCodec",
    "heic": "bench.codecs.heic:HeicCodec",
    "vtm": "bench.codecs.vtm:VtmCodec",
    "msp": "bench.codecs.msp:MSPCodec",
    "compressai": "bench.codecs.compressai_zoo:CompressAIZooCodec",
    "mlicpp": "bench.codecs.mlicpp:MLICPlusPlusCodec",
}

ENTRY_POINT_GROUP = "bench.codecs"


def adapter_class(adapter: str) -> type[Codec]:
    """Import and return the adapter class registered under ``adapter``."""
    target = BUILTIN_ADAPTERS.get(adapter) or (adapter if ":" in adapter else None)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == adapter:
                return ep.load()
        known = ", ".join(sorted(set(BUILTIN_ADAPTERS) | {e.name for e in entry_points(group=ENTRY_POINT_GROUP)}))
        raise KeyError(f"unknown codec adapter {adapter!r} (known: {known})")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def default_codecs_dir() -> Path:
    """``$BENCH_CODECS_DIR`` if set, else ``codecs/`` of the project (or of the working dir)."""
    env = os.environ.get("BENCH_CODECS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2] / "codecs"
    return here if here.is_dir() else Path("codecs")


def _rates(doc: dict[str, Any], source: Path) -> tuple[RatePoint, ...]:
    if "ladder" in doc and "rates" in doc:
        raise ValueError(f"{source}: give either [ladder] or [[rates]], not both")
    if "ladder" in doc:
        ladder = doc["ladder"]
        try:
            param, values = ladder["param"], ladder["values"]
        except KeyError as exc:
            raise ValueError(f"{source}: [ladder] needs 'param' and 'values'") from exc
        return tuple(RatePoint(f"{param}={v}", {param: v}) for v in values)
    points = []
    for i, entry in enumerate(doc.get("rates", [])):
        entry = dict(entry)
        label = str(entry.pop("label", f"r{i}"))
        points.append(RatePoint(label, entry))
    labels = [p.label for p in points]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{source}: rate labels must be unique, got {labels}")
    return tuple(points)


def load_config(path: str | Path) -> CodecConfig:
    """Read one codec configuration from a TOML file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    if "adapter" not in doc:
        raise ValueError(f"{path}: missing 'adapter' (the code that runs this configuration)")
    return CodecConfig(
        name=str(doc.get("name", path.stem)),
        adapter=str(doc["adapter"]),
        params=dict(doc.get("params", {})),
        rates=_rates(doc, path),
        description=str(doc.get("description", "")),
        device=str(doc.get("device", "cpu")),
        default_run=bool(doc.get("default_run", True)),
        source=str(path),
    )


def load_configs(directory: str | Path | None = None) -> dict[str, CodecConfig]:
    """All configurations in ``directory`` (default :func:`default_codecs_dir`), by name."""
    directory = Path(directory) if directory else default_codecs_dir()
    configs: dict[str, CodecConfig] = {}
    for path in sorted(directory.glob("*.toml")):
        config = load_config(path)
        if config.name in configs:
            raise ValueError(f"codec name {config.name!r} defined twice ({configs[config.name].source}, {path})")
        configs[config.name] = config
    return configs


def availability(config: CodecConfig) -> str | None:
    """``None`` if ``config`` can run here, else the reason it cannot."""
    try:
        cls = adapter_class(config.adapter)
    except KeyError as exc:
        return str(exc.args[0])
    except ImportError as exc:
        return f"adapter {config.adapter!r} cannot be imported: {exc}"
    return cls.check_available(config)


def create(config: CodecConfig, device: str | None = None) -> Codec:
    """Instantiate the adapter for ``config``."""
    return adapter_class(config.adapter)(config, device=device)
