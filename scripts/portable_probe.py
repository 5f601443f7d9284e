"""Where does a decoder's thread-count dependence come from? Stage by stage, fresh processes.

    python scripts/portable_probe.py ref OUT.pt [--float64]      # 2 threads: inputs + outputs
    python scripts/portable_probe.py check OUT.pt T [--float64]  # T threads: recompute, compare

Each stage (MLIC++ hyper-decoder h_s, first entropy-parameter net, g_s and the whole decoder;
mbt2018 h_s, entropy parameters, g_s, whole decoder; MSP g_s and whole decoder) is recomputed in
a fresh process at T threads from the *same* inputs as the reference run, so a difference is that
stage's own. Printed: differing floats and max |Δ|, scale-index flips (entropy parameters), uint8
mismatches after clamp·255·round (images), and, for float64, the smallest distance of any
output to a decision boundary (the margin a flip would need).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
args = [a for a in sys.argv[1:] if not a.startswith("--")]
FLOAT64 = "--float64" in sys.argv
mode, path = args[0], args[1]
torch.set_num_threads(int(args[2]) if len(args) > 2 else 2)

from bench.models.imageio import to_tensor  # noqa: E402
from bench.models.mlicpp import untrained_model  # noqa: E402
from bench.models.weights import load_weights_file  # noqa: E402
from bench.models.mlicpp.checkerboard import ANCHOR  # noqa: E402
from bench.models.msp import create_model, get_profile  # noqa: E402
from bench.models.zoo import load_model  # noqa: E402
from tests.conftest import photo_like  # noqa: E402

H, W = 128, 192
DT = torch.float64 if FLOAT64 else torch.float32


def stages() -> dict:
    x = to_tensor(photo_like(H, W, 3))
    out = {}
    m = untrained_model(1).configure(reference=False, portable=FLOAT64)
    with torch.inference_mode():
        y = m.g_a(m._fmt(m.pad(x)))
        z = m.h_a(y).to(DT)
        zh = m.entropy_bottleneck.decompress(m.entropy_bottleneck.compress(z), z.shape[-2:])
        out["mlicpp.h_s"] = (lambda t: m.h_s(m._fmt(t)), zh)
        hp = m.h_s(m._fmt(zh))
        out["mlicpp.ep0"] = (lambda t: torch.cat(m._entropy_params(m.entropy_parameters_anchor[0], t, ANCHOR), 1), hp)
        out["mlicpp.g_s"] = (lambda t: m.g_s(m._fmt(t)), torch.round(y).to(DT))
        out["mlicpp.e2e"] = (lambda d: m.decompress(d, threads=torch.get_num_threads()), m.compress(x).data)
    zoo = load_model("mbt2018", 3, seed=0, portable=FLOAT64)
    net = zoo.net
    with torch.no_grad():
        y = zoo.analysis(x)
        zh = torch.round(net.h_a(y))
        out["mbt.h_s"] = (net.h_s, zh)
        out["mbt.ep"] = (net.entropy_parameters, torch.cat([net.h_s(zh), net.context_prediction(torch.round(y))], 1))
        out["mbt.g_s"] = (net.g_s, torch.round(y))
        out["mbt.e2e"] = (zoo.decode_image, zoo.compress(x))
    for prof in ("msp-fast", "msp-base"):
        mm = create_model(get_profile(prof), None, seed=0)
        if FLOAT64:
            mm.make_portable()
        with torch.no_grad():
            y = mm.analysis(x)
            out[f"{prof}.g_s"] = (mm.g_s, torch.round(y))
            out[f"{prof}.e2e"] = (mm.decompress, mm.compress_latent(y, (H, W))[0])
    return out


def margin(values: torch.Tensor, boundaries: torch.Tensor) -> float:
    """Smallest |value − boundary| (how far the closest decision is from flipping)."""
    v = values.double().reshape(-1).contiguous()
    b = boundaries.double().contiguous()
    i = torch.searchsorted(b, v).clamp(1, len(b) - 1)
    return float(torch.minimum((v - b[i - 1]).abs(), (v - b[i]).abs()).min())


def main() -> None:
    st = stages()
    if mode == "ref":
        with torch.no_grad():
            torch.save({k: (inp, fn(inp)) for k, (fn, inp) in st.items()}, path)
        print("saved", ", ".join(st))
        return
    ref = load_weights_file(path, "probe reference")  # the one safe loader: never runs code from the file
    table = torch.exp(torch.linspace(torch.log(torch.tensor(0.11)), torch.log(torch.tensor(256.0)), 64))  # CompressAI's
    T = torch.get_num_threads()
    for k, (fn, _) in st.items():
        inp, want = ref[k]
        with torch.no_grad():
            got = fn(inp)
        d = (got.double() - want.double()).abs()
        line = f"{k:15s} {str(DT)[6:]} T={T}: differing {int((d > 0).sum())}/{want.numel()} max|Δ| {float(d.max()):.3g}"
        if k.endswith(("ep0", ".ep")):
            C = want.shape[1] // 2
            sw, sg = want[:, :C].double().clamp_min(0.11), got[:, :C].double().clamp_min(0.11)
            flips = int((torch.searchsorted(table.double(), sw.contiguous()) != torch.searchsorted(table.double(), sg.contiguous())).sum())
            line += f"; scale-index flips {flips}; margin to the scale table {margin(sw[sw > 0.11], table):.3g}"
        if k.endswith(("g_s", "e2e")):
            a, b = want.clamp(0, 1).mul(255), got.clamp(0, 1).mul(255)
            line += f"; uint8 mismatches {int((a.round() != b.round()).sum())}/{a.numel()}"
            line += f"; margin to a rounding point {float(((a - a.floor()) - 0.5).abs().min()):.3g}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
