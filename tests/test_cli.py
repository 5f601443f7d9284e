"""``python -m bench run`` on bad input: one line on stderr, exit status 2, nothing run; and the
summary that closes a good run. No Kodak needed: the images are crops of scikit-image's photographs."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from bench import cli
from bench.analysis.bd import bd_table
from bench.store import read_measurements
from tests.conftest import python_module


def write_photos(folder: Path, size: tuple[int, int] = (192, 176), names=("astronaut", "coffee")) -> Path:
    """Centre crops (width × height) of scikit-image's bundled photographs, saved as PNG."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for name in names:
        pixels = getattr(skimage.data, name)()
        top, left = (pixels.shape[0] - h) // 2, (pixels.shape[1] - w) // 2
        Image.fromarray(pixels[top:top + h, left:left + w]).save(folder / f"{name}.png")
    return folder


def bench(*args: str, preexec_fn=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` in a 200-column terminal."""
    return python_module("bench", *args, env={"COLUMNS": "200"}, timeout=timeout, preexec_fn=preexec_fn)


def one_line_error(capsys, argv: list[str]) -> str:
    """Run ``bench.cli.main(argv)`` in this process; assert exit 2 and exactly one stderr line; return it."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return write_photos(tmp_path_factory.mktemp("photos") / "tiny")


@pytest.mark.parametrize("option, value, expected", [
    ("--jobs", "0", "--jobs 0: must be at least 1"),
    ("--threads", "0", "--threads 0: must be at least 1"),
    ("--images", "-1", "--images -1: must be at least 0"),
    ("--repeats", "0", "--repeats 0: must be at least 1"),
    ("--ladder-per-size", "0", "--ladder-per-size 0: must be at least 1"),
    ("--timeout", "0", "--timeout 0.0: must be a positive number of seconds"),
    ("--ladder", "foo", "--ladder: resolution 'foo' is not WxH"),
    ("--ladder", "256x4", "--ladder: resolution '256x4' is too small"),
    ("--rates", ",", "--rates ',': no rate label given"),
])
def test_bad_option_values_are_one_line_exit_2(capsys, photos, tmp_path, option, value, expected):
    out = tmp_path / "res"
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420", "--dataset", str(photos), "--out", str(out),
                                  option, value])
    assert expected in err
    assert not out.exists()  # refused before anything was created


def test_rate_label_missing_for_one_codec_names_codec_and_labels(capsys, photos, tmp_path):
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420,webp", "--rates", "quality=5", "--dataset",
                                  str(photos), "--out", str(tmp_path / "res")])
    assert "codec 'webp' has no rate point 'quality=5' (known: quality=0, " in err


def test_unknown_codec_is_exit_2(capsys, photos, tmp_path):
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420,nope", "--dataset", str(photos), "--out",
                                  str(tmp_path / "res")])
    assert "unknown codec(s): nope" in err


def test_absent_kodak_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420", "--dataset", "kodak", "--out", str(tmp_path / "r")])
    assert f"Kodak not found in {tmp_path / 'kodak'}" in err and "python -m bench.datasets fetch kodak" in err


def test_same_stem_images_refuse_the_run_naming_both(capsys, photos, tmp_path):
    folder = write_photos(tmp_path / "mixed")
    Image.open(folder / "coffee.png").save(folder / "coffee.bmp")
    err = one_line_error(capsys, ["run", "--codecs", "jpeg-420", "--dataset", str(folder), "--ladder", "none",
                                  "--out", str(tmp_path / "res")])
    assert str(folder / "coffee.bmp") in err and str(folder / "coffee.png") in err


def test_output_under_a_file_is_one_line_naming_the_path(photos, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = bench("run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none", "--out",
                 str(blocker / "res"), "--quiet")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {blocker / 'res'}: Not a directory (ENOTDIR)")


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail (EFBIG) instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _empty_store_bytes(folder: Path) -> int:
    """The largest file that creating an empty results store writes (its write-ahead log, measured before
    closing checkpoints it away); it grows as the schema grows."""
    from bench.store import Store
    with Store(folder):
        return max(f.stat().st_size for f in folder.iterdir())


@pytest.mark.parametrize("fails_at", ["open", "write"])
def test_store_that_cannot_grow_is_one_line_naming_the_store(photos, tmp_path, fails_at):
    """A file size limit makes SQLite fail as on a full disk, either creating the store or writing a cell;
    either way the run says so in one line naming the store."""
    room = _empty_store_bytes(tmp_path / "probe")
    limit = room // 2 if fails_at == "open" else room + 4096  # 'write': the schema fits, the cells do not
    out = tmp_path / "res"
    done = bench("run", "--codecs", "jpeg-420", "--dataset", str(photos), "--ladder", "none", "--jobs", "1",
                 "--repeats", "1", "--out", str(out), "--quiet", preexec_fn=_file_size_limit(limit))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert done.stderr.count("error:") == 1, done.stderr
    expected = {"open": f"error: {out / 'results.sqlite'}: cannot open the results store for writing",
                "write": f"error: results store {out}: "}[fails_at]
    assert last.startswith(expected), last


def test_summary_counts_cells_by_kind_and_gives_per_rate_medians_and_bd(photos, tmp_path):
    out = tmp_path / "res"
    done = bench("run", "--codecs", "jpeg-420,webp", "--dataset", str(photos), "--images", "1", "--ladder", "64x64",
                 "--ladder-set", str(photos), "--ladder-per-size", "1", "--jobs", "1", "--repeats", "1",
                 "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    rows = read_measurements(out)
    native = rows[rows["resolution"] == "native"]
    text = done.stderr

    def row_of(first: str, second: str | None = None) -> list[str]:
        for line in text.splitlines():
            cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
            if cells and cells[0] == first and (second is None or cells[1] == second):
                return cells
        raise AssertionError(f"no table row {first} {second or ''} in:\n{text}")

    # per codec: native and ladder cells apart; BD-rate against jpeg-420, as the analysis computes it
    expected = bd_table(native, native[native["codec"] == "jpeg-420"], "psnr_rgb", "pchip", group_by=("codec",))
    for codec in ("jpeg-420", "webp"):
        cells = row_of(codec)
        assert cells[1:4] == ["6", "1", "0"]  # 1 image × 6 rates; one 64×64 crop; no error
        bd = float(expected.loc[expected["codec"] == codec, "bd_rate_pct"].iloc[0])
        assert cells[4] == f"{bd:+.1f} %"
    assert row_of("jpeg-420")[4] == "+0.0 %" and float(row_of("webp")[4].rstrip(" %")) < 0
    # per rate point: the median over the images (one image here: its value), not a mean over the ladder
    medians = native.groupby(["codec", "rate_label"])[["bpp", "psnr_rgb"]].median()
    for (codec, label), values in medians.iterrows():
        cells = row_of(codec, label)
        assert cells[2:] == ["1", f"{values['bpp']:.3f}", f"{values['psnr_rgb']:.2f}"]
    assert "mean bpp" not in text


def test_a_reader_that_stops_early_ends_the_output_quietly(run_python):
    """``python -m bench.anchors list | head``: when the reader is gone, stop without an error
    message, with the shell's SIGPIPE status (the pipe here has no reader at all)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = run_python("bench.anchors", "list", preexec_fn=lambda: os.dup2(write_end, 1))
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""
