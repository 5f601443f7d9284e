"""Find codec adapters by name and codec configurations by file.

Adapters are classes implementing :class:`bench.codecs.base.Codec`. Built-in ones are listed
below as import paths (imported only when used, so ``bench list`` stays fast); third-party ones
register under the ``bench.codecs`` entry-point group, e.g. in their ``pyproject.toml``::

    [project.entry-points."bench.codecs"]
    mycodec = "mypkg.adapter:MyCodec"

An adapter may also be named by import path (``adapter = "mypkg.adapter:MyCodec"``) in a TOML file.

Configurations are TOML files, one per configuration, in ``codecs/`` (or ``$BENCH_CODECS_DIR``).
Each is checked when loaded against its adapter's declared parameters (``rate_params``,
``fixed_params``): a value outside the library's range is a :class:`ConfigError` naming the file,
line, key and allowed values. :func:`load_configs` keeps going past broken files and records them.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bench.codecs.base import Codec, CodecConfig, Param, RatePoint
from bench.errors import ConfigError

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
    "compressai-model": "bench.codecs.compressai_model:CompressAIModelCodec",
    "mlicpp": "bench.codecs.mlicpp:MLICPlusPlusCodec",
}

ENTRY_POINT_GROUP = "bench.codecs"

#: devices a configuration (or ``bench run --device``) may name
DEVICE_RE = re.compile(r"cpu|auto|cuda(:\d+)?")
#: a codec name: it is a command-line item (``--codecs a,b``), a file name (exports) and a key in
#: the store and the report, so letters, digits and ``. _ + -``, starting with a letter or digit
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
#: words ``--codecs`` gives a meaning of its own
RESERVED_NAMES = ("all", "default")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a codec configuration, or None when it can."""
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved (--codecs {name} selects a set of codecs)"
    if not NAME_RE.fullmatch(name):
        return (f"{name!r} is not a usable codec name: use 1 to 64 letters, digits, '.', '_', '+' or '-', "
                "starting with a letter or digit")
    return None


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


def _line_of(text: str, table: str, key: str, occurrence: int = 0) -> int | None:
    """1-based line where ``key`` is assigned in ``[table]`` (its ``occurrence``-th ``[[table]]``);
    ``table=""`` is the top level. ``None`` when not found (e.g. an inline table)."""
    current, seen = "", -1
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            seen = seen + 1 if stripped.startswith("[[") and current == table else 0
            continue
        if current == table and (not table or seen == occurrence) and re.match(
                rf'["\']?{re.escape(key)}["\']?\s*=', stripped):
            return number
    return None


class _Checker:
    """Checks one parsed TOML document; every error names ``file:line``, the key and what is allowed."""

    TOP = {"name", "adapter", "description", "device", "default_run", "params", "ladder", "rates", "lof_of"}

    def __init__(self, path: Path, text: str, doc: dict[str, Any]):
        self.path, self.text, self.doc = path, text, doc

    def error(self, message: str, table: str = "", key: str = "", occurrence: int = 0) -> ConfigError:
        line = _line_of(self.text, table, key, occurrence) if key else None
        return ConfigError(f"{self.path}{f':{line}' if line else ''}: {message}")

    def value(self, spec: Param, name: str, value: Any, where: str, table: str, key: str, occurrence: int = 0,
              adapter: str = "") -> None:
        if not spec.accepts(value):
            raise self.error(f"{where} = {value!r}: {name} must be {spec.allowed()} (adapter {adapter!r})",
                             table, key, occurrence)

    def rates(self, cls: type[Codec] | None, adapter: str) -> tuple[RatePoint, ...]:
        doc, declared = self.doc, cls.rate_params if cls else None
        if "ladder" in doc and "rates" in doc:
            raise self.error("give either [ladder] or [[rates]], not both", "", "")
        if "ladder" in doc:
            ladder = doc["ladder"]
            unknown = set(ladder) - {"param", "values"} if isinstance(ladder, dict) else set()
            if not isinstance(ladder, dict) or unknown or "param" not in ladder or "values" not in ladder:
                extra = f", not {sorted(unknown)}" if unknown else ""
                raise self.error(f"[ladder] needs exactly 'param' and 'values'{extra}", "ladder", "param")
            param, values = ladder["param"], ladder["values"]
            if declared is not None and param not in declared:
                raise self.error(f"ladder.param = {param!r}: adapter {adapter!r} takes rate parameter(s) "
                                 f"{', '.join(declared) or '(none)'}", "ladder", "param")
            if not isinstance(values, list) or not values:
                raise self.error("ladder.values is empty: give at least one rate point", "ladder", "values")
            if declared is not None:
                for i, v in enumerate(values):
                    self.value(declared[param], param, v, f"ladder.values[{i}]", "ladder", "values", adapter=adapter)
            points = tuple(RatePoint(f"{param}={v}", {param: v}) for v in values)
        else:
            entries = doc.get("rates", [])
            if not isinstance(entries, list) or not entries:
                raise self.error("no rate ladder: give [ladder] (param, values) or at least one [[rates]] entry")
            points_list = []
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    raise self.error(f"rates[{i}] must be a [[rates]] table, got {entry!r}", "", "rates")
                entry = dict(entry)
                label = str(entry.pop("label", f"r{i}"))
                for key, v in entry.items():
                    if declared is None:
                        continue
                    if key not in declared:
                        raise self.error(f"rates[{i}].{key}: adapter {adapter!r} takes rate parameter(s) "
                                         f"{', '.join(declared) or '(none)'}", "rates", key, i)
                    self.value(declared[key], key, v, f"rates[{i}].{key}", "rates", key, i, adapter)
                points_list.append(RatePoint(label, entry))
            points = tuple(points_list)
        labels = [p.label for p in points]
        if len(set(labels)) != len(labels):
            raise self.error(f"rate labels must be unique, got {labels}")
        for name, spec in (declared or {}).items():
            for i, point in enumerate(points):
                if spec.required and name not in point.params:
                    raise self.error(f"rate point {point.label!r} has no {name!r} ({spec.allowed()})",
                                     "rates", "label", i)
        return points

    def params(self, cls: type[Codec] | None, adapter: str) -> dict[str, Any]:
        params = self.doc.get("params", {})
        if not isinstance(params, dict):
            raise self.error("'params' must be a table", "", "params")
        declared = cls.fixed_params if cls else None
        if declared is None:
            return dict(params)
        for key, v in params.items():
            if key not in declared:
                raise self.error(f"params.{key}: not a parameter of adapter {adapter!r} "
                                 f"(known: {', '.join(declared)})", "params", key)
            self.value(declared[key], key, v, f"params.{key}", "params", key, adapter=adapter)
        missing = [k for k, spec in declared.items() if spec.required and k not in params]
        if missing:
            raise self.error(f"params.{missing[0]} is required ({declared[missing[0]].allowed()})")
        return dict(params)


def _parse(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"at line (\d+), column (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(where.group(1)) if where else None)
        col = getattr(exc, "colno", None) or (int(where.group(2)) if where else None)
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"{path}:{line}:{col}: not valid TOML: {message}" if line else
                          f"{path}: not valid TOML: {message}") from None


def load_config(path: str | Path) -> CodecConfig:
    """Read one codec configuration from a TOML file and check it against its adapter's declared
    parameters; raises :class:`ConfigError` naming file, line, key and the allowed values."""
    path = Path(path)
    text, doc = _parse(path)
    check = _Checker(path, text, doc)
    unknown = set(doc) - _Checker.TOP
    if unknown:
        key = sorted(unknown)[0]
        raise check.error(f"unknown key {key!r} (known: {', '.join(sorted(_Checker.TOP))})", "", key)
    if not isinstance(doc.get("adapter"), str):
        raise check.error("missing 'adapter' (the code that runs this configuration)", "", "adapter")
    adapter = doc["adapter"]
    try:
        cls = adapter_class(adapter)
    except KeyError as exc:
        raise check.error(str(exc.args[0]), "", "adapter") from None
    except Exception as exc:  # noqa: BLE001 — a third-party module may raise anything on import
        raise check.error(f"adapter {adapter!r} cannot be imported: {type(exc).__name__}: {exc}",
                          "", "adapter") from None
    for key, kind in (("name", str), ("description", str), ("device", str), ("default_run", bool), ("lof_of", str)):
        if key in doc and not isinstance(doc[key], kind):
            raise check.error(f"{key} = {doc[key]!r}: must be {'true or false' if kind is bool else 'a string'}",
                              "", key)
    device = str(doc.get("device", "cpu"))
    if not DEVICE_RE.fullmatch(device):
        raise check.error(f"device = {device!r}: must be cpu, cuda, cuda:N or auto", "", "device")
    name = str(doc.get("name", path.stem))
    problem = name_problem(name)
    if problem:
        where = "name" if "name" in doc else ""
        raise check.error(f"{'name' if where else 'file name'}: {problem}" +
                          ("" if where else " (or give name = \"...\")"), "", where)
    return CodecConfig(
        name=name,
        adapter=adapter,
        params=check.params(cls, adapter),
        rates=check.rates(cls, adapter),
        description=str(doc.get("description", "")),
        device=device,
        default_run=bool(doc.get("default_run", True)),
        source=str(path),
        lof_of=doc.get("lof_of"),
    )


class Configs(dict[str, CodecConfig]):
    """The valid configurations of a folder, by name; ``broken`` holds, by name, the error of each
    configuration that could not be loaded. Looking up a broken name raises its error."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = directory
        self.broken: dict[str, ConfigError] = {}

    def __missing__(self, name: str) -> CodecConfig:
        if name in self.broken:
            raise self.broken[name]
        raise KeyError(name)


def _declared_name(path: Path) -> str:
    """The configuration's name even when the file is broken: ``name = "..."`` if readable and a
    usable name, else the stem (else the file name, for ``bench list`` to show)."""
    try:
        match = re.search(r'^\s*name\s*=\s*"([^"\n]+)"', path.read_text(), re.MULTILINE)
    except (OSError, UnicodeDecodeError):
        match = None
    for name in (match.group(1) if match else None, path.stem):
        if name and name_problem(name) is None:
            return name
    return path.name


#: rate parameters a LOF variant may differ in from its base: the weights file (compared by sha256)
#: and λ, which only LOF's objective reads
_LOF_RATE_KEYS = ("weights", "lambda")


def _weights_sha(point: RatePoint) -> str | None:
    weights = point.params.get("weights")
    sha = weights.get("sha256") if isinstance(weights, dict) else None
    return str(sha).lower() if sha else None


def lof_problem(config: CodecConfig, base: CodecConfig | None) -> str | None:
    """Why ``config`` is not the LOF variant of ``base`` (its ``lof_of``), or None when it is: the
    base must exist, run on the same adapter with LOF off, and have the same rate points with the
    same weights (sha256) and rate parameters (``lambda`` aside: LOF's own λ), so that the two differ
    by the encoder's LOF only."""
    name = config.lof_of
    if base is None:
        return f"lof_of = {name!r}: no configuration of that name (or it is broken)"
    if name == config.name:
        return f"lof_of = {name!r}: a configuration cannot be the LOF variant of itself"
    if base.adapter != config.adapter:
        return f"lof_of = {name!r}: adapter {config.adapter!r} differs from the base's {base.adapter!r}"
    if int(config.params.get("lof_iterations", 0) or 0) <= 0:
        return f"lof_of = {name!r}: this configuration has LOF off (params.lof_iterations must be > 0)"
    if int(base.params.get("lof_iterations", 0) or 0) != 0:
        return (f"lof_of = {name!r}: the base has LOF on (lof_iterations = {base.params['lof_iterations']}); "
                "it must be the configuration without LOF")
    labels, base_labels = [p.label for p in config.rates], [p.label for p in base.rates]
    if labels != base_labels:
        return f"lof_of = {name!r}: rate points {labels} differ from the base's {base_labels}"
    for point, other in zip(config.rates, base.rates):
        if _weights_sha(point) != _weights_sha(other):
            return (f"lof_of = {name!r}: rate point {point.label!r} uses weights sha256 {_weights_sha(point)} "
                    f"but the base uses {_weights_sha(other)}")
        mine = {k: v for k, v in point.params.items() if k not in _LOF_RATE_KEYS}
        theirs = {k: v for k, v in other.params.items() if k not in _LOF_RATE_KEYS}
        if mine != theirs:
            return f"lof_of = {name!r}: rate point {point.label!r} has parameters {mine}, the base {theirs}"
    return None


def _check_lof_pairs(configs: Configs) -> None:
    """Move every configuration whose ``lof_of`` does not name a fitting base to ``broken``."""
    for name, config in list(configs.items()):
        if config.lof_of is None:
            continue
        problem = lof_problem(config, dict.get(configs, config.lof_of))
        if problem:
            path = Path(config.source)
            try:
                line = _line_of(path.read_text(), "", "lof_of")
            except (OSError, UnicodeDecodeError):
                line = None
            configs.broken[name] = ConfigError(f"{path}{f':{line}' if line else ''}: {problem}")
            del configs[name]


def load_configs(directory: str | Path | None = None) -> Configs:
    """All configurations in ``directory`` (default :func:`default_codecs_dir`), by name.

    A file that cannot be loaded does not stop the others: it lands in ``.broken`` with its error
    and is refused only when selected. A missing folder is a :class:`ConfigError`.
    """
    directory = Path(directory) if directory else default_codecs_dir()
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such folder of codec configurations "
                          "(set --codecs-dir or $BENCH_CODECS_DIR)")
    loaded: dict[str, list[tuple[Path, CodecConfig | ConfigError]]] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            config: CodecConfig | ConfigError = load_config(path)
        except ConfigError as exc:
            config = exc
        name = config.name if isinstance(config, CodecConfig) else _declared_name(path)
        loaded.setdefault(name, []).append((path, config))
    configs = Configs(directory)
    for name, found in loaded.items():
        if len(found) > 1:
            paths = " and ".join(str(path) for path, _ in found)
            configs.broken[name] = ConfigError(f"{found[-1][0]}: codec name {name!r} defined twice ({paths})")
        elif isinstance(found[0][1], ConfigError):
            configs.broken[name] = found[0][1]
        else:
            configs[name] = found[0][1]
    _check_lof_pairs(configs)
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
