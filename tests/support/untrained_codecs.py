"""A real learned codec on random weights, to test how untrained codecs are reported.

CompressAI's ``bmshj2018_factorized`` built with ``pretrained=False`` (seeded, so every process
builds the same weights): real analysis/synthesis transforms and real range coding of ŷ, so the
bytes and timings are genuine — but the weights are untrained, so its rate-distortion numbers are
meaningless. ``trained`` says so, as a learned adapter on random weights must.
"""

from __future__ import annotations

import struct

import numpy as np

from bench.codecs.base import Codec, RatePoint
from bench.errors import CodecError

_HEADER = struct.Struct("<HHHHI")  # height, width, latent height, latent width, length of ŷ's string


class RandomWeightsFactorized(Codec):
    adapter = "random-factorized"

    def __init__(self, config, device=None):
        super().__init__(config, device)
        self._models: dict[int, object] = {}

    @property
    def trained(self) -> bool:
        return False

    def library_version(self) -> str:
        import compressai

        return f"compressai {compressai.__version__} bmshj2018-factorized, random weights (seed 0)"

    def _model(self, quality: int):
        if quality not in self._models:
            import torch
            from compressai.zoo import bmshj2018_factorized

            torch.manual_seed(0)
            model = bmshj2018_factorized(quality=quality, pretrained=False).eval()
            model.update(force=True)  # CDF tables of the (random) factorized prior
            self._models[quality] = model
        return self._models[quality]

    def encode(self, image: np.ndarray, rate: RatePoint) -> bytes:
        import torch

        h, w = image.shape[:2]
        if h % 16 or w % 16:
            raise CodecError(f"{w}×{h}: this test codec needs sides divisible by 16")
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            out = self._model(int(rate.params["quality"])).compress(x)
        (string,), (lh, lw) = out["strings"][0], out["shape"]
        return bytes([int(rate.params["quality"])]) + _HEADER.pack(h, w, lh, lw, len(string)) + string

    def decode(self, data: bytes) -> np.ndarray:
        import torch

        try:
            quality = data[0]
            h, w, lh, lw, n = _HEADER.unpack_from(data, 1)
            string = data[1 + _HEADER.size:1 + _HEADER.size + n]
        except (IndexError, struct.error) as exc:
            raise CodecError(f"truncated stream: {exc}") from exc
        with torch.no_grad():
            x_hat = self._model(quality).decompress([[string]], (lh, lw))["x_hat"]
        pixels = (x_hat[0].clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return np.ascontiguousarray(pixels[:h, :w])
