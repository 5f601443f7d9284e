"""Local windowed attention context (spec §4.1): ``local_context.i``.

Input is â, the current slice's LRP-corrected anchor (zero at non-anchor positions). Every latent
pixel l owns a 5×5 window; inside it all 25 slots attend to all 25 slots (2 heads, dim 16,
Swin-style relative position bias, additive −100 mask unless both slots are in-image anchors),
and a 5×5 "fusion" conv collapses the 25 attended vectors into one 64-vector. A Linear + MLP
residual follows. The output [B,64,h,w] is defined at every pixel.

Two implementations share the parameters:

* :meth:`LocalContext.forward_reference` follows the official tensor chain literally: one
  ``unfold`` of the whole map, a float [L,25,25] mask, [B,L,2,25,25] logits for all L at once.
* :meth:`LocalContext.forward_banded` (the default) runs the same operations on bands of latent
  rows taken as strided windows of a padded channels-last map, and gives the masked keys of
  anchor queries exact-zero weights instead of e^−100 denormals (see its docstring: same
  output, 2× faster). Its memory no longer grows with the image: the official layout needs
  ~14 kB per latent pixel (unfold, logits, attention, mask), 0.5 GB for a 4K image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.models.mlicpp.checkerboard import parity_mask, ANCHOR

WINDOW = 5
SLOTS = WINDOW * WINDOW
MASK_VALUE = -100.0


class Mlp(nn.Module):
    """fc1 → GELU → Dropout(0) → fc2 → Dropout(0) (keys ``mlp.fc1``, ``mlp.fc2``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def relative_position_index(window: int = WINDOW) -> Tensor:
    """Swin's [25,25] index: (kh_i − kh_j + 4)·9 + (kw_i − kw_j + 4)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)  # [2,25]
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


@torch.inference_mode(False)  # cached by LocalContext: a normal tensor also serves autograd (LOF)
def anchor_slots(h: int, w: int, device: torch.device) -> Tensor:
    """Boolean [L,25]: slot p of pixel l's window is an in-image anchor."""
    alpha = parity_mask(ANCHOR, h, w, device).float()
    return F.unfold(alpha, WINDOW, padding=WINDOW // 2)[0].t().bool()


class LocalContext(nn.Module):
    """Windowed attention context of one slice (dim 32 → 64, 2 heads of 16)."""

    def __init__(self, dim: int = 32, window_size: int = WINDOW, num_heads: int = 2, mlp_ratio: float = 2.0,
                 band_pixels: int = 2048):
        super().__init__()
        if window_size != WINDOW:
            raise ValueError("MLIC++ uses a 5×5 window")
        self.dim, self.num_heads = dim, num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.band_pixels = band_pixels  # latent pixels per band in forward(); memory vs call overhead
        self.relative_position_table = nn.Parameter(torch.zeros((2 * WINDOW - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(), persistent=True)
        self.qkv_proj = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim * 2, dim * 2)
        self.mlp = Mlp(dim * 2, int(dim * 2 * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim * 2)
        self.fusion = nn.Conv2d(dim, dim * 2, kernel_size=WINDOW)
        self.unfold = nn.Unfold(kernel_size=WINDOW, dilation=1, padding=WINDOW // 2, stride=1)
        self.softmax = nn.Softmax(dim=-1)
        # resolution cache of the reference path: (h, w) → float mask [L,25,25]; not a buffer
        self.H, self.W, self.attn_mask = -1, -1, None
        self._slots_key, self._slots = None, None
        self.reference = False  # True: forward() runs the literal official chain

    # --- shared pieces ---------------------------------------------------------------------
    def _projected(self, a_hat: Tensor) -> Tensor:
        """Steps 1–2: LayerNorm tokens, qkv projection, laid out as G [B,96,h,w]."""
        B, C, h, w = a_hat.shape
        tokens = self.norm1(a_hat.reshape(B, C, h * w).transpose(1, 2))
        return self.qkv_proj(tokens).transpose(1, 2).reshape(B, 3 * C, h, w)

    def _position_bias(self) -> Tensor:
        """[heads,25,25] with Bias[hd,i,j] = table[idx[i,j], hd]."""
        bias = self.relative_position_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(SLOTS, SLOTS, self.num_heads).permute(2, 0, 1)

    def _split_heads(self, U: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Step 4: U [B,96·25,n] → q, k, v [B,n,heads,25,hd] (interleaved head split)."""
        B, _, n = U.shape
        x = U.transpose(1, 2).reshape(B, n, 3, self.dim, WINDOW, WINDOW)
        x = x.reshape(B, n, 3, self.head_dim, self.num_heads, SLOTS)  # channel c = d·heads + hd
        q, k, v = x.permute(2, 0, 1, 4, 5, 3).unbind(0)
        return q, k, v

    def _attend_and_fuse(self, U: Tensor, masked) -> Tensor:
        """Steps 4–11 for n windows: U [B,2400,n] → X [B,n,64]; ``masked`` applies step 7."""
        q, k, v = self._split_heads(U)
        B, n = q.shape[:2]
        attn = (q * self.scale) @ k.transpose(-2, -1)  # [B,n,heads,25,25]
        attn = masked(attn + self._position_bias())
        attn = self.softmax(attn)
        out = attn @ v  # [B,n,heads,25,hd]
        # step 10: head-major channels, channels-last memory (official layout; decides bits)
        out = out.permute(0, 1, 3, 2, 4).reshape(B * n, WINDOW, WINDOW, self.dim).permute(0, 3, 1, 2)
        out = self.fusion(out)  # [B·n,64,1,1]
        return self.proj(out.reshape(B, n, 2 * self.dim))

    def _finish(self, X: Tensor, h: int, w: int) -> Tensor:
        """Steps 12–13: X + mlp(norm2(X)), back to [B,64,h,w]."""
        X = X + self.mlp(self.norm2(X))
        return X.transpose(1, 2).reshape(X.shape[0], 2 * self.dim, h, w)

    # --- the official chain ----------------------------------------------------------------
    def update_resolution(self, H: int, W: int, device: torch.device, mask: Tensor | None = None) -> None:
        """Build (or adopt) the float [L,25,25] mask of the reference path for an h×w latent."""
        if (H, W) == (self.H, self.W):
            return
        self.H, self.W = H, W
        if mask is None:
            slots = anchor_slots(H, W, torch.device(device)).float()
            both = slots[:, :, None] * slots[:, None, :]  # a_i·a_j
            mask = torch.where(both == 0, MASK_VALUE, 0.0)
        self.attn_mask = mask.to(device)

    def forward_reference(self, a_hat: Tensor) -> Tensor:
        """Literal official computation (whole-map unfold, float mask). For tests and checks."""
        B, _, h, w = a_hat.shape
        self.update_resolution(h, w, a_hat.device)
        U = self.unfold(self._projected(a_hat))
        mask = self.attn_mask[None, :, None]  # [1,L,1,25,25]
        X = self._attend_and_fuse(U, lambda attn: attn + mask)
        return self._finish(X, h, w)

    # --- banded computation used by the codec ------------------------------------------------
    def _anchor_slots(self, h: int, w: int, device: torch.device) -> Tensor:
        key = (h, w, device)
        if self._slots_key != key:
            self._slots_key, self._slots = key, anchor_slots(h, w, device)
        return self._slots

    def _projection_for_windows(self) -> tuple[Tensor, Tensor]:
        """qkv_proj with outputs reordered to [q|k|v][head][d] and the q rows scaled by 0.25.

        Reordering outputs is a permutation of identical dot products, and ·0.25 is a power of
        two, so the result equals ``qkv_proj(t)`` regrouped and q·scale bit for bit.
        """
        C, heads, d = self.dim, self.num_heads, self.head_dim
        order = torch.arange(3 * C, device=self.qkv_proj.weight.device).view(3, d, heads).transpose(1, 2).reshape(-1)
        gain = torch.ones(3 * C, 1, device=order.device)
        gain[:C] = self.scale
        return self.qkv_proj.weight[order] * gain, self.qkv_proj.bias[order] * gain[:, 0]

    def forward(self, a_hat: Tensor) -> Tensor:
        """[B,32,h,w] → [B,64,h,w]; :meth:`forward_banded` unless ``reference`` is set."""
        return self.forward_reference(a_hat) if self.reference else self.forward_banded(a_hat)

    def forward_banded(self, a_hat: Tensor) -> Tensor:
        """The official computation in bands of latent rows, without materialising it whole.

        Windows are strided views of a zero-padded channels-last copy of the projected map
        (one copy per band instead of unfold + head-split copies). Masking: rows whose query
        slot is an in-image anchor get −inf (not −100) at keys that are not; their softmax
        weights become exact zeros instead of e^−100 ≈ 3.7e-44 *denormals*, which made softmax
        and A·v 6–30× slower on x86. The row maximum and sum are unchanged, so the other
        weights are bit-identical; the dropped terms are below half an ulp of each output sum
        (checked against :meth:`forward_reference` in the tests). This would only differ if a
        masked logit exceeded every unmasked logit of its row by more than 100 (the official
        row maximum would then be the masked entry). Rows whose query slot is not an anchor get
        −100 everywhere, as upstream (a constant shift that still rounds).
        """
        B, C, h, w = a_hat.shape
        heads, d, pad = self.num_heads, self.head_dim, WINDOW // 2
        weight, bias = self._projection_for_windows()
        tokens = self.norm1(a_hat.reshape(B, C, h * w).transpose(1, 2))
        G = F.pad(F.linear(tokens, weight, bias).reshape(B, h, w, 3 * C), (0, 0, pad, pad, pad, pad))
        sB, sH, sW, sC = G.stride()
        slots = self._anchor_slots(h, w, a_hat.device)
        position_bias = self._position_bias()
        rows = max(1, self.band_pixels // w)
        parts = []
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            n = (r1 - r0) * w
            windows = G.as_strided((B, r1 - r0, w, WINDOW, WINDOW, 3, heads, d),
                                   (sB, sH, sW, sH, sW, sC * heads * d, sC * d, sC), G.storage_offset() + r0 * sH)
            # one copy into [part, head, window, slot, d]
            qkv = windows.permute(5, 6, 0, 1, 2, 3, 4, 7).reshape(3, heads, B * n, SLOTS, d)
            band = slots[r0 * w:r1 * w].repeat(B, 1)  # [B·n,25]
            dead = band[:, :, None] & ~band[:, None, :]  # anchor query, non-anchor key
            shifted = ~band[:, :, None]  # non-anchor query: whole row −100
            out = []
            for hd in range(heads):
                q, k, v = qkv[0, hd], qkv[1, hd], qkv[2, hd]
                attn = torch.bmm(q, k.transpose(1, 2)).add_(position_bias[hd])
                attn.masked_fill_(dead, float("-inf")).add_(shifted, alpha=MASK_VALUE)
                out.append(torch.bmm(attn.softmax(dim=-1), v))
            fused = torch.cat(out, dim=-1).view(B * n, WINDOW, WINDOW, C).permute(0, 3, 1, 2)
            parts.append(self.proj(self.fusion(fused).reshape(B, n, 2 * C)))
        X = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return self._finish(X, h, w)
