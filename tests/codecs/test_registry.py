import pytest

from bench.codecs import registry
from bench.codecs.base import Encoded


def write(tmp_path, name, text):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_ladder_and_rates_forms(tmp_path):
    ladder = registry.load_config(write(tmp_path, "a", 'adapter = "jpeg"\n[ladder]\nparam = "quality"\nvalues = [10, 50]\n'))
    assert [r.label for r in ladder.rates] == ["quality=10", "quality=50"] and ladder.rates[1].params == {"quality": 50}
    rates = registry.load_config(write(tmp_path, "b", 'adapter = "x"\n[[rates]]\nlabel = "q1"\ncheckpoint = "a.pth"\nlambda = 0.0018\n'))
    assert rates.name == "b" and rates.rate("q1").params == {"checkpoint": "a.pth", "lambda": 0.0018}
    with pytest.raises(KeyError, match="no rate point 'q9'.*known: q1"):
        rates.rate("q9")


def test_bad_configurations_are_explained(tmp_path):
    with pytest.raises(ValueError, match="missing 'adapter'"):
        registry.load_config(write(tmp_path, "a", "[params]\n"))
    with pytest.raises(ValueError, match="not valid TOML"):
        registry.load_config(write(tmp_path, "b", "adapter = \n"))
    with pytest.raises(ValueError, match="unique"):
        registry.load_config(write(tmp_path, "c", 'adapter="x"\n[[rates]]\nlabel="a"\n[[rates]]\nlabel="a"\n'))


def test_duplicate_names_across_files(tmp_path):
    write(tmp_path, "one", 'name = "same"\nadapter = "jpeg"\n')
    write(tmp_path, "two", 'name = "same"\nadapter = "jpeg"\n')
    with pytest.raises(ValueError, match="defined twice"):
        registry.load_configs(tmp_path)


def test_unknown_adapter_is_unavailable_with_reason(tmp_path):
    config = registry.load_config(write(tmp_path, "a", 'adapter = "nope"\n'))
    assert "unknown codec adapter 'nope'" in registry.availability(config)
    config = registry.load_config(write(tmp_path, "b", 'adapter = "no_such_module:Codec"\n'))
    assert "cannot be imported" in registry.availability(config)


def test_adapter_by_import_path(tmp_path):
    config = registry.load_config(write(tmp_path, "a", 'adapter = "bench.codecs.pillow_codecs:WebpCodec"\n'))
    assert registry.create(config).adapter == "webp"


def test_every_shipped_configuration_loads():
    configs = registry.load_configs()
    assert {"jpeg-420", "jpeg-444", "webp", "avif", "avif-10bit", "jpegxl", "jpeg2000", "heic", "vtm"} <= set(configs)
    for config in configs.values():
        assert config.rates, config.name
        assert registry.adapter_class(config.adapter).adapter == config.adapter


def test_encoded_normalisation():
    assert Encoded.of(b"ab").data == b"ab"
    assert Encoded.of(Encoded(b"x", {"estimated_bits": 8})).extras == {"estimated_bits": 8}
    with pytest.raises(TypeError):
        Encoded.of("text")
