import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.codecs import registry
from bench.codecs.base import CodecConfig, Encoded
from bench.errors import ConfigError
from tests.conftest import PROJECT, python_module


def write(tmp_path, name, text):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_ladder_and_rates_forms(tmp_path):
    ladder = registry.load_config(write(tmp_path, "a", 'adapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = [10, 50]\n'))
    assert [r.label for r in ladder.rates] == ["quality=10", "quality=50"] and ladder.rates[1].params == {"quality": 50}
    rates = registry.load_config(write(tmp_path, "b", 'adapter = "mlicpp"\n[[rates]]\nlabel = "q1"\n'
                                                      'weights = { path = "a.pth", lambda = 0.0018 }\n'))
    assert rates.name == "b" and rates.rate("q1").params == {"weights": {"path": "a.pth", "lambda": 0.0018}}
    with pytest.raises(KeyError, match="no rate point 'q9'.*known: q1"):
        rates.rate("q9")


def test_bad_configurations_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="missing 'adapter'"):
        registry.load_config(write(tmp_path, "a", "[params]\n"))
    with pytest.raises(ConfigError, match=r"b\.toml:1:11: not valid TOML"):
        registry.load_config(write(tmp_path, "b", "adapter = \n"))
    with pytest.raises(ConfigError, match="unique"):
        registry.load_config(write(tmp_path, "c", 'adapter="mlicpp"\n[[rates]]\nlabel="a"\n[[rates]]\nlabel="a"\n'))


def test_duplicate_names_across_files(tmp_path):
    write(tmp_path, "one", 'name = "same"\nadapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = [50]\n')
    write(tmp_path, "two", 'name = "same"\nadapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = [60]\n')
    configs = registry.load_configs(tmp_path)
    assert "same" not in configs
    with pytest.raises(ConfigError, match="defined twice.*one.toml and .*two.toml"):
        configs["same"]


def test_unknown_adapter_is_refused_with_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"a\.toml:2: unknown codec adapter 'nope'"):
        registry.load_config(write(tmp_path, "a", '# comment\nadapter = "nope"\n'))
    with pytest.raises(ConfigError, match=r"b\.toml:1: adapter 'no_such_module:Codec' cannot be imported"):
        registry.load_config(write(tmp_path, "b", 'adapter = "no_such_module:Codec"\n'))
    # a configuration built in code (not loaded) still gets the reason from availability()
    config = CodecConfig("x", "nope")
    assert "unknown codec adapter 'nope'" in registry.availability(config)


def test_adapter_by_import_path(tmp_path):
    config = registry.load_config(write(tmp_path, "a", 'adapter = "bench.codecs.pillow_codecs:WebpCodec"\n'
                                                       '[ladder]\nparam = "quality"\nvalues = [50]\n'))
    assert registry.create(config).adapter == "webp"


def test_every_shipped_configuration_loads():
    configs = registry.load_configs()
    assert configs.broken == {}
    assert {"jpeg-420", "jpeg-444", "webp", "avif", "avif-10bit", "jpegxl", "jpeg2000", "heic", "vtm"} <= set(configs)
    for config in configs.values():
        assert config.rates, config.name
        assert registry.adapter_class(config.adapter).adapter == config.adapter


# --- issue 8: rates and parameters are checked against the adapter's declared ranges ---------------

BAD_VALUES = [  # adapter, ladder param, TOML value, words of the allowed range
    ("jpeg", "quality", "-5", "an integer in 0..100"),
    ("jpeg", "quality", "1000", "an integer in 0..100"),
    ("jpeg", "quality", '"high"', "an integer in 0..100"),
    ("jpeg", "quality", "50.5", "an integer in 0..100"),
    ("jpeg2000", "bpp", "-5", "a number > 0 and <= 24"),
    ("jpeg2000", "bpp", "nan", "a number > 0 and <= 24"),
    ("jpegxl", "distance", "-5", "a number in 0..25"),
    ("jpegxl", "distance", "1000", "a number in 0..25"),
    ("heic", "quality", "-5", "an integer in 0..100"),
    ("webp", "quality", "101", "a number in 0..100"),
    ("avif", "quality", "-1", "an integer in 0..100"),
    ("avif10", "level", "101", "an integer in 0..100"),
    ("vtm", "qp", "64", "an integer in 0..63"),
    ("compressai", "quality", "9", "an integer in 1..8"),
    ("msp", "lambda", "0", "a number > 0"),
]


@pytest.mark.parametrize("adapter, param, value, allowed", BAD_VALUES)
def test_out_of_range_rate_is_refused_naming_file_key_and_range(tmp_path, adapter, param, value, allowed):
    required = {"compressai": 'architecture = "mbt2018"', "msp": 'profile = "msp-base"'}.get(adapter, "")
    path = write(tmp_path, "bad", f'adapter = "{adapter}"\n[ladder]\nparam = "{param}"\nvalues = [{value}]\n'
                                  f'[params]\n{required}\n')
    with pytest.raises(ConfigError) as caught:
        registry.load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ladder.values[0] = ")
    assert f"{param} must be {allowed}" in message and f"adapter {adapter!r}" in message


def test_bad_fixed_parameters_and_rate_entries_are_refused(tmp_path):
    vtm = write(tmp_path, "vtm", 'adapter = "vtm"\n[params]\ncfg = "x.cfg"\nbit_depth = 12\n'
                                 '[ladder]\nparam = "qp"\nvalues = [22]\n')
    with pytest.raises(ConfigError, match=r"vtm\.toml:4: params\.bit_depth = 12: bit_depth must be one of 8, 10"):
        registry.load_config(vtm)
    typo = write(tmp_path, "typo", 'adapter = "jpeg"\n[params]\nsubsampling = "4:2:0"\noptimise = true\n'
                                   '[ladder]\nparam = "quality"\nvalues = [50]\n')
    with pytest.raises(ConfigError, match=r"typo\.toml:4: params\.optimise: not a parameter of adapter 'jpeg'"):
        registry.load_config(typo)
    rates = write(tmp_path, "rates", 'adapter = "jpeg2000"\n[[rates]]\nlabel = "a"\nbpp = 0.5\n'
                                     '[[rates]]\nlabel = "b"\nbpp = -5\n')
    with pytest.raises(ConfigError, match=r"rates\.toml:7: rates\[1\]\.bpp = -5: bpp must be a number > 0"):
        registry.load_config(rates)
    wrong_param = write(tmp_path, "param", 'adapter = "jpeg"\n[ladder]\nparam = "qualty"\nvalues = [50]\n')
    with pytest.raises(ConfigError, match=r"param\.toml:3: ladder\.param = 'qualty': adapter 'jpeg' takes .*quality"):
        registry.load_config(wrong_param)


def test_empty_or_missing_ladder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"empty\.toml:4: ladder\.values is empty"):
        registry.load_config(write(tmp_path, "empty", 'adapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = []\n'))
    with pytest.raises(ConfigError, match=r"none\.toml: no rate ladder"):
        registry.load_config(write(tmp_path, "none", 'adapter = "jpeg"\n[params]\noptimize = true\n'))


# --- issue 8: one broken configuration does not break the others ------------------------------------

BOOM = "raise RuntimeError('boom at import')\n"


def _folder_with_broken_configs(tmp_path: Path) -> Path:
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    (codecs / "jpeg-420.toml").write_text((PROJECT / "codecs" / "jpeg-420.toml").read_text())
    (codecs / "broken.toml").write_text('adapter = "jpeg"\n[ladder\nparam = "quality"\n')
    (codecs / "q1000.toml").write_text('adapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = [50, 1000]\n')
    (tmp_path / "boom_adapter.py").write_text(BOOM)
    (codecs / "boom.toml").write_text('adapter = "boom_adapter:Codec"\n[ladder]\nparam = "q"\nvalues = [1]\n')
    return codecs


def test_broken_siblings_are_recorded_not_raised(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    configs = registry.load_configs(_folder_with_broken_configs(tmp_path))
    assert set(configs) == {"jpeg-420"} and set(configs.broken) == {"broken", "q1000", "boom"}
    broken, boom = str(configs.broken["broken"]), str(configs.broken["boom"])
    assert broken.startswith(f"{tmp_path}/codecs/broken.toml:2:") and "not valid TOML" in broken
    assert "boom.toml:1: adapter 'boom_adapter:Codec' cannot be imported: RuntimeError: boom at import" in boom
    with pytest.raises(ConfigError, match=r"q1000\.toml:4: ladder\.values\[1\] = 1000"):
        configs["q1000"]
    with pytest.raises(KeyError):
        configs["absent"]


def test_missing_codecs_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        registry.load_configs(tmp_path / "nowhere")


def bench(*args: str, cwd: Path, columns: int = 120) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` run from ``cwd``, whose modules (test adapters) are importable."""
    return python_module("bench", *args, env={"COLUMNS": str(columns)}, cwd=cwd, pythonpath=(cwd,), timeout=300)


def test_list_shows_broken_configurations_and_fits_the_terminal(tmp_path):
    codecs = _folder_with_broken_configs(tmp_path)
    (codecs / "mlicpp-untrained.toml").write_text((PROJECT / "codecs" / "mlicpp-untrained.toml").read_text())
    done = bench("--codecs-dir", str(codecs), "list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr  # warnings are footnotes now
    out = done.stdout
    assert "unavailable" in out and "broken.toml:2:" in out and "q1000.toml:4:" in out and "RuntimeError" in out
    row = next(line for line in out.splitlines() if "mlicpp-untrained" in line)
    assert row.split("│")[4].strip() == "no" and "UNTRAINED" in out  # untrained: in the table and a footnote
    assert "libjpeg_turbo" in out  # the healthy sibling is listed with its version
    assert max(len(line) for line in out.splitlines()) <= 120


def test_run_refuses_a_broken_selection_and_ignores_broken_siblings(tmp_path):
    codecs = _folder_with_broken_configs(tmp_path)
    refused = bench("--codecs-dir", str(codecs), "run", "--codecs", "q1000", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().count("\n") == 0 and "q1000.toml:4:" in refused.stderr
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(images / "noise.png")
    ran = bench("--codecs-dir", str(codecs), "run", "--codecs", "jpeg-420", "--dataset", str(images),
                "--ladder", "none", "--rates", "quality=50", "--warmup", "0", "--repeats", "1", "--jobs", "1",
                "--quiet",
                "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "1 cells in" in ran.stdout + ran.stderr and "0 errors" in ran.stdout + ran.stderr


def test_encoded_normalisation():
    assert Encoded.of(b"ab").data == b"ab"
    assert Encoded.of(Encoded(b"x", {"estimated_bits": 8})).extras == {"estimated_bits": 8}
    with pytest.raises(TypeError):
        Encoded.of("text")


# --- LOF pairing (lof_of): declared once, as data, checked when the folder is loaded -----------------

def _msp(name: str, *, lof: int = 0, sha: str = "ab" * 32, extra: str = "", rates: tuple[str, ...] = ("a", "b"),
         adapter: str = "msp") -> str:
    """A small MSP configuration text (weights by sha256 only: loading a folder reads no weights file)."""
    head = f'{extra}adapter = "{adapter}"\n[params]\nprofile = "msp-tiny"\n' + (f"lof_iterations = {lof}\n" if lof else "")
    return head + "".join(f'[[rates]]\nlabel = "{r}"\nlambda = 0.01\nweights = {{ path = "w-{r}.pt", sha256 = "{sha}" }}\n'
                          for r in rates)


def test_shipped_lof_configurations_name_their_base(codecs_dir):
    configs = registry.load_configs(codecs_dir)
    pairs = {name: c.lof_of for name, c in configs.items() if c.lof_of}
    assert pairs == {"msp-tiny-lof": "msp-tiny", "mbt2018-tiny-lof": "mbt2018-tiny", "msp-base-lof": "msp-base",
                     "mbt2018-mean-lof": "mbt2018-mean", "mlicpp-lof": "mlicpp-untrained"}
    assert not configs.broken
    from bench.cells import config_hash  # lof_of is metadata: stored rows keep their configuration hash

    assert config_hash(configs["msp-tiny-lof"]) == "ed3502c27e3182f9"


@pytest.mark.parametrize("base_text, lof_text, problem", [
    (None, _msp("x", lof=3, extra='lof_of = "base"\n'), r"lof\.toml:1: lof_of = 'base': no configuration of that name"),
    (_msp("base"), _msp("x", lof=3, extra='lof_of = "base"\n', sha="cd" * 32),
     r"rate point 'a' uses weights sha256 cdcd.* but the base uses abab"),
    (_msp("base", lof=5), _msp("x", lof=3, extra='lof_of = "base"\n'), r"the base has LOF on \(lof_iterations = 5\)"),
    (_msp("base"), _msp("x", extra='lof_of = "base"\n'), r"this configuration has LOF off"),
    (_msp("base", rates=("a",)), _msp("x", lof=3, extra='lof_of = "base"\n'), r"rate points \['a', 'b'\] differ"),
    ('adapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = [50]\n', _msp("x", lof=3, extra='lof_of = "base"\n'),
     r"adapter 'msp' differs from the base's 'jpeg'"),
    (None, _msp("x", lof=3, extra='lof_of = "lof"\n'), r"cannot be the LOF variant of itself"),
])
def test_a_bad_lof_of_is_refused_naming_the_problem(tmp_path, base_text, lof_text, problem):
    if base_text is not None:
        write(tmp_path, "base", base_text)
    write(tmp_path, "lof", lof_text)
    configs = registry.load_configs(tmp_path)
    assert "lof" not in configs and "lof" in configs.broken  # refused when selected, the others load
    with pytest.raises(ConfigError, match=problem):
        configs["lof"]
    if base_text is not None:
        assert "base" in configs


def test_a_good_lof_of_loads_and_lambda_may_differ(tmp_path):
    write(tmp_path, "base", _msp("base").replace("lambda = 0.01", "lambda = 0.02"))
    write(tmp_path, "lof", _msp("x", lof=3, extra='lof_of = "base"\n'))
    configs = registry.load_configs(tmp_path)
    assert configs["lof"].lof_of == "base" and not configs.broken
    with pytest.raises(ConfigError, match=r"lof_of = 3: must be a string"):
        registry.load_config(write(tmp_path, "bad", _msp("x", lof=3, extra="lof_of = 3\n")))
