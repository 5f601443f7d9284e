"""A model class of the user's, following CompressAI's protocol, as a complete codec model.

Built from the class a configuration names (:mod:`bench.codecs.model_ref`), its keyword
arguments, and a weights file checked by the caller: the checkpoint is read without running code
(:func:`bench.models.weights.load_weights_file`), its state dict taken from the file itself or
from under ``state_dict`` / ``model``, a ``module.`` prefix (DataParallel) dropped, and its keys
compared with the model's: missing or unexpected keys are a :class:`CheckpointError` naming them.
Then, unless switched off, ``update(force=True)`` builds the entropy coder's tables.

Bitstream: the model's own ``compress()`` output in the checked frame of
:mod:`bench.models.bitstream` (magic ``b"CAM1"``), header::

    version u8 | model id u32 | rate index u16 | height u32 | width u32 | flags u8 (bit 0: portable)

where the model id is the CRC-32 of the class path, its keyword arguments and the weights'
sha256 (or the untrained seed), so a stream decoded with another model is a clear error. The
first string is the layout of ``[strings, shape]`` (:func:`bench.models.bitstream.flatten`:
nested lists and any shape kept exactly), the rest are the model's strings in order. The image is
padded (:class:`bench.models.compressai_net.CompressAINet`) before ``compress()``, and
``decompress(strings, shape)["x_hat"]`` is cropped to the header's size.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.errors import CheckpointError, CodecError
from bench.models import bitstream
from bench.models.compressai_net import CompressAINet, family
from bench.models.entropy import restore_likelihood_bounds
from bench.models.portable import check_flags, flags_byte
from bench.models.quantizers import hard_round
from bench.models.weights import load_weights_file

MAGIC = b"CAM1"
VERSION = 1
_HEADER = struct.Struct(">BIHIIB")
MAX_SIDE = 1 << 16
_SHOWN = 8  # keys named in an error, per kind


def model_id(ref: str, kwargs: dict[str, Any], weights: str) -> int:
    """CRC-32 of the class path, its keyword arguments and ``weights`` (a sha256 or ``untrained:SEED``)."""
    return zlib.crc32(json.dumps([ref, kwargs, weights], sort_keys=True, default=str).encode())


def _named(keys: set[str]) -> str:
    shown = sorted(keys)[:_SHOWN]
    return ", ".join(shown) + (f" … ({len(keys)} in all)" if len(keys) > _SHOWN else "")


def extract_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    """The state dict in a loaded checkpoint: the object itself, or the one under ``state_dict`` or
    ``model`` (one level, or two); a ``module.`` prefix on every key dropped."""
    state = obj
    for _ in range(3):
        if isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values()):
            break
        inner = next((state[k] for k in ("state_dict", "model") if isinstance(state, dict)
                      and isinstance(state.get(k), dict)), None)
        if inner is None:
            break
        state = inner
    if not (isinstance(state, dict) and state and all(torch.is_tensor(v) for v in state.values())):
        found = (f"a dict with keys {_named({str(k) for k in obj})}" if isinstance(obj, dict)
                 else f"a {type(obj).__name__}")
        raise CheckpointError(f"{path}: holds {found}, not a state dict of tensors (nor one under "
                              "'state_dict' or 'model')")
    keys = [str(k) for k in state]
    if all(k.startswith("module.") for k in keys):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _size_coder_tables(net: nn.Module, state: dict[str, Tensor]) -> None:
    """Give the entropy coders' table buffers the sizes the checkpoint's have (torch cannot load a
    buffer of another size; CompressAI's own models do this in their ``load_state_dict``)."""
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional
    from compressai.models.utils import update_registered_buffers

    tables = ["_quantized_cdf", "_offset", "_cdf_length"]
    for name, module in net.named_modules():
        if isinstance(module, (EntropyBottleneck, GaussianConditional)):
            names = tables + (["scale_table"] if isinstance(module, GaussianConditional) else [])
            update_registered_buffers(module, name, names, state)


def load_checkpoint(net: nn.Module, path: Path, ref: str) -> None:
    """Load the weights file ``path`` into ``net``; :class:`CheckpointError` naming the missing and
    unexpected keys, or the shapes, when it does not fit."""
    from compressai.models import CompressionModel

    state = extract_state_dict(load_weights_file(path, f"weights file of {ref}"), path)
    if isinstance(net, CompressionModel):
        from compressai.zoo import load_state_dict

        state = load_state_dict(state)  # CompressAI's renames of its own older layouts
    expected = set(net.state_dict())
    missing, extra = expected - set(state), set(state) - expected
    if missing or extra:
        what = [f"missing keys: {_named(missing)}" if missing else "", f"unexpected keys: {_named(extra)}" if extra else ""]
        raise CheckpointError(f"{path}: does not fit {ref}: " + "; ".join(w for w in what if w))
    try:
        if not isinstance(net, CompressionModel):  # which sizes them itself
            _size_coder_tables(net, state)
        net.load_state_dict(state)
        restore_likelihood_bounds(net)  # a float16 file holds them as 0
    except (RuntimeError, ValueError, KeyError) as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(f"{path}: does not fit {ref}: {detail}") from None


class UserModel(CompressAINet):
    """One rate point's network of a user's CompressAI-protocol class."""

    def __init__(self, net: nn.Module, ref: str, ident: int, rate_index: int, trained: bool, pad: int,
                 padding: str, portable: bool, parts: dict[str, str] | None = None):
        if portable and not isinstance(getattr(net, "g_a", None), nn.Module):
            raise CodecError(f"{ref}: portable = true needs the analysis transform as module g_a")
        super().__init__(net, pad, padding, portable, parts)
        self.ref, self.model_id, self.rate_index, self.trained = ref, ident, rate_index, trained
        self.family = family(net)

    # --- encoding --------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[bytes, float | None]:
        """The bitstream of image ``x`` (1×3×H×W in [0, 1]) and the model's estimated bits (None
        when its entropy structure is not a known family)."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        xp = self.padded(x)
        if self.portable:  # g_a in float32, its output cast to float64, the rest of compress() in float64
            with torch.no_grad():
                y = self.analysis(x)
            return self.encode_latent(y, size), self.estimated_bits(y)
        captured: list[Tensor] = []
        hook = (self.net.g_a.register_forward_hook(lambda m, a, out: captured.append(out))
                if self.family is not None else None)
        try:
            with torch.no_grad():
                out = self.net.compress(xp)
        finally:
            if hook is not None:
                hook.remove()
        return self._pack(out, size), self.estimated_bits(captured[0] if captured else None)

    def estimated_bits(self, y: Tensor | None) -> float | None:
        """Σ −log₂ p(ŷ) of latent ``y`` (None without ``y`` or a known entropy structure)."""
        if y is None or self.family is None:
            return None
        with torch.no_grad():
            return float(self.rate_bits(y, hard_round)[0])

    def encode_latent(self, y: Tensor, size: tuple[int, int]) -> bytes:
        """The complete bitstream for latent ``y`` of an image of ``size`` (LOF; portable path)."""
        padded = (-(-size[0] // self.pad) * self.pad, -(-size[1] // self.pad) * self.pad)
        dummy = torch.zeros(1, 3, *padded, device=y.device)
        return self._pack(self.compress_latent(y, dummy), size)

    def _pack(self, out: Any, size: tuple[int, int]) -> bytes:
        if not isinstance(out, dict) or "strings" not in out or "shape" not in out:
            got = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise CodecError(f"{self.ref}: compress() must return a dict with 'strings' and 'shape', got {got}")
        try:
            layout, leaves = bitstream.flatten([out["strings"], out["shape"]])
        except TypeError as exc:
            raise CodecError(f"{self.ref}: compress() output cannot be stored: {exc}") from None
        header = _HEADER.pack(VERSION, self.model_id, self.rate_index, *size, flags_byte(self.portable))
        return bitstream.pack(MAGIC, header, [layout, *leaves])

    # --- decoding --------------------------------------------------------------------------------
    def decode_fields(self, fields: tuple[int, ...], strings: list[bytes]) -> Tensor:
        """Decode checked parts (:func:`read`) into a 1×3×H×W image in [0, 1]."""
        _, ident, _, h, w, flags = fields
        check_flags(flags, self.portable, self.ref)
        if ident != self.model_id:
            raise CodecError(f"{self.ref}: bitstream was made by another model (id {ident:08x}, this rate "
                             f"point's model is {self.model_id:08x}: other class, arguments or weights)")
        if not strings:
            raise CodecError(f"{self.ref}: bitstream holds no string layout")
        value = bitstream.rebuild(strings[0], strings[1:], self.ref)
        if not (isinstance(value, list) and len(value) == 2):
            raise CodecError(f"{self.ref}: string layout is not [strings, shape]")
        x_hat = self.decompress_timed(value[0], value[1])
        if not torch.is_tensor(x_hat) or x_hat.dim() != 4 or x_hat.shape[1] != 3 \
                or x_hat.shape[-2] < h or x_hat.shape[-1] < w:
            got = tuple(x_hat.shape) if torch.is_tensor(x_hat) else type(x_hat).__name__
            raise CodecError(f"{self.ref}: decompress() gave x_hat {got}, expected 1×3×≥{h}×≥{w}")
        return x_hat[..., :h, :w]

    def decode_image(self, data: bytes) -> Tensor:
        """Decode a bitstream of this model into a 1×3×H×W image in [0, 1] (LOF's real decoder)."""
        return self.decode_fields(*read(data, self.ref))


def read(data: bytes, codec: str) -> tuple[tuple[int, ...], list[bytes]]:
    """(version, model id, rate index, height, width, flags) and the strings; ``CodecError`` if bad."""
    raw, strings = bitstream.unpack(data, MAGIC, codec)
    fields = bitstream.unpack_fields(raw, _HEADER, VERSION, codec)
    if not (0 < fields[3] <= MAX_SIDE and 0 < fields[4] <= MAX_SIDE):
        raise CodecError(f"{codec}: invalid image size {fields[3]}×{fields[4]} in header")
    return fields, strings


def build(cls: type, ref: str, kwargs: dict[str, Any], weights: Path | None, sha256: str | None, seed: int,
          device: torch.device, rate_index: int, update: bool = True, pad: int = 64, padding: str = "replicate",
          portable: bool = False, parts: dict[str, str] | None = None) -> UserModel:
    """``cls(**kwargs)`` (seeded), the weights file ``weights`` loaded into it (None: untrained),
    ``update(force=True)`` when asked, on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            net = cls(**kwargs)
        except Exception as exc:  # noqa: BLE001 — the user's constructor may raise anything
            raise CodecError(f"{ref}(**{kwargs}) failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise CodecError(f"{ref}: constructs a {type(net).__name__}, not a torch.nn.Module")
    if weights is not None:
        load_checkpoint(net, weights, ref)
    if update:
        try:
            net.update(force=True)
        except Exception as exc:  # noqa: BLE001
            raise CodecError(f"{ref}: update(force=True) failed: {type(exc).__name__}: {exc} "
                             "(set params.update = false if the model needs none)") from None
    ident = model_id(ref, kwargs, sha256 if weights is not None else f"untrained:{seed}")
    return UserModel(net.to(device), ref, ident, rate_index, weights is not None, pad, padding, portable, parts)
