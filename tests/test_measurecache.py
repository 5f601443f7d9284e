"""Per-size measurements taken once and reused (bench.measurecache): complexity counts and
``--memory size`` readings, through the real CLI and worker processes, across a resumed run."""

from __future__ import annotations

import json
from pathlib import Path

from bench.measurecache import MeasureCache
from bench.memory import REUSED
from bench.store import read_measurements


def _counted_codec(folder: Path, log: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "counted.toml").write_text(
        'adapter = "tests.support.memory_codecs:CountedComplexity"\n'
        f'[params]\ncount_log = "{log}"\n[[rates]]\nlabel = "level=1"\nlevel = 1\n')


def _run(run_python, synthetic_images: Path, codecs: Path, out: Path, images: int):
    proc = run_python("bench", "--codecs-dir", str(codecs), "run", "--codecs", "counted", "--dataset",
                      str(synthetic_images), "--images", str(images), "--ladder", "none", "--out", str(out),
                      "--jobs", "1", "--repeats", "1", "--quiet", data_dir=synthetic_images.parent, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return read_measurements(out).set_index("image")


def test_counts_and_memory_are_taken_once_per_size_and_a_resumed_run_reuses_them(tmp_path, run_python,
                                                                                 synthetic_images):
    """photo1/photo2 are 256×384, photo3/photo4 96×128. Run 1 codes photo1; run 2 (same --out, a
    fresh worker) adds the other three: photo2 reuses run 1's count and memory reading from the
    results folder, photo3 (another size) is counted and measured, photo4 reuses photo3's."""
    log, codecs, out = tmp_path / "counts.txt", tmp_path / "codecs", tmp_path / "res"
    _counted_codec(codecs, log)
    first = _run(run_python, synthetic_images, codecs, out, 1)
    assert log.read_text().split() == ["256x384"]
    assert first.loc["photo1", "mem_method"] == "fork"
    assert (out / "cache" / "complexity").is_dir() and (out / "cache" / "memory").is_dir()

    rows = _run(run_python, synthetic_images, codecs, out, 4)
    assert (rows.status == "ok").all() and len(rows) == 4
    assert log.read_text().split() == ["256x384", "96x128"]  # a different size is counted; the same is not
    for image in rows.index:
        height, width = rows.loc[image, ["height", "width"]]
        assert rows.loc[image, "enc_kmac_per_px"] * 1e3 == 7 and rows.loc[image, "dec_kmac_per_px"] * 1e3 == 5
        assert json.loads(rows.loc[image, "complexity"])["counted_size"] == [height, width]
    assert rows.loc["photo3", "mem_method"] == "fork"
    for reused, measured in (("photo2", "photo1"), ("photo4", "photo3")):
        assert rows.loc[reused, "mem_method"] == "fork" + REUSED
        for column in ("enc_mem_peak_bytes", "enc_mem_growth_bytes", "dec_mem_peak_bytes", "dec_mem_growth_bytes"):
            assert rows.loc[reused, column] == rows.loc[measured, column]


def test_a_cache_file_that_is_corrupt_or_for_another_key_is_a_miss(tmp_path):
    key = {"kind": "complexity", "config": "abc", "size": [2, 3]}
    MeasureCache(tmp_path).put(key, {"params": 3})
    assert MeasureCache(tmp_path).get(key) == {"params": 3}  # a fresh process reads the file
    (path,) = (tmp_path / "complexity").glob("*.json")
    path.write_text(json.dumps({"key": {**key, "size": [3, 2]}, "value": {"params": 4}}))
    assert MeasureCache(tmp_path).get(key) is None
    path.write_text("{not json")
    assert MeasureCache(tmp_path).get(key) is None
    MeasureCache(None).put(key, {"params": 5})  # no folder: this process only, nothing written
    assert not list(tmp_path.glob("*/.tmp-*"))


def test_a_folder_that_cannot_be_written_keeps_the_value_in_this_process(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = MeasureCache(blocker / "cache")  # below a file: mkdir fails
    cache.put({"kind": "memory"}, {"x": 1})
    assert cache.get({"kind": "memory"}) == {"x": 1}
