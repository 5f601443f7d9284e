"""The per-part decode benchmark (bench.tools.decode_parts): codec-generic parts, stored rows, no timing verdicts.

Times are measured, never judged: the tests check that the instrumentation changes no pixel, is
undone afterwards, that the parts sum to the whole decode (seconds and counted FLOPs), and what
reaches the store.
"""

from __future__ import annotations

import json
import sqlite3
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from bench.codecs import registry
from bench.models.decodeparts import PARTS, DecodeParts, PartTimer
from bench.tools.decode_parts import main
from tests.conftest import photo_like


def _codec(name: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained
        return registry.create(registry.load_configs()[name], device="cpu")


@pytest.mark.parametrize("name", ["msp-fast", "mbt2018-tiny", "mlicpp-untrained"])
def test_part_timer_splits_the_decode_and_leaves_it_unchanged(name):
    from compressai.ans import RansDecoder

    codec = _codec(name)
    rate = codec.config.rates[0]
    image = photo_like(64, 64, seed=2)
    data = codec.encode(image, rate).data
    plain = codec.decode(data)
    parts = codec.decode_parts(rate)
    assert isinstance(parts, DecodeParts) and parts.modules["g_s"] and parts.coding
    decode_stream = vars(RansDecoder)["decode_stream"]
    model = codec.memory_model(rate)
    net = getattr(model, "net", model)  # CompressAI networks sit inside a CompressAINet (which hooks g_s itself)

    def hooks() -> list[int]:
        return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules()]

    before = hooks()
    timer = PartTimer(parts)
    with timer.attached():
        t, c = time.perf_counter(), time.process_time()
        timed = codec.decode(data)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert np.array_equal(timed, plain)  # instrumentation changes no pixel
    split = timer.split(wall, cpu)
    assert list(split) == list(PARTS)
    for key, total in (("seconds", wall), ("cpu_seconds", cpu)):
        assert abs(sum(p[key] for p in split.values()) - total) < 1e-9
    assert split["g_s"]["seconds"] > 0 and split["context"]["seconds"] > 0 and split["entropy_coding"]["seconds"] > 0
    # undone: no hook left on the model, no wrapper left on an instance or on the rANS class
    assert hooks() == before
    assert vars(RansDecoder)["decode_stream"] is decode_stream
    assert all(name not in vars(owner) for owner, name in parts.coding if owner is not RansDecoder)
    assert np.array_equal(codec.decode(data), plain)


def test_timer_charges_a_nested_call_to_its_own_part_only():
    import torch

    calls = []

    class Coder:
        def decode(self):
            calls.append("coding")

    coder = Coder()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g_s = torch.nn.Identity()

        def forward(self, x):
            coder.decode()  # entropy coding inside the g_s part's caller, not inside g_s
            return self.g_s(x)

    net = Net()
    net.g_s.register_forward_hook(lambda *_: coder.decode())  # a coding call nested inside g_s
    timer = PartTimer(DecodeParts(modules={"g_s": [net.g_s]}, coding=[(coder, "decode")]))
    with timer.attached():
        net(torch.zeros(1))
    assert calls == ["coding", "coding"]
    split = timer.split(1.0, 1.0)
    assert split["entropy_coding"]["seconds"] > 0 and split["g_s"]["seconds"] >= 0
    assert abs(sum(p["seconds"] for p in split.values()) - 1.0) < 1e-12
    with pytest.raises(ValueError, match="rest"):
        DecodeParts(modules={"rest": []})


@pytest.fixture()
def photo_dir(tmp_path, monkeypatch):
    Image.fromarray(photo_like(64, 64, seed=5)).save(tmp_path / "photo.png")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_tool_on_a_tiny_image_stores_one_row_per_part(photo_dir, capsys):
    out = photo_dir / "results"
    assert main(["--codecs", "msp-fast,mbt2018-tiny", "--sizes", "64x64", "--source", "photo.png", "--threads", "1",
                 "--repeats", "1", "--versus", "msp-fast:mbt2018-tiny", "--json", str(photo_dir / "parts.json"),
                 "--results", str(out)]) == 0
    conn = sqlite3.connect(out / "results.sqlite")
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM decode_parts")]
    msp = {r["part"]: r for r in rows if r["codec"] == "msp-fast"}
    assert set(msp) == {"g_s", "context", "entropy_coding", "rest", "total"}  # MSP: no hyperprior, no h_s
    mbt = {r["part"]: r for r in rows if r["codec"] == "mbt2018-tiny"}
    assert set(mbt) == {"g_s", "h_s", "context", "entropy_coding", "rest", "total"}
    for parts in (msp, mbt):
        total = parts.pop("total")
        assert total["threads"] == 1 and total["size"] == "64x64" and total["bytes"] > 0
        for named in ("g_s", "context", *(("h_s",) if "h_s" in parts else ())):
            assert parts[named]["gflop"] > 0 and parts[named]["matmul_fraction"] > 0
        assert parts["entropy_coding"]["gflop"] == 0 and parts["entropy_coding"]["matmul_fraction"] is None  # uncounted
        assert abs(sum(p["seconds"] for p in parts.values()) - total["seconds"]) < 1e-9
        assert abs(sum(p["cpu_seconds"] for p in parts.values()) - total["cpu_seconds"]) < 1e-9
        assert abs(sum(p["gflop"] for p in parts.values()) - total["gflop"]) < 1e-9 and total["gflop"] > 0
        assert total["matmul_gflops"] > 0 and total["dtype"] == "float64"  # the configurations' portable path
    report = json.loads((photo_dir / "parts.json").read_text())
    (ratio,) = report["versus"]
    assert ratio["fast"] == "msp-fast" and ratio["slow"] == "mbt2018-tiny" and ratio["wall_ratio"] > 0
    (unit,) = [u for u in report["records"][0]["by_threads"][0]["units"] if u["codec"] == "msp-fast"]
    assert unit["identical_to_uninstrumented"] is True and unit["floor_s"] > 0
    assert "mbt2018-tiny ÷ msp-fast" in capsys.readouterr().out


def test_modes_are_configuration_overrides_and_counts_do_not_depend_on_them(photo_dir, capsys):
    out = photo_dir / "results"
    assert main(["--codecs", "mlicpp-untrained,msp-fast", "--modes", "reference,fast,portable", "--sizes", "64x64",
                 "--source", "photo.png", "--threads", "2", "--repeats", "1", "--json", str(photo_dir / "p.json"),
                 "--results", str(out)]) == 0
    assert "mode 'reference' does not apply to msp-fast" in capsys.readouterr().err
    rows = sqlite3.connect(out / "results.sqlite").execute(
        "SELECT codec, mode, dtype, gflop FROM decode_parts WHERE part = 'g_s'").fetchall()
    got = {(c, m): (d, g) for c, m, d, g in rows}
    assert set(got) == {("mlicpp-untrained", m) for m in ("reference", "fast", "portable")} | {
        ("msp-fast", "fast"), ("msp-fast", "portable")}
    assert got[("msp-fast", "fast")][0] == "float32" and got[("msp-fast", "portable")][0] == "float64"
    assert got[("mlicpp-untrained", "reference")][0] == "float32"
    assert got[("mlicpp-untrained", "portable")][0] == "float64"
    # counted work is the direct convolutions' whatever the mode (Winograd does not change the count)
    assert len({g for (c, _), (_, g) in got.items() if c == "mlicpp-untrained"}) == 1


@pytest.mark.parametrize("argv, message", [
    (["--codecs", "msp-fastt"], "unknown codec 'msp-fastt'"),
    (["--codecs", "msp-fast", "--modes", "turbo"], "unknown mode(s) turbo"),
    (["--codecs", "jpeg-420"], "jpeg-420"),
    (["--codecs", "msp-fast", "--versus", "msp-fast"], "FAST:SLOW"),
    (["--codecs", "msp-fast", "--threads", "0"], "threads must be 1..256"),
    (["--codecs", "msp-fast", "--rate", "99"], "the ladder has"),
])
def test_bad_input_is_one_line_and_exit_2(photo_dir, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--sizes", "64x64", "--source", "photo.png", "--results", str(photo_dir / "r")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (photo_dir / "r").exists()


def test_report_section_renders_the_stored_rows(photo_dir):
    import pandas as pd

    from bench.report.decodeparts import decode_parts_section
    from bench.report.document import Document
    from bench.results import ResultsView, decode_parts_rows
    from bench.store import read_decode_parts

    out = photo_dir / "results"
    argv = ["--codecs", "msp-tiny", "--sizes", "64x64", "--source", "photo.png", "--threads", "1", "--repeats", "1",
            "--json", str(photo_dir / "p.json"), "--results", str(out)]
    assert main(argv) == 0 and main(argv) == 0  # two runs: the view keeps the latest
    stored = read_decode_parts(out)
    rows = decode_parts_rows(stored)
    assert len(stored) == 2 * len(rows) and set(rows["run_id"]) == {stored["run_id"].max()}
    assert list(rows["part"]) == ["g_s", "context", "entropy_coding", "rest", "total"]
    total = rows[rows["part"] == "total"].iloc[0]
    assert total["floor_s"] == pytest.approx(total["gflop"] / total["matmul_gflops"])
    assert total["decode_over_floor"] == pytest.approx(total["seconds"] / total["floor_s"])
    written = {}
    doc = Document("t")
    view = ResultsView(None, pd.DataFrame(), pd.DataFrame(), decode_parts=rows)
    decode_parts_section(doc, view, lambda frame, name: written.setdefault(name, frame) is frame and f"data/{name}.csv")
    md = doc.markdown()
    assert "Decode parts" in md and "data/decode_parts.csv" in md and len(written["decode_parts"]) == 5
    lines = [line for line in md.splitlines() if line.startswith("| msp-tiny")]
    assert [line.split("|")[5].strip() for line in lines] == ["g_s", "context", "entropy_coding", "rest", "total"]
    assert "default (float64)" in lines[0]
    empty = Document("t")
    decode_parts_section(empty, ResultsView(None, pd.DataFrame(), pd.DataFrame()), lambda *_: "")
    assert empty.blocks == []  # no rows, no section


def _tool_into_store_then_report(photo_dir, out, run_python):
    """msp-tiny's decode parts on a 64×64 crop into the store ``out``, then ``bench.report`` of it:
    (report folder, report.md text)."""
    assert main(["--codecs", "msp-tiny", "--sizes", "64x64", "--source", "photo.png", "--threads", "1",
                 "--repeats", "1", "--json", str(photo_dir / "p.json"), "--results", str(out)]) == 0
    report = photo_dir / "report"
    done = run_python("bench.report", str(out), "--out", str(report))
    assert done.returncode == 0, done.stderr
    return report, (report / "report.md").read_text()


def test_benchmark_store_report_shows_the_decode_parts_table(photo_dir, run_python):
    from tests.test_cli import write_photos

    photos = write_photos(photo_dir / "tiny")
    out = photo_dir / "results"
    done = run_python("bench", "run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none",
                      "--repeats", "1", "--jobs", "1", "--out", str(out), "--quiet", timeout=1800)
    assert done.returncode == 0, done.stderr
    report, md = _tool_into_store_then_report(photo_dir, out, run_python)
    assert "### Decode parts" in md and "| msp-tiny |" in md
    csv = (report / "data" / "decode_parts.csv").read_text().splitlines()
    assert len(csv) == 1 + 5 and csv[0].startswith("id,run_id,codec")


def test_a_store_of_decode_parts_rows_only_is_reported(photo_dir, run_python):
    """A store written by the tool alone renders: provenance, the Decode parts table, one line
    for the sections it cannot fill (it used to exit 2 and point elsewhere)."""
    report, md = _tool_into_store_then_report(photo_dir, photo_dir / "results", run_python)
    assert "## Provenance" in md and "### Decode parts" in md and "| msp-tiny |" in md
    assert "holds only `decode_parts` rows" in md and "## Rate-distortion" not in md
    assert "python -m bench.tools.decode_parts" in md.split("### Runs")[1].split("####")[0]  # its run's command
    assert (report / "report.html").is_file()
    assert len((report / "data" / "decode_parts.csv").read_text().splitlines()) == 1 + 5
