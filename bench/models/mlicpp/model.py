"""MLIC++ (Jiang et al., arXiv 2307.15421): the full model, its likelihood forward and real coding.

Structure (spec §5): y = g_a(x), z = h_a(y) coded with an EntropyBottleneck; hp = h_s(ẑ);
y is split into 10 slices of 32 channels, each coded in two checkerboard parts (anchor, then
non-anchor) with a Gaussian conditional whose (σ, μ) come from entropy-parameter networks fed with
channel context, linear global inter/intra context, local windowed attention and hp. LRP adds a
0.5·tanh correction after each part. x̂ = g_s(ŷ).

:meth:`MLICPlusPlus.compress` / :meth:`MLICPlusPlus.decompress` run the same per-slice recursion
(:meth:`MLICPlusPlus._recursion`) with different part coders, so encoder and decoder compute σ, μ
from identical tensors in identical memory layouts; the y symbols go into one rANS stream.
"""

from __future__ import annotations

import contextlib
import sys

import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.models.utils import remap_old_keys
from torch import Tensor, nn

from bench.errors import CodecError
from bench.models.decodeparts import DecodeParts
from bench.models.mlicpp import bitstream
from bench.models.mlicpp.checkerboard import ANCHOR, NONANCHOR, keep, squeeze, unsqueeze
from bench.models.mlicpp.coding import (
    CompressResult,
    PartCoder,
    coder_tables,
    escaped_count,
    pad,
    padded_size,
    pinned_threads,
    weights_fingerprint,
)
from bench.models.mlicpp.global_context import ChannelContext, LinearGlobalInterContext, LinearGlobalIntraContext
from bench.models.mlicpp.local_context import LocalContext
from bench.models.mlicpp.parameters import EntropyParameters, LatentResidualPrediction
from bench.models.portable import default_dtype, make_portable
from bench.models.winograd import use_winograd
from bench.models.mlicpp.transforms import (
    BAND_PIXELS,
    AnalysisTransform,
    HyperAnalysis,
    HyperSynthesis,
    SynthesisTransform,
)

class MLICPlusPlus(CompressionModel):
    """MLIC++ with the official state-dict layout (1023 entries, 83,501,408 parameters)."""

    def __init__(self, N: int = 192, M: int = 320, slice_num: int = 10, context_window: int = 5):
        super().__init__()
        self.N, self.M, self.slice_num = N, M, slice_num
        self.slice_ch = M // slice_num
        self.context_window = context_window  # stored but unused upstream (LocalContext uses 5)
        S, C = slice_num, self.slice_ch
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.g_a = AnalysisTransform(N, M)
        self.g_s = SynthesisTransform(N, M)
        self.h_a = HyperAnalysis(N, M)
        self.h_s = HyperSynthesis(N, M)
        self.local_context = nn.ModuleList(LocalContext(C) for _ in range(S))
        # slot 0 is None so that keys start at ".1." as upstream
        self.channel_context = nn.ModuleList([None] + [ChannelContext(C * i) for i in range(1, S)])
        self.global_inter_context = nn.ModuleList(
            [None] + [LinearGlobalInterContext(C * i, 64, num_heads=i) for i in range(1, S)]
        )
        self.global_intra_context = nn.ModuleList([None] + [LinearGlobalIntraContext(C, 64, 2) for _ in range(1, S)])
        self.entropy_parameters_anchor = nn.ModuleList(
            EntropyParameters(2 * M if i == 0 else 2 * M + 64 + 128) for i in range(S)
        )
        self.entropy_parameters_nonanchor = nn.ModuleList(
            EntropyParameters(2 * M + 64 if i == 0 else 2 * M + 64 * 3 + 128) for i in range(S)
        )
        self.lrp_anchor = nn.ModuleList(LatentResidualPrediction(M + C * (i + 1)) for i in range(S))
        self.lrp_nonanchor = nn.ModuleList(LatentResidualPrediction(M + C * (i + 1)) for i in range(S))
        self.squeezed_parameters = True
        self.memory_format = torch.contiguous_format
        self._fingerprint: int | None = None
        self.portable = False
        self.winograd = False
        self.configure(reference=False)

    def decode_parts(self) -> DecodeParts:
        """Which modules and calls form which part of :meth:`decompress`
        (:mod:`bench.models.decodeparts`): g_s, h_s, the context / LRP / entropy-parameter nets of
        the slice recursion, and entropy coding (z decoding, CDF-index search, rANS)."""
        context = [self.local_context, self.channel_context, self.global_inter_context, self.global_intra_context,
                   self.entropy_parameters_anchor, self.entropy_parameters_nonanchor, self.lrp_anchor,
                   self.lrp_nonanchor]
        dtype = next(self.g_s.parameters()).dtype
        return DecodeParts(modules={"g_s": [self.g_s], "h_s": [self.h_s], "context": context},
                           coding=[(RansDecoder, "decode_stream"), (self, "build_indexes"),
                                   (self.entropy_bottleneck, "decompress")],
                           dtype=str(dtype).removeprefix("torch."))

    # --- configuration -------------------------------------------------------------------------
    def configure(self, reference: bool = False, portable: bool = False,
                  winograd: bool | None = None) -> "MLICPlusPlus":
        """Choose the computation layout; both give the same model, not always the same bits.

        ``reference=True`` follows the official code literally: NCHW tensors, whole-map local
        attention with the float −100 mask, entropy-parameter nets on full-resolution maps.
        ``reference=False`` (default, faster) uses channels-last tensors (oneDNN picks other
        conv kernels: last-bit differences, ~1e-6), banded local attention without denormals
        (bit-identical in our checks), entropy-parameter nets on the squeezed half of the
        positions they serve (same per-position math, but GEMM blocking changes the last bits,
        ~1e-7) and, above 2^19 pixels, the full-resolution stages of g_a/g_s in row bands
        (bit-identical with channels-last kernels in our checks).
        Encoder and decoder must use the same setting; streams do not mix across settings.

        ``portable=True`` (not with ``reference``) runs everything the decoder runs in float64
        (:mod:`bench.models.portable`): the stream then decodes to the same image at any thread
        count and on any device, and the decoder does not pin the encoder's thread count.

        ``winograd`` (default: on unless ``reference``) runs every 3×3 stride-1 convolution (g_a,
        g_s, h_a, h_s, LRP, channel context) by Winograd F(4,3) (:mod:`bench.models.winograd`):
        4× fewer multiplications, other rounding. Float32 streams record it in the header mode
        (a decoder must match); on the portable path it moves values by ~1e-13, far inside the
        float64 margins, so portable streams decode alike with or without it.
        """
        if portable and reference:
            raise ValueError("MLIC++: the reference mode is the official float32 computation; it cannot be portable")
        winograd = not reference if winograd is None else winograd
        if winograd and reference:
            raise ValueError("MLIC++: the reference mode runs the official direct convolutions; it cannot use Winograd")
        self.reference, self.portable, self.winograd = reference, portable, winograd
        use_winograd(self, winograd)
        self._fingerprint = None
        if portable:
            make_portable(self, encoder_only=(self.g_a, self.h_a))
        else:
            self.to(torch.float32)
        self.squeezed_parameters = not reference
        for lc in self.local_context:
            lc.reference = reference
        # row bands in g_a/g_s: bit-exact with channels-last kernels only (checked), so not here
        band = sys.maxsize if reference else BAND_PIXELS
        self.g_a.band_pixels = self.g_s.band_pixels = band
        return self.set_memory_format(torch.contiguous_format if reference else torch.channels_last)

    def set_memory_format(self, memory_format: torch.memory_format) -> "MLICPlusPlus":
        """Use ``torch.channels_last`` or ``torch.contiguous_format`` for weights and activations."""
        self.memory_format = memory_format
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.data = module.weight.data.contiguous(memory_format=memory_format)
        return self

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the decoder's path (float64 when portable)."""
        return next(self.g_s.parameters()).dtype

    def dtype_scope(self) -> contextlib.AbstractContextManager:
        """Within: tensors created without a dtype match the decoder's path (float64 when portable)."""
        return default_dtype(self.dtype if self.portable else None)

    def _fmt(self, t: Tensor) -> Tensor:
        return t.contiguous(memory_format=self.memory_format)

    @property
    def stream_mode(self) -> int:
        """The header mode this configuration writes and decodes (see :mod:`.bitstream`)."""
        if self.portable:
            return bitstream.MODE_PORTABLE
        if self.reference:
            return bitstream.MODE_REFERENCE
        return bitstream.MODE_FAST_WINOGRAD if self.winograd else bitstream.MODE_FAST

    def stream_key(self) -> int:
        """Seed of the container CRC: the weights' fingerprint and the computation layout."""
        return self.fingerprint() ^ bitstream.MODE_KEYS[self.stream_mode]

    def fingerprint(self) -> int:
        """CRC-32 of every parameter and buffer (name, shape, bytes), cached until the weights change."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self)
        return self._fingerprint

    def update(self, scale_table: Tensor | None = None, force: bool = False, update_quantiles: bool = False) -> bool:
        self._fingerprint = None
        return super().update(scale_table=scale_table, force=force, update_quantiles=update_quantiles)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Strict load of an official (CompressAI 1.2.0 names) or a 1.2.8-style state dict.

        Entropy-coder tables (``_quantized_cdf``, ``_offset``, ``_cdf_length``, ``scale_table``)
        are resized to the checkpoint's shapes first, whatever their current size.
        """
        state_dict = remap_old_keys("entropy_bottleneck", dict(state_dict))
        for module_name, names in (
            ("entropy_bottleneck", ("_quantized_cdf", "_offset", "_cdf_length")),
            ("gaussian_conditional", ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")),
        ):
            module = getattr(self, module_name)
            for name in names:
                key = f"{module_name}.{name}"
                if key in state_dict:
                    getattr(module, name).resize_(state_dict[key].shape)
        self._fingerprint = None
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)

    # --- the per-slice recursion (spec §5.1) --------------------------------------------------
    def _entropy_params(self, net: EntropyParameters, inputs: Tensor, parity: str) -> tuple[Tensor, Tensor]:
        """(σ, μ) of ``parity``, squeezed to [B,32,h,w/2]."""
        if self.squeezed_parameters:  # 1×1 convs: the same per-position math on half the positions
            scales, means = net(self._fmt(squeeze(parity, inputs)))
            return scales, means
        scales, means = net(inputs)
        return squeeze(parity, scales), squeeze(parity, means)

    def _recursion(self, hp: Tensor, code_part: PartCoder) -> Tensor:
        """Run slices 0..9 (anchor, then non-anchor) and return ŷ [B,M,h,w]."""
        hm = hp[:, self.M:]
        y_hats: list[Tensor] = []
        for i in range(self.slice_num):
            if i == 0:
                in_a = hp
            else:
                prev = self._fmt(torch.cat(y_hats, dim=1))
                g_inter = self.global_inter_context[i](prev)
                ch = self.channel_context[i](prev)
                in_a = self._fmt(torch.cat([g_inter, ch, hp], dim=1))
            # anchor: â = round(y − μ) + μ, then â ← â + anchor(LRP)
            scales, means = self._entropy_params(self.entropy_parameters_anchor[i], in_a, ANCHOR)
            a_hat = self._fmt(unsqueeze(ANCHOR, code_part(i, ANCHOR, scales, means)))
            lrp = self.lrp_anchor[i](self._fmt(torch.cat([hm, *y_hats, a_hat], dim=1)))
            a_hat = self._fmt(a_hat + keep(ANCHOR, lrp))
            # non-anchor: contexts from â, then n̂ = round(y − μ) + μ
            local = self.local_context[i](a_hat)
            if i == 0:
                in_n = torch.cat([local, hp], dim=1)
            else:
                g_intra = self.global_intra_context[i](y_hats[-1], a_hat)
                in_n = torch.cat([local, g_intra, g_inter, ch, hp], dim=1)
            scales, means = self._entropy_params(self.entropy_parameters_nonanchor[i], self._fmt(in_n), NONANCHOR)
            n_hat = unsqueeze(NONANCHOR, code_part(i, NONANCHOR, scales, means))
            y_hat = self._fmt(a_hat + n_hat)
            lrp = self.lrp_nonanchor[i](self._fmt(torch.cat([hm, *y_hats, y_hat], dim=1)))
            y_hats.append(self._fmt(y_hat + keep(NONANCHOR, lrp)))
        return torch.cat(y_hats, dim=1)

    def _slice(self, y: Tensor, i: int) -> Tensor:
        return y[:, i * self.slice_ch:(i + 1) * self.slice_ch]

    def build_indexes(self, scales: Tensor) -> Tensor:
        """Gaussian CDF index of each σ: the smallest k with max(σ, 0.11) ≤ T_k, else 63 (int32).

        Equal to ``GaussianConditional.build_indexes`` (63 comparisons) in one searchsorted.
        """
        gc = self.gaussian_conditional
        scales = gc.lower_bound_scale(scales)
        table = gc.scale_table[:-1].to(scales.device).contiguous()
        return torch.searchsorted(table, scales.contiguous(), right=False).int()

    # --- likelihood forward (spec §5.2, eval mode) ----------------------------------------------
    def forward(self, x: Tensor) -> dict:
        """x [B,3,H,W], H and W multiples of 64 → x̂ and the y/z likelihoods (quantized, eval mode)."""
        x = self._fmt(x.float())
        y = self.g_a(x)
        z = self.h_a(y).to(self.dtype)
        y = y.to(self.dtype)
        z_hat, z_likelihoods = self.entropy_bottleneck(z, training=False)
        hp = self.h_s(self._fmt(z_hat))
        likelihoods: dict[tuple[int, str], Tensor] = {}

        def code_part(i: int, parity: str, scales: Tensor, means: Tensor) -> Tensor:
            y_part = squeeze(parity, self._slice(y, i))
            q, likelihoods[i, parity] = self.gaussian_conditional(y_part, scales, means, training=False)
            return q

        with self.dtype_scope():
            y_hat = self._recursion(hp, code_part)
        y_likelihoods = torch.cat(
            [unsqueeze(ANCHOR, likelihoods[i, ANCHOR]) + unsqueeze(NONANCHOR, likelihoods[i, NONANCHOR])
             for i in range(self.slice_num)], dim=1)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # --- real coding --------------------------------------------------------------------------
    def complexity_target(self, height: int, width: int) -> tuple[nn.Module, Tensor, dict[str, str]]:
        """What :func:`bench.models.macs.model_complexity` counts: this network's forward on a
        ``height``×``width`` input padded as :meth:`compress` pads it; no extra part names."""
        x = torch.full((1, 3, height, width), 0.5, device=next(self.parameters()).device)
        return self, self.pad(x), {}

    pad = staticmethod(pad)

    @torch.inference_mode()
    def compress(self, x: Tensor, model_id: int = 0, reconstruct: bool = False) -> CompressResult:
        """x [1,3,H,W] float in [0,1], any size → the container and estimated bits."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"compress expects one RGB image [1,3,H,W], got {tuple(x.shape)}")
        device = next(self.parameters()).device
        dtype = self.dtype
        H, W = x.shape[-2:]
        x = self._fmt(self.pad(x.to(device, torch.float32)))
        y = self.g_a(x)
        z = self.h_a(y).to(dtype)
        y = y.to(dtype)  # exact: float64 holds every float32
        del x
        z_string = self.entropy_bottleneck.compress(z)[0]
        z_hat = self.entropy_bottleneck.decompress([z_string], z.shape[-2:])
        _, z_likelihoods = self.entropy_bottleneck(z, training=False)
        hp = self.h_s(self._fmt(z_hat))
        symbols: list[Tensor] = []
        indexes: list[Tensor] = []
        y_bits = torch.zeros((), dtype=torch.float64, device=device)

        def code_part(i: int, parity: str, scales: Tensor, means: Tensor) -> Tensor:
            nonlocal y_bits
            y_part = squeeze(parity, self._slice(y, i))
            q, likelihood = self.gaussian_conditional(y_part, scales, means, training=False)
            symbols.append(torch.round(y_part - means).int().reshape(-1))
            indexes.append(self.build_indexes(scales).reshape(-1))
            y_bits = y_bits - torch.log2(likelihood.double()).sum()
            return q

        with self.dtype_scope():
            y_hat = self._recursion(hp, code_part)
        all_symbols, all_indexes = torch.cat(symbols).cpu(), torch.cat(indexes).cpu()
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(all_symbols.tolist(), all_indexes.tolist(), *coder_tables(self.gaussian_conditional))
        y_string = encoder.flush()
        header = bitstream.Header(model_id=model_id, height=H, width=W, threads=torch.get_num_threads(),
                                  cuda=device.type == "cuda", mode=self.stream_mode)
        data = bitstream.pack(header, z_string, y_string, self.stream_key())
        x_hat = self.g_s(y_hat)[:, :, :H, :W] if reconstruct else None
        return CompressResult(
            data=data,
            y_bits_estimated=float(y_bits),
            z_bits_estimated=float(-torch.log2(z_likelihoods.double()).sum()),
            y_symbols=all_symbols,
            x_hat=x_hat,
            stats={"z_bytes": len(z_string), "y_bytes": len(y_string), "container_bytes": len(data),
                   "latent": tuple(y.shape[-2:]), "y_symbols": all_symbols.numel(),
                   "y_nonzero": int((all_symbols != 0).sum()),
                   "y_escaped": escaped_count(self.gaussian_conditional, all_symbols, all_indexes)},
        )

    @torch.inference_mode()
    def decompress(self, data: bytes, threads: int | None = None, allow_cross_device: bool = False) -> Tensor:
        """Container → x̂ [1,3,H,W] (float, cropped, not clamped).

        Float32 streams: ``threads`` None runs with the encoder's thread count from the header (on
        CPU the σ, μ bits depend on it); an integer overrides it (for experiments). Portable
        streams decode with the process's thread count (or ``threads``) on any device.
        """
        device = next(self.parameters()).device
        mode = bitstream.peek(data).mode
        if mode != self.stream_mode:
            raise CodecError(
                f"MLIC++ stream was coded in mode {bitstream.MODE_NAMES.get(mode, mode)} but this model decodes "
                f"{bitstream.MODE_NAMES[self.stream_mode]}; configure it alike"
            )
        header, z_string, y_string = bitstream.unpack(data, self.stream_key())
        if header.portable:
            pass  # no thread pinning, no device restriction
        elif header.cuda != (device.type == "cuda") and not allow_cross_device:
            raise CodecError(
                f"stream was encoded on {'CUDA' if header.cuda else 'CPU'} but this model runs on {device.type}; "
                "σ and μ are not bit-identical across devices, so decode on the encoder's device type"
            )
        if device.type != "cpu":
            threads = None
        elif threads is None and not header.portable:
            threads = header.threads
        ph, pw = padded_size(header.height, header.width)
        with pinned_threads(threads), self.dtype_scope():
            self.last_decode_threads = torch.get_num_threads()  # what really ran (cross-decode checks)
            try:
                z_hat = self.entropy_bottleneck.decompress([z_string], (ph // 64, pw // 64))
            except Exception as exc:  # CompressAI raises ValueError/RuntimeError on bad tables
                raise CodecError(f"MLIC++ z decoding failed: {exc}") from exc
            hp = self.h_s(self._fmt(z_hat))
            tables = coder_tables(self.gaussian_conditional)
            decoder = RansDecoder()
            decoder.set_stream(y_string)

            def code_part(i: int, parity: str, scales: Tensor, means: Tensor) -> Tensor:
                values = decoder.decode_stream(self.build_indexes(scales).reshape(-1).cpu().tolist(), *tables)
                symbols = torch.tensor(values, dtype=means.dtype).reshape(scales.shape).to(device)
                return symbols + means

            y_hat = self._recursion(hp, code_part)
            return self.g_s(y_hat)[:, :, :header.height, :header.width]

