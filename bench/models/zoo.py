"""CompressAI zoo models as complete codecs: weights, real bitstreams, and LOF support.

* Weights: a local file the caller found and checked (the rate point's ``weights`` description,
  :mod:`bench.models.weights`). Without weights the model is *untrained*: random init from a
  fixed seed, made to code realistic symbol statistics (:mod:`bench.models.untrained`), valid
  for complexity measurements only.
* Bitstream: CompressAI's own ``compress()`` strings in the checked frame of
  :mod:`bench.models.bitstream` (magic ``b"CAZ1"``), header::

      version u8 | architecture id u32 (CRC-32 of "architecture:metric") | quality u8 |
      height u32 | width u32 | shape[0] u16 | shape[1] u16   (the shape compress() returns) |
      flags u8 (bit 0: portable — everything but g_a in float64, :mod:`bench.models.portable`,
      so the image is the same at any thread count and on any device)

  then the strings of ``compress()["strings"]`` in order (y, then z for hyperprior models).
  Images are padded (edge replication) to a multiple of 64 and the decoder crops.
* :class:`ZooModel` is a :class:`bench.models.compressai_net.CompressAINet` (padding, timed
  decode, portable path, LOF's rate and transforms, complexity) and implements
  :class:`bench.models.lof.LatentOptimizable`. ``encode_latent`` runs the model's own
  ``compress()`` with g_a replaced by the fixed latent, so the bitstream is exactly what
  CompressAI's ``decompress()`` expects; hyper-latents z are recomputed from y.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch
from compressai.models import (
    FactorizedPrior,
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)
from compressai.zoo.image import cfgs, model_architectures, model_urls
from torch import Tensor, nn

from bench.errors import CodecError
from bench.models import bitstream
from bench.models.compressai_net import PAD, CompressAINet
from bench.models.entropy import restore_likelihood_bounds
from bench.models.portable import check_flags, flags_byte
from bench.models.untrained import calibrate_latent_scale, init_gaussian_head, last_conv, probe_image
from bench.models.weights import load_weights_file

MAGIC = b"CAZ1"
VERSION = 2  # 2: flags byte
_HEADER = struct.Struct(">BIBIIHHB")
MAX_SIDE = 1 << 16

#: Architectures this wrapper supports (CompressAI zoo names).
ARCHITECTURES = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
                 "cheng2020-anchor", "cheng2020-attn")
#: λ of CompressAI's MSE-trained zoo models by quality (loss R + λ·255²·MSE).
MSE_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.025, 6: 0.0483, 7: 0.0932, 8: 0.18}


def check_architecture(architecture: str, metric: str, quality: int | None = None) -> None:
    """Raise ``ValueError`` naming the valid choices if the combination does not exist."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown CompressAI architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")
    if metric not in ("mse", "ms-ssim"):
        raise ValueError(f"metric must be 'mse' or 'ms-ssim', got {metric!r}")
    if quality is not None and quality not in cfgs[architecture]:
        raise ValueError(f"{architecture} has qualities {sorted(cfgs[architecture])}, not {quality!r}")


def weights_url(architecture: str, metric: str, quality: int) -> str:
    """CompressAI's download URL of these weights (its file name carries a sha256 prefix)."""
    check_architecture(architecture, metric, quality)
    return model_urls[architecture][metric][quality]


def architecture_id(architecture: str, metric: str) -> int:
    return zlib.crc32(f"{architecture}:{metric}".encode())


class ZooModel(CompressAINet):
    """One CompressAI zoo network at one quality, as a codec and a :class:`LatentOptimizable`."""

    def __init__(self, net: nn.Module, architecture: str, metric: str, quality: int, trained: bool,
                 portable: bool = False):
        super().__init__(net, PAD, "replicate", portable)
        self.architecture, self.metric, self.quality, self.trained = architecture, metric, quality, trained

    @property
    def lam(self) -> float:
        """λ the MSE model was trained for (LOF uses it)."""
        if self.metric != "mse":
            raise ValueError(f"LOF needs an MSE-trained model; {self.architecture} is {self.metric}")
        return MSE_LAMBDAS[self.quality]

    # --- real coding -----------------------------------------------------------------------------
    def encode_latent(self, y: Tensor, size: tuple[int, int]) -> bytes:
        """The complete bitstream for latent ``y`` of an image of ``size`` (CompressAI compress())."""
        if y.shape[0] != 1:
            raise ValueError("one image at a time (batch size 1)")
        out = self.compress_latent(y)
        strings = [group[0] for group in out["strings"]]
        shape = tuple(int(d) for d in out["shape"])
        header = _HEADER.pack(VERSION, architecture_id(self.architecture, self.metric), self.quality, *size, *shape,
                              flags_byte(self.portable))
        return bitstream.pack(MAGIC, header, strings)

    def compress(self, x: Tensor) -> bytes:
        with torch.no_grad():
            return self.encode_latent(self.analysis(x), tuple(x.shape[-2:]))

    def decode_image(self, data: bytes) -> Tensor:
        """Decode a bitstream of this model into a 1×3×H×W image in [0, 1]."""
        header, strings = read_header(data)
        _, arch, quality, h, w, s0, s1, flags = header
        check_flags(flags, self.portable, "CompressAI")
        if arch != architecture_id(self.architecture, self.metric) or quality != self.quality:
            raise CodecError(f"CompressAI: bitstream is not from {self.architecture}/{self.metric} q{self.quality}")
        n_strings = 1 if isinstance(self.net, FactorizedPrior) else 2
        factor = 16 if isinstance(self.net, FactorizedPrior) else 64
        expected = (-(-h // PAD) * PAD // factor, -(-w // PAD) * PAD // factor)
        if len(strings) != n_strings or (s0, s1) != expected:
            raise CodecError(f"CompressAI: header shape {(s0, s1)} / {len(strings)} strings do not fit a {h}×{w} image")
        x_hat = self.decompress_timed([[s] for s in strings], (s0, s1))
        return x_hat[..., :h, :w]

    decompress = decode_image


def read_header(data: bytes) -> tuple[tuple[int, ...], list[bytes]]:
    """(version, architecture id, quality, height, width, shape0, shape1, flags); ``CodecError`` if bad."""
    raw, strings = bitstream.unpack(data, MAGIC, "CompressAI")
    fields = bitstream.unpack_fields(raw, _HEADER, VERSION, "CompressAI")
    if not (0 < fields[3] <= MAX_SIDE and 0 < fields[4] <= MAX_SIDE):
        raise CodecError(f"CompressAI: invalid image size {fields[3]}×{fields[4]} in header")
    return fields, strings


def _mask_context(net: nn.Module) -> None:
    """Apply the causal mask to the masked conv's weights (CompressAI's decoder uses them raw)."""
    ctx = getattr(net, "context_prediction", None)
    if ctx is not None and hasattr(ctx, "mask"):
        with torch.no_grad():
            ctx.weight.mul_(ctx.mask)


def _init_untrained(net: nn.Module) -> None:
    """Realistic symbol statistics for random weights (see :mod:`bench.models.untrained`)."""
    calibrate_latent_scale(net.g_a, last_conv(net.g_a), probe_image())
    M = net.M
    if isinstance(net, JointAutoregressiveHierarchicalPriors):
        init_gaussian_head(net.entropy_parameters[-1], sigma=slice(0, M), mu=slice(M, 2 * M))
    elif isinstance(net, MeanScaleHyperprior):
        init_gaussian_head(net.h_s[-1], sigma=slice(0, M), mu=slice(M, 2 * M))
    elif isinstance(net, ScaleHyperprior):
        init_gaussian_head(net.h_s[-2], sigma=slice(0, M), mu=None)


def load_model(
    architecture: str,
    quality: int,
    metric: str = "mse",
    weights: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    portable: bool = False,
    shape: tuple[int, int] | None = None,
) -> ZooModel:
    """A zoo model with the weights file ``weights`` (checked by the caller), or if None a
    seeded untrained one of width ``shape`` = (N, M) (default: the zoo's for ``quality``)."""
    check_architecture(architecture, metric, quality)
    cls = model_architectures[architecture]
    if weights is not None:
        from compressai.zoo import load_state_dict

        state = load_state_dict(load_weights_file(weights, "CompressAI weights file"))
        net = cls.from_state_dict(state)
        restore_likelihood_bounds(net)  # a float16 file holds them as 0
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + quality)
            net = cls(*(shape or cfgs[architecture][quality]))
            _mask_context(net)
            _init_untrained(net)
    _mask_context(net)
    net.update(force=True)
    return ZooModel(net.to(device), architecture, metric, quality, trained=weights is not None, portable=portable)
