"""The MSP model: g_a/g_s transforms (ELIC-style or GDN) + multi-scale progressive (MSP) probability model.

Re-implementation for lic-bench of the framework of H. Zhang, F. Cricri, H. R. Tavakoli,
E. Aksu, M. M. Hannuksela, "Leveraging progressive model and overfitting for efficient learned
image compression" (arXiv 2210.04112). No code of the paper is public and only its abstract was
read: the structure below is our design (``shared/spec/msp_lof.md``), not a reproduction.

Coding (S pyramid levels, G channel groups, see :mod:`bench.models.msp.plan`)::

    y = g_a(pad₁₆(x))                     latent, M × h × w
    Y_S, {D_s, R_s, B_s}  = polyphase pyramid of ŷ (Y_0 = ŷ)
    Y_S        : factorised prior (EntropyBottleneck) for group 0; Gaussian from earlier groups
    s = S−1…0  : D_s | R_s,B_s (or R_s | B_s) with Gaussian (μ, σ) = ctx([Ŷ_{s+1}, F_{s+1}, …])
                 Ŷ_s = merge(Ŷ_{s+1}, D̂_s, R̂_s, B̂_s);  F_s = fuse(Ŷ_s, F_{s+1})
    x̂ = crop(g_s(Ŷ_0))

No hyperprior conditions the pyramid (an open choice of the spec; the coarsest level costs 1/4^S
of the elements). Sequential entropy-decoding steps: (1 + k·S)·G, whatever the image size.

Bitstream (inside :mod:`bench.models.bitstream`'s checked frame, magic ``b"MSP1"``), header::

    version u8 | architecture fingerprint u32 | rate index u8 | S u8 | steps/level u8 | G u8 |
    height u32 | width u32 | flags u8 (bit 0: portable float64 decoder path)

followed by one rANS string per sequential step, in :func:`~bench.models.msp.plan.build_plan`
order. Encoder and decoder run the same traversal, so the decoder's ŷ and x̂ are bit-identical to
the encoder's. On the portable path (default, :mod:`bench.models.portable`) context nets,
feature fusion and g_s run in float64 and the stream decodes alike at any thread count and on
any device; on the float32 path (``portable = false``) it may not.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import Tensor, nn

from bench.errors import CodecError
from bench.models import bitstream
from bench.models.decodeparts import DecodeParts
from bench.models.entropy import total_bits
from bench.models.msp import pyramid
from bench.models.msp.coders import DecoderCoder, EncoderCoder, LikelihoodCoder
from bench.models.msp.context import ContextNet, FeatureFuse, context_in_channels
from bench.models.msp.plan import Step, build_plan, group_sizes, group_slices, part_sets
from bench.models.msp.profiles import MSPProfile
from bench.models.msp.transforms import STRIDE, TRANSFORMS
from bench.models.portable import check_flags, default_dtype, flags_byte, make_portable
from bench.models.quantizers import Quantizer, hard_round, ste_round

MAGIC = b"MSP1"
VERSION = 2  # 2: flags byte (portable path)
_HEADER = struct.Struct(">BIBBBBIIB")
MAX_SIDE = 1 << 16


@dataclass(frozen=True)
class MSPHeader:
    """Decoded MSP header fields."""

    fingerprint: int
    rate_index: int
    levels: int
    steps_per_level: int
    groups: int
    height: int
    width: int
    flags: int = 0


def read_header(data: bytes) -> tuple[MSPHeader, list[bytes]]:
    """Parse and check an MSP bitstream; ``CodecError`` if it is corrupt or not MSP."""
    raw, strings = bitstream.unpack(data, MAGIC, "MSP")
    _, fp, rate, s, k, g, h, w, flags = bitstream.unpack_fields(raw, _HEADER, VERSION, "MSP")
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise CodecError(f"MSP: invalid image size {h}×{w} in header")
    return MSPHeader(fp, rate, s, k, g, h, w, flags), strings


class MSPModel(CompressionModel):
    """ELIC-style autoencoder with the MSP pyramid probability model (see module docstring)."""

    def __init__(self, profile: MSPProfile):
        super().__init__()
        self.profile = profile.validate()
        p = profile
        make_g_a, make_g_s = TRANSFORMS[p.transform]
        self.g_a = make_g_a(p.N, p.M)
        self.g_s = make_g_s(p.N, p.M)
        self.plan: list[Step] = build_plan(p.levels, p.steps_per_level, p.groups)
        self.groups = group_slices(p.M, p.groups)
        sizes = group_sizes(p.M, p.groups)
        self.entropy_bottleneck = EntropyBottleneck(sizes[0])  # Y_S, group 0
        self.gaussian_conditional = GaussianConditional(None)
        self.context = nn.ModuleDict(
            {
                st.name: ContextNet(
                    context_in_channels(st, self.plan, p.M, p.feature_channels, sizes),
                    sizes[st.group] * len(st.parts),
                    p.context_width,
                )
                for st in self.plan
                if not st.factorized
            }
        )
        # F_s for s = S … 1 (F_0 is never needed: level 0 is decoded last).
        self.features = nn.ModuleDict(
            {f"F{s}": FeatureFuse(p.M, p.feature_channels, has_coarser=s < p.levels) for s in range(1, p.levels + 1)}
        )
        self.last_decode_step_times: list[tuple[str, float]] = []
        self.last_decode_times: dict[str, float] = {}
        self.last_encode_stats: dict[str, Any] = {}
        #: Written into the header by :meth:`encode_latent` (the adapter's rate-ladder position).
        self.rate_index = 0
        self.portable = False

    def make_portable(self) -> "MSPModel":
        """Run everything but g_a in float64 (see :mod:`bench.models.portable`)."""
        make_portable(self, encoder_only=(self.g_a,))
        self.portable = True
        return self

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the decoder's path (float64 when portable)."""
        return next(self.g_s.parameters()).dtype

    def _dtype_scope(self):
        return default_dtype(self.dtype if self.portable else None)

    # --- properties ---------------------------------------------------------------------------
    @property
    def sequential_steps(self) -> int:
        return len(self.plan)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def complexity_target(self, height: int, width: int) -> tuple[nn.Module, Tensor, dict[str, str]]:
        """What :func:`bench.models.macs.model_complexity` counts: this network's forward on a
        ``height``×``width`` input (:meth:`analysis` pads it to a multiple of 16 itself)."""
        return self, torch.full((1, 3, height, width), 0.5, device=self.device), {}

    def decode_parts(self) -> DecodeParts:
        """Which modules and calls form which part of :meth:`decompress`
        (:mod:`bench.models.decodeparts`): g_s; the per-step context nets and the pyramid's feature
        fusion (the probability model); CDF-index search and rANS decoding. No hyperprior, no h_s."""
        gc, eb = self.gaussian_conditional, self.entropy_bottleneck
        return DecodeParts(modules={"g_s": [self.g_s], "context": [self.context, self.features]},
                           coding=[(gc, "build_indexes"), (gc, "decompress"), (eb, "decompress")],
                           dtype=str(self.dtype).removeprefix("torch."))

    # --- transforms (LatentOptimizable) ---------------------------------------------------------
    def analysis(self, x: Tensor) -> Tensor:
        """y = g_a(x padded to a multiple of 16 by edge replication)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % STRIDE, (-w) % STRIDE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.g_a(x.to(next(self.g_a.parameters()).dtype)).to(self.dtype)

    def synthesis(self, y_hat: Tensor, size: tuple[int, int]) -> Tensor:
        """x̂ = g_s(ŷ) cropped to ``size`` (not clamped)."""
        return self.g_s(y_hat)[..., : size[0], : size[1]]

    # --- the traversal shared by training, encoding and decoding ---------------------------------
    def _traverse(self, coder: Any, y: Tensor | None, latent_size: tuple[int, int], ref: Tensor) -> Tensor:
        """Walk the plan; ``coder`` turns (targets, μ, σ) into ŷ per step. Returns Ŷ_0 = ŷ."""
        S = self.profile.levels
        sizes = pyramid.level_sizes(*latent_size, S)
        top, details = pyramid.decompose(y, S) if y is not None else (None, None)
        y_hat = self._code_coarsest(coder, top, (ref.shape[0], *sizes[S]))
        feature = self.features[f"F{S}"](y_hat, None)  # F_S
        steps = iter(self.plan[self.profile.groups :])
        for s in range(S - 1, -1, -1):
            parts = self._code_level(coder, steps, y_hat, feature, details[s] if details else None, sizes[s])
            y_hat = pyramid.merge({"Y": y_hat, **parts}, sizes[s])  # Ŷ_s
            if s > 0:
                feature = self.features[f"F{s}"](y_hat, feature)  # F_s
        assert y_hat.shape[1] == self.profile.M
        return y_hat

    def _code_coarsest(self, coder: Any, top: Tensor | None, grid: tuple[int, int, int]) -> Tensor:
        """Ŷ_S: group 0 with the factorised prior, later groups conditioned on earlier ones."""
        groups: list[Tensor] = []
        for step in self.plan[: self.profile.groups]:
            coder.start_step()
            sl = self.groups[step.group]
            target = top[:, sl] if top is not None else None
            if step.factorized:
                groups.append(coder.factorized(step, target, (grid[0], sl.stop - sl.start, *grid[1:])))
            else:
                mu, sigma = self.context[step.name](torch.cat(groups, dim=1))
                groups.extend(coder.gaussian(step, None if target is None else [target], [mu], [sigma]))
        return torch.cat(groups, dim=1)

    def _code_level(
        self,
        coder: Any,
        steps: Any,
        coarse_hat: Tensor,
        feature: Tensor,
        targets: dict[str, Tensor] | None,
        size: tuple[int, int],
    ) -> dict[str, Tensor]:
        """D̂_s, R̂_s, B̂_s of one level, part-set by part-set and group by group."""
        coarse = tuple(coarse_hat.shape[-2:])
        done: dict[str, Tensor] = {}  # parts of this level decoded so far (all channels)
        for parts in part_sets(self.profile.steps_per_level):
            shapes = [pyramid.part_size(q, *size) for q in parts]
            cur: dict[str, list[Tensor]] = {q: [] for q in parts}
            for _ in range(self.profile.groups):
                step = next(steps)
                coder.start_step()
                # context on the coarse grid: [Ŷ_{s+1}, F_{s+1}, earlier parts, earlier groups]
                ctx = [coarse_hat, feature] + [pyramid.pad_to(done[q], coarse) for q in done]
                ctx += [pyramid.pad_to(torch.cat(cur[q], dim=1), coarse) for q in parts if cur[q]]
                mu, sigma = self.context[step.name](torch.cat(ctx, dim=1))
                mus = [pyramid.crop_to(t, sh) for t, sh in zip(mu.chunk(len(parts), 1), shapes)]
                sigmas = [pyramid.crop_to(t, sh) for t, sh in zip(sigma.chunk(len(parts), 1), shapes)]
                sl = self.groups[step.group]
                ys = [targets[q][:, sl] for q in parts] if targets is not None else None
                for q, t in zip(parts, coder.gaussian(step, ys, mus, sigmas)):
                    cur[q].append(t)
            done.update({q: torch.cat(cur[q], dim=1) for q in parts})
        return done

    # --- training-style forward and differentiable rate -----------------------------------------
    def latent_likelihoods(self, y: Tensor, quantize: Quantizer = ste_round, noisy: bool = False):
        """(ŷ, likelihoods): contexts from ``quantize``d values in coding order."""
        coder = LikelihoodCoder(self.entropy_bottleneck, self.gaussian_conditional, quantize, noisy)
        with self._dtype_scope():
            y_hat = self._traverse(coder, y, tuple(y.shape[-2:]), y)
        return y_hat, coder.likelihoods

    def forward(self, x: Tensor) -> dict[str, Any]:
        """Training-style pass: noisy rates when training, STE-rounded ŷ into contexts and g_s."""
        y = self.analysis(x)
        y_hat, likelihoods = self.latent_likelihoods(y, ste_round, noisy=self.training)
        return {"x_hat": self.synthesis(y_hat, tuple(x.shape[-2:])), "likelihoods": {"y": likelihoods}}

    def rate_bits(self, y: Tensor, quantize: Quantizer) -> tuple[Tensor, Tensor]:
        """Differentiable Σ −log₂ p(ŷ) and the ŷ that g_s sees (LOF's rate term)."""
        y_hat, likelihoods = self.latent_likelihoods(y, quantize, noisy=False)
        return total_bits(likelihoods), y_hat

    def estimate_bits(self, y: Tensor) -> float:
        """Ideal code length of the hard-quantised ŷ under the model (no entropy coding)."""
        with torch.no_grad():
            bits, _ = self.rate_bits(y, hard_round)
        return float(bits)

    # --- real coding ------------------------------------------------------------------------------
    def compress_latent(self, y: Tensor, size: tuple[int, int], rate_index: int = 0) -> tuple[bytes, Tensor]:
        """Entropy-code latent ``y`` of an image of ``size``: (complete bitstream, ŷ as decoded)."""
        if y.shape[0] != 1:
            raise ValueError("MSP compresses one image at a time (batch size 1)")
        expected = tuple(-(-d // STRIDE) for d in size)
        if tuple(y.shape[-2:]) != expected:
            raise ValueError(f"latent {tuple(y.shape[-2:])} does not match image size {size}")
        if not 0 <= rate_index < 256:
            raise ValueError(f"rate_index must fit in a byte, got {rate_index}")
        coder = EncoderCoder(self.entropy_bottleneck, self.gaussian_conditional)
        with torch.no_grad(), self._dtype_scope():
            y_hat = self._traverse(coder, y.to(self.dtype), expected, y)
        p = self.profile
        header = _HEADER.pack(VERSION, p.fingerprint(), rate_index, p.levels, p.steps_per_level, p.groups, *size,
                              flags_byte(self.portable))
        self.last_encode_stats = {
            "symbols": coder.symbols,
            "nonzero_symbols": coder.nonzero,
            "estimated_bits": coder.estimated_bits,
        }
        return bitstream.pack(MAGIC, header, coder.strings), y_hat

    def compress(self, x: Tensor, rate_index: int = 0) -> bytes:
        """Encode a 1×3×H×W image in [0, 1] into the complete bitstream."""
        with torch.no_grad():
            data, _ = self.compress_latent(self.analysis(x), tuple(x.shape[-2:]), rate_index)
        return data

    def encode_latent(self, y: Tensor, size: tuple[int, int]) -> bytes:
        """LatentOptimizable: the complete bitstream for latent ``y`` (header rate = ``rate_index``)."""
        return self.compress_latent(y, size, self.rate_index)[0]

    def decode_image(self, data: bytes) -> Tensor:
        """LatentOptimizable: the real decoder."""
        return self.decompress(data)

    def decompress_latent(self, data: bytes) -> tuple[Tensor, MSPHeader]:
        """Entropy-decode ŷ; per-step times land in ``last_decode_step_times``."""
        header, strings = read_header(data)
        p = self.profile
        if header.fingerprint != p.fingerprint():
            raise CodecError(
                f"MSP: bitstream made by another architecture (S={header.levels}, "
                f"steps/level={header.steps_per_level}, G={header.groups}, fingerprint "
                f"{header.fingerprint:#010x}) than this {p.name} model ({p.fingerprint():#010x})"
            )
        check_flags(header.flags, self.portable, "MSP")
        if len(strings) != self.sequential_steps:
            raise CodecError(f"MSP: {len(strings)} strings for {self.sequential_steps} steps")
        latent = (-(-header.height // STRIDE), -(-header.width // STRIDE))
        ref = torch.zeros(1, device=self.device)
        coder = DecoderCoder(self.entropy_bottleneck, self.gaussian_conditional, strings, self._sync)
        with torch.no_grad(), self._dtype_scope():
            y_hat = self._traverse(coder, None, latent, ref)
        self.last_decode_step_times = coder.step_times
        return y_hat, header

    def decompress(self, data: bytes) -> Tensor:
        """Decode a bitstream into a 1×3×H×W image in [0, 1]."""
        t0 = time.perf_counter()
        y_hat, header = self.decompress_latent(data)
        t1 = time.perf_counter()
        with torch.no_grad():
            x_hat = self.synthesis(y_hat, (header.height, header.width)).clamp_(0, 1)
        self._sync()
        t2 = time.perf_counter()
        self.last_decode_times = {"entropy_decoding_s": t1 - t0, "synthesis_s": t2 - t1}
        return x_hat

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

