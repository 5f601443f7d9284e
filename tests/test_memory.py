"""Memory per cell in a clean process (bench.memory): codecs of known memory through the real CLI,
and a learned codec's model bytes. Real worker processes, real zygotes and forks, real SQLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.store import read_measurements

MIB = 2**20


def _codec(folder: Path, name: str, adapter: str, params: str, levels: tuple[int, ...]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(
        f'adapter = "tests.support.memory_codecs:{adapter}"\n[params]\n{params}\n'
        f'[ladder]\nparam = "level"\nvalues = {list(levels)}\n')


def _run(run_python, synthetic_images: Path, codecs: Path, out: Path, codec: str, *extra: str):
    proc = run_python("bench", "--codecs-dir", str(codecs), "run", "--codecs", codec, "--dataset",
                      str(synthetic_images), "--images", "2", "--ladder", "none", "--out", str(out), "--jobs", "1",
                      "--repeats", "2", "--quiet", *extra, data_dir=synthetic_images.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return read_measurements(out)


def test_decoder_allocating_n_mib_reads_n_mib_in_every_cell(tmp_path, run_python, synthetic_images):
    # 24 MiB: below glibc's largest dynamic mmap threshold, so a long-lived worker keeps the freed
    # block and reuses it — the old in-worker reading showed ~0 growth after the first cell.
    _codec(tmp_path / "codecs", "alloc", "AllocatingDecoder", "mib = 24", (1, 2, 3))
    frame = _run(run_python, synthetic_images, tmp_path / "codecs", tmp_path / "res", "alloc", "--memory", "all")
    assert len(frame) == 6 and (frame.status == "ok").all()
    assert (frame.mem_method == "fork").all()
    growth = frame.dec_mem_growth_bytes / MIB
    assert ((growth > 24 * 0.95) & (growth < 24 * 1.05)).all(), list(growth)
    assert (frame.enc_mem_growth_bytes < MIB).all(), list(frame.enc_mem_growth_bytes)
    # the peak is the whole clean process: more than the growth, far less than a worker with torch
    assert (frame.dec_mem_peak_bytes > frame.dec_mem_growth_bytes).all()
    assert frame.model_bytes.isna().all()


def test_decoder_allocating_nothing_reads_under_1_mib_and_mid_skips_other_rates(tmp_path, run_python,
                                                                                  synthetic_images):
    _codec(tmp_path / "codecs", "noalloc", "NonAllocatingDecoder", "", (1, 2, 3))
    frame = _run(run_python, synthetic_images, tmp_path / "codecs", tmp_path / "res", "noalloc", "--memory", "mid")
    assert len(frame) == 6 and (frame.status == "ok").all()
    measured = frame[frame.rate_label == "level=2"]  # the middle of three rate points
    assert len(measured) == 2 and (measured.mem_method == "fork").all()
    assert (measured.dec_mem_growth_bytes.abs() < MIB).all(), list(measured.dec_mem_growth_bytes)
    assert (measured.dec_mem_peak_bytes > 4 * MIB).all()  # the constructor's 4 MiB buffer is resident
    skipped = frame[frame.rate_label != "level=2"]
    assert skipped.mem_method.str.startswith("skipped").all()
    assert skipped.dec_mem_growth_bytes.isna().all() and skipped.enc_mem_peak_bytes.isna().all()


def test_learned_codec_model_bytes_and_clean_memory(codecs_dir, small_photo):
    torch = pytest.importorskip("torch")
    from bench.codecs import registry
    from bench.codecs.base import Encoded
    from bench.memory import clean_memory, close_zygotes

    torch.set_num_threads(2)  # the children must run 2-thread torch work without hanging
    codec = registry.create(registry.load_config(codecs_dir / "msp-fast.toml"), device="cpu")
    rate = codec.config.rates[0]
    image = np.ascontiguousarray(small_photo[:64, :64])
    data = Encoded.of(codec.encode(image, rate)).data  # this process has now run parallel torch work
    try:
        row = clean_memory(codec, image, rate, data, "all")
    finally:
        close_zygotes()
    model = codec._model(codec.rate_index(rate))
    expected = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert row["model_bytes"] == expected and expected > MIB
    assert row["mem_method"] == "fork", row["mem_method"]
    for side in ("enc", "dec"):
        assert 0 < row[f"{side}_mem_growth_bytes"] < row[f"{side}_mem_peak_bytes"], row
        assert row[f"{side}_mem_peak_bytes"] > expected  # the model is resident in the clean process


def test_a_memory_child_killed_is_recorded_and_the_cell_stands(small_photo):
    from bench.codecs import registry
    from bench.codecs.base import CodecConfig, RatePoint
    from bench.measure import Protocol, measure
    from bench.memory import close_zygotes

    rate = RatePoint("level=1", {"level": 1})
    config = CodecConfig("killed", "tests.support.memory_codecs:KilledInMemoryChild", {}, (rate,))
    codec = registry.create(config)
    try:
        row, _, decoded = measure(codec, small_photo, rate, Protocol(1, 1, "all"))
    finally:
        close_zygotes()
    assert decoded.shape == small_photo.shape and row["dec_time_s"] > 0
    assert row["mem_method"].startswith("failed: decode in the memory child died: signal SIGKILL"), row["mem_method"]
    assert row["dec_mem_growth_bytes"] is None and row["enc_mem_growth_bytes"] is None


@pytest.mark.parametrize("name", ["jpeg-420", "webp"])
def test_pillow_initialisation_is_not_charged_to_the_first_call(codecs_dir, name):
    """The zygote warms the codec's Pillow format (issue 21): a 64×96 image codes in well under a MiB,
    where Pillow's plugin and library initialisation had added 1.2 MiB (JPEG) and 3 MiB (WebP)."""
    from bench.codecs import registry
    from bench.codecs.base import Encoded
    from bench.memory import clean_memory, close_zygotes

    codec = registry.create(registry.load_config(codecs_dir / f"{name}.toml"), device="cpu")
    rate = codec.config.middle_rate
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    data = Encoded.of(codec.encode(image, rate)).data
    try:
        row = clean_memory(codec, image, rate, data, "all")
    finally:
        close_zygotes()
    assert row["mem_method"] == "fork", row["mem_method"]
    assert 0 <= row["enc_mem_growth_bytes"] < MIB / 2 and 0 <= row["dec_mem_growth_bytes"] < MIB / 2, row
