"""Multiply-add counting (bench.models.macs), the matmul yardstick (bench.device) and the stored
columns (bench.complexity): a hand count, part attribution, stored columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.codecs import registry
from bench.cells import Cell, Protocol, Settings
from bench.codecs.base import CodecConfig, RatePoint
from bench.device import matmul_gflops
from bench.models.macs import count_macs, model_complexity
from bench.models import zoo


@pytest.fixture(scope="module", autouse=True)
def no_user_weights(tmp_path_factory):
    """An empty torch hub cache: the zoo models are untrained (counting does not need weights)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
        yield


def conv_macs(cin: int, cout: int, k: int, out_h: int, out_w: int) -> int:
    return cin * cout * k * k * out_h * out_w


def hand_count_factorized(N: int, M: int, H: int, W: int) -> tuple[int, int]:
    """(g_a, g_s) MACs of bmshj2018-factorized on an H×W input, layer by layer.

    g_a: four 5×5 stride-2 convs with a GDN after the first three (GDN is a 1×1 conv, N×N per
    position, on x²). g_s: four 5×5 stride-2 transposed convs (MACs on the *input* grid) with an
    inverse GDN after the first three.
    """
    h = [H // 2, H // 4, H // 8, H // 16]
    w = [W // 2, W // 4, W // 8, W // 16]
    g_a = (conv_macs(3, N, 5, h[0], w[0]) + N * N * h[0] * w[0]
           + conv_macs(N, N, 5, h[1], w[1]) + N * N * h[1] * w[1]
           + conv_macs(N, N, 5, h[2], w[2]) + N * N * h[2] * w[2]
           + conv_macs(N, M, 5, h[3], w[3]))
    g_s = (conv_macs(M, N, 5, h[3], w[3]) + N * N * h[2] * w[2]
           + conv_macs(N, N, 5, h[2], w[2]) + N * N * h[1] * w[1]
           + conv_macs(N, N, 5, h[1], w[1]) + N * N * h[0] * w[0]
           + conv_macs(N, 3, 5, h[0], w[0]))
    return g_a, g_s


def test_counter_matches_a_hand_count_of_bmshj2018_factorized():
    model = zoo.load_model("bmshj2018-factorized", 1)  # quality 1: N=128, M=192
    c = model_complexity(model, 100, 130)  # padded to 128×192 as the codec pads
    g_a, g_s = hand_count_factorized(128, 192, 128, 192)
    assert (c.counted_height, c.counted_width) == (128, 192)
    assert c.part_macs["analysis"] == g_a and c.part_macs["synthesis"] == g_s
    assert c.encoder_macs == g_a and c.decoder_macs == g_s  # no hyperprior, no context model
    assert c.kmac_per_px(c.decoder_macs) == pytest.approx(g_s / (100 * 130) / 1e3)
    assert c.params == sum(p.numel() for p in model.net.parameters())


def test_count_is_right_inside_inference_mode():
    """Inside inference_mode the counter's module tracker fails and composite ops go uncounted;
    the count must be the same as outside (not zero)."""
    model = zoo.load_model("bmshj2018-factorized", 1)
    outside = model_complexity(model, 64, 64).part_macs
    with torch.inference_mode():
        inside = model_complexity(model, 64, 64).part_macs
    assert inside == outside and outside["synthesis"] > 0


def test_modules_in_lists_are_attributed_once():
    """Children of a ModuleList are never called through the list; nested modules count once."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g_a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 4, 1))
            self.context = torch.nn.ModuleList([torch.nn.Conv2d(4, 4, 1), torch.nn.Conv2d(4, 4, 1)])

        def forward(self, x):
            y = self.g_a(x)
            for m in self.context:
                y = m(y)
            return torch.nn.functional.conv2d(y, torch.ones(2, 4, 1, 1))  # outside any submodule

    macs = count_macs(Net(), torch.ones(1, 3, 8, 8))
    assert macs == {"g_a": (3 * 4 * 9 + 4 * 4) * 64, "context": 2 * 4 * 4 * 64, "": 4 * 2 * 64}


def test_mbt2018_parts_and_encoder_decoder_split():
    c = model_complexity(zoo.load_model("mbt2018", 1), 64, 64)
    p = c.part_macs
    assert all(p[k] > 0 for k in ("analysis", "hyper_analysis", "hyper_synthesis", "context", "synthesis"))
    assert c.encoder_macs == p["analysis"] + p["hyper_analysis"] + p["hyper_synthesis"] + p["context"]
    assert c.decoder_macs == p["hyper_synthesis"] + p["context"] + p["synthesis"]


def test_mlicpp_fast_mode_halves_the_entropy_parameter_nets():
    """Fast mode runs the entropy-parameter 1×1 nets on the half of the positions they serve;
    the count must see it (the rest of the model is the same in both modes)."""
    from bench.models.mlicpp import untrained_model

    model = untrained_model(seed=1)
    fast = model_complexity(model.configure(reference=False), 128, 128)
    ref = model_complexity(model.configure(reference=True), 128, 128)
    for part in ("analysis", "synthesis", "hyper_analysis", "hyper_synthesis"):
        assert fast.part_macs[part] == ref.part_macs[part] > 0
    assert 0 < fast.part_macs["context"] < ref.part_macs["context"]
    assert fast.params == ref.params == 83_501_408


FACTORIZED = CodecConfig(name="factorized", adapter="compressai", params={"architecture": "bmshj2018-factorized"},
                         rates=(RatePoint("q1", {"quality": 1}),))


def _cell(config: CodecConfig, path, sha: str) -> Cell:
    return Cell(config=config, rate=config.rates[0], dataset="synthetic", image=path.name, image_path=str(path),
                image_sha256=sha, resolution="native", device="cpu")


def test_worker_stores_kmac_for_learned_codecs_only(tmp_path, small_photo):
    """A real cell through the worker and the store: a learned codec gets its counted kMAC/pixel
    (the hand count over the real 96×128 pixels), a classical codec gets NULLs."""
    from PIL import Image

    from bench.hashing import file_sha256
    from bench.store import Store
    from bench.worker import WorkerState, run_cell

    path = tmp_path / "photo3.png"
    Image.fromarray(small_photo).save(path)
    h, w = small_photo.shape[:2]
    state = WorkerState(Settings(protocol=Protocol(warmup=0, repeats=1)))
    jpeg = registry.load_configs()["jpeg-444"]
    with pytest.warns(UserWarning, match="UNTRAINED"):
        rows = [run_cell(_cell(c, path, file_sha256(path)), state) for c in (FACTORIZED, jpeg)]
    assert [r["status"] for r in rows] == ["ok", "ok"], [r.get("error") for r in rows]
    with Store(tmp_path) as store:
        for row in rows:
            store.add_measurement(row)
        stored = {r["codec"]: r for r in store.rows()}
    learned, classical = stored["factorized"], stored["jpeg-444"]
    g_a, g_s = hand_count_factorized(128, 192, 128, 128)  # 96×128 padded to 128×128
    assert learned["dec_kmac_per_px"] == pytest.approx(g_s / (h * w) / 1e3)
    assert learned["enc_kmac_per_px"] == pytest.approx(g_a / (h * w) / 1e3)
    assert learned["params"] > 0 and learned["matmul_gflops"] > 0
    split = json.loads(learned["complexity"])
    assert split["counted_size"] == [128, 128] and split["decoder_parts"] == ["synthesis"]
    assert all(classical[k] is None for k in ("enc_kmac_per_px", "dec_kmac_per_px", "params", "complexity"))


def test_matmul_yardstick_is_a_rate():
    rate = matmul_gflops(n=256, repeats=2)
    assert np.isfinite(rate) and rate > 0.01


def _rows():
    import pandas as pd

    base = {"device": "cpu", "dataset": "kodak", "resolution": "native", "pixels": 1000, "megapixels": 0.001,
            "timer": "perf_counter", "image": "a", "machine": "test-cpu × 2 (x86_64)",
            **dict.fromkeys(("enc_peak_rss_bytes", "dec_peak_rss_bytes", "enc_gpu_peak_bytes", "dec_gpu_peak_bytes",
                             "enc_mem_bytes", "dec_mem_bytes"), float("nan"))}
    learned = [{**base, "codec": "net", "adapter": "compressai", "dec_time_s": t, "enc_time_s": 2 * t,
                "enc_kmac_per_px": 300.0, "dec_kmac_per_px": 200.0, "params": 5_000_000, "matmul_gflops": 100.0,
                "image": im} for t, im in ((0.004, "a"), (0.008, "b"))]
    classical = [{**base, "codec": "jpeg", "adapter": "pillow", "dec_time_s": 0.001, "enc_time_s": 0.001}]
    return pd.DataFrame(learned + classical)


def test_report_complexity_table_and_matmul_fraction():
    from bench.report.tables import complexity_table

    table = complexity_table(_rows()).set_index("codec")
    # 200 kMAC/px × 1000 px × 2 FLOP = 4e8 FLOP in 4 ms = 100 GFLOP/s = the matmul rate (1.0); 8 ms: 0.5
    assert table.loc["net", "dec_matmul_fraction"] == pytest.approx(0.75)
    assert table.loc["net", "dec_kmac_per_px"] == 200.0 and table.loc["net", "params"] == 5_000_000
    assert np.isnan(table.loc["jpeg", "dec_kmac_per_px"]) and np.isnan(table.loc["jpeg", "dec_matmul_fraction"])


def test_kmac_tradeoff_plot_draws_only_counted_codecs():
    import pandas as pd

    from bench.report import figures
    from bench.report.tables import tradeoff

    bd = pd.DataFrame({"codec": ["net", "jpeg"], "device": ["cpu", "cpu"], "status_psnr": ["ok", "ok"],
                       "bd_rate_psnr_pct": [-10.0, 30.0]})
    frame = tradeoff(bd, _rows(), {"net": "compressai", "jpeg": "pillow"}).set_index("codec")
    assert frame.loc["net", "dec_kmac_per_px"] == 200.0 and np.isnan(frame.loc["jpeg", "dec_kmac_per_px"])
    assert frame.loc["net", "dec_time_s"] == pytest.approx(0.006)
    fig = figures.tradeoff_figure(frame.reset_index(), "anchor", {}, x="dec_kmac_per_px")
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "net" in labels and "jpeg" not in labels
    assert "kMAC/pixel" in fig.axes[0].get_xlabel()


def test_a_portable_model_counts_like_its_float32_twin():
    """The portable path (float32 analysis, float64 rest) is counted, not turned into an error,
    and a dtype changes no multiply-add."""
    from bench.models import zoo

    float32 = model_complexity(zoo.load_model("mbt2018", 1, portable=False), 64, 96)
    portable = model_complexity(zoo.load_model("mbt2018", 1, portable=True), 64, 96)
    assert portable.part_macs == float32.part_macs and portable.part_params == float32.part_params
    assert all(portable.part_macs[p] > 0 for p in ("analysis", "synthesis", "context", "hyper_synthesis"))


def test_one_list_of_part_names():
    """The parts a count lands in, the encoder/decoder sums and what a codec's ``complexity_parts``
    may name are one list (bench.models.macs.PART_NAMES), not copies."""
    from bench.codecs import compressai_model
    from bench.models.macs import DECODER_PARTS, ENCODER_PARTS, PART_NAMES, PARTS

    assert set(PARTS.values()) | {"other"} == set(PART_NAMES)
    assert set(ENCODER_PARTS) | set(DECODER_PARTS) <= set(PART_NAMES)
    assert not hasattr(compressai_model, "PARTS")
