"""Decode anywhere: a stream encoded with 2 threads decodes to the same pixels with 1 and with 2
threads in fresh processes, for every learned codec (issue 11 §3), over several images and sizes.

The codecs run with their repository configurations (``codecs/*.toml``, first rate point; the
portable path is their default), untrained: MLIC++ with the output gains of
``mlicpp-untrained`` (so σ is not stuck at its floor and symbols are not all zero), the others
with their seeded random init. Decoding runs through ``python -m bench.crossdecode`` — the same
fresh-process decoder as ``bench run --cross-decode`` — which reports the thread count it really
decoded with; the test checks that too, so a decoder that silently pins the encoder's count fails.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.codecs import registry
from bench.crossdecode import cross_check
from tests.conftest import PROJECT, photo_like

pytest.importorskip("torch")
pytest.importorskip("compressai")

LEARNED = ("mlicpp-untrained", "msp-fast", "msp-base", "mbt2018")


def config_of(name: str, **params):
    config = registry.load_config(PROJECT / "codecs" / f"{name}.toml")
    return dataclasses.replace(config, rates=config.rates[:1], params={**config.params, **params})


def images(sizes: list[tuple[int, int]], both: bool = True) -> list[np.ndarray]:
    """Per size: a seeded photo-like image and an off-grid crop of another, larger one (the seeds
    differ per size, so every image is different); ``both=False``: one per size, alternating."""
    out = []
    for i, (h, w) in enumerate(sizes):
        if both or i % 2 == 0:
            out.append(photo_like(h, w, 101 + i))
        if both or i % 2 == 1:
            out.append(np.ascontiguousarray(photo_like(h + 40, w + 56, 303 + i)[37:37 + h, 53:53 + w]))
    return out


def assert_decodes_alike(name: str, sizes: list[tuple[int, int]], tmp_path) -> None:
    # MLIC++ (83 M parameters) costs ~4× the others per image: one image per size keeps the time modest
    result = cross_check(config_of(name), images(sizes, both=not name.startswith("mlicpp")), tmp_path,
                         decode_threads=(1, 2), encode_threads=2)
    assert result["ran"] == {1: [1], 2: [2]}, f"{name}: the fresh decoders ran with {result['ran']} threads"
    assert result["mismatches"] == {1: [0] * len(result["bytes"]), 2: [0] * len(result["bytes"])}, \
        f"{name}: uint8 values differing from the encoder's decode, per image: {result['mismatches']}"


@pytest.mark.timeout(1200)  # fresh processes load the models again; slow on a loaded machine
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", LEARNED)
def test_stream_decodes_alike_at_1_and_2_threads(name, tmp_path):
    """64×96 and 128×192: a seeded image and an off-grid crop of another at each (MLIC++: one)."""
    assert_decodes_alike(name, [(64, 96), (128, 192)], tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", LEARNED)
def test_stream_decodes_alike_at_1_and_2_threads_large(name, tmp_path):
    """The same at 256×384 and 512×768 (more positions, more chances for a flip)."""
    assert_decodes_alike(name, [(256, 384), (512, 768)], tmp_path)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_portable_flag_must_match(tmp_path):
    """A stream coded on the float32 path is refused by a portable decoder, naming the fix."""
    from bench.errors import CodecError

    image = photo_like(64, 96, 7)
    float32 = registry.create(config_of("msp-fast", portable=False), device="cpu")
    data = float32.encode(image, float32.config.rates[0]).data
    portable = registry.create(config_of("msp-fast"), device="cpu")
    with pytest.raises(CodecError, match="portable = false"):
        portable.decode(data)
