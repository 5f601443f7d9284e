"""Float32 vs portable path as a protocol of the pipeline (issue 18): ``bench.tools.portable_paths``
runs derived configurations as cells with a forced cross-decode, and prints what it reads back from
the store; ``bench run --cross-decode force`` stores the forced text.

One real store serves the tool's tests (module fixture): msp-tiny on both paths, one 64×64 image
(``--images 1`` of two), one rate point. Whether float32 decodes differ depends on the CPU, so the
tests check structure and that the printed counts are the store's, not any count itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from bench import cli, worker
from bench.cells import Cell, Settings
from bench.report.tables import cross_decode_table
from bench.results import load
from bench.session import settings_of
from bench.store import read_measurements, read_runs
from bench.tools import portable_paths as pp
from tests.conftest import photo_like

RATE = "lambda=0.0018"
FORCED = re.compile(r"^(identical|differs) \(1 threads on \w+, forced\)(: \d+ values)?$")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for seed in (1, 2):
        Image.fromarray(photo_like(64, 64, seed)).save(folder / f"photo{seed}.png")
    return folder


@pytest.fixture(scope="module")
def ran(tmp_path_factory, images) -> tuple[Path, list[str], str]:
    """One tool run into a fresh store: (store, argv, what it printed)."""
    out = tmp_path_factory.mktemp("portable") / "results"
    argv = ["--codecs", "msp-tiny", "--dataset", str(images), "--images", "1", "--rates", RATE, "--results", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert pp.main(argv) == 0
    return out, argv, printed.getvalue()


def test_both_derived_configurations_are_stored_with_a_forced_cross_decode(ran) -> None:
    store, _, _ = ran
    rows = read_measurements(store, status=None)
    assert sorted(rows["codec"]) == ["msp-tiny+float32", "msp-tiny+portable"]
    assert set(rows["status"]) == {"ok"} and set(rows["image"]) == {"photo1"} and set(rows["rate_label"]) == {RATE}
    assert (rows["threads"] == pp.ENCODE_THREADS).all()
    assert all(FORCED.match(text) for text in rows["cross_decode"]), list(rows["cross_decode"])
    manifest = json.loads(read_runs(store)["manifest"].iloc[0])
    assert manifest["protocol"]["cross_decode"] is True and manifest["protocol"]["cross_decode_forced"] is True
    assert "bench.tools.portable_paths" in manifest["command"]
    codecs = manifest["codecs"]
    assert (codecs["msp-tiny+float32"]["params"]["portable"], codecs["msp-tiny+portable"]["params"]["portable"]) \
        == (False, True)
    assert all("derived by bench.tools.portable_paths" in c["description"] for c in codecs.values())
    # the report's Cross-decode table counts them, and says the count was forced
    table = cross_decode_table(load(store).rows).set_index("codec")
    assert table["cells"].tolist() == [1, 1] and set(table["decoded_with"]) == {"1 threads on cpu, forced"}


def test_the_printed_table_and_rate_change_are_the_stores(ran) -> None:
    store, _, printed = ran
    rows = read_measurements(store)
    lines = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line for line in printed.splitlines()
             if line.startswith("| msp-tiny |")}
    assert set(lines) == {("msp-tiny", "float32"), ("msp-tiny", "portable")}
    for (codec, path), line in lines.items():
        row = rows[rows["codec"] == f"{codec}+{path}"].iloc[0]
        values = _values(row["cross_decode"])
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2:] == ["1 of 1", "1", str(int(values > 0)), str(values), str(int(row["bytes"]))]
    f32, port = (int(rows.loc[rows["codec"] == f"msp-tiny+{p}", "bytes"].sum()) for p in pp.PATHS)
    change = 100.0 * (port / f32 - 1.0)
    assert f"msp-tiny: rate of the portable path against float32: {change:+.3f} % over 1 streams" in printed


def test_readme_table_of_a_portable_paths_store_is_the_tools_figures(ran) -> None:
    """``readme_tables portable-paths`` reads the same store back: the tool's counts, bytes and rate change."""
    from bench.tools.readme_decode import portable_paths_table

    store, _, printed = ran
    rows = read_measurements(store)
    table = portable_paths_table(store).splitlines()
    assert table[0].startswith("| codec | path | cells | streams decoded again (1 thread, forced) |")
    printed_rows = {line.split("|")[2].strip(): line for line in printed.splitlines() if line.startswith("| msp-tiny |")}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[:7] == [c.strip() for c in printed_rows[cells[1]].strip("|").split("|")]
    f32, port = (int(rows.loc[rows["codec"] == f"msp-tiny+{p}", "bytes"].sum()) for p in pp.PATHS)
    assert table[3].endswith(f"| {100.0 * (port / f32 - 1.0):+.3f} % (1 streams) |") and table[2].endswith("|  |")


def _values(text: str) -> int:
    """Differing values of a stored cross-decode text (its own parse, not the tool's)."""
    found = re.search(r": (\d+) values$", text)
    return int(found.group(1)) if found else 0


def test_the_same_command_resumes(ran, capsys) -> None:
    store, argv, _ = ran
    assert pp.main(argv) == 0
    assert "2 cells: 2 already in" in capsys.readouterr().err
    assert len(read_runs(store)) == 1 and len(read_measurements(store)) == 2


def test_a_stored_cell_without_a_forced_cross_decode_is_not_counted(ran, tmp_path, capsys) -> None:
    """Settings are not part of a cell's key: a cell stored by a run that did not force the count is
    skipped on resume, so the tool must not count it as forced; it names it and exits 1."""
    store, argv, _ = ran
    copy = tmp_path / "results"
    shutil.copytree(store, copy)
    with sqlite3.connect(copy / "results.sqlite") as db:
        db.execute("UPDATE measurements SET cross_decode = 'identical (1 threads on cpu)' WHERE codec = ?",
                   ("msp-tiny+float32",))
    results = argv.index("--results") + 1
    assert pp.main([*argv[:results], str(copy), *argv[results + 1:]]) == 1
    captured = capsys.readouterr()
    assert "| msp-tiny | float32 | 1 of 1 | 0 | 0 | 0 |" in captured.out
    assert "msp-tiny+float32: 1 stored cell(s) were not cross-decoded with the forced thread count" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["--codecs", "msp-tinyy"], "unknown codec(s): msp-tinyy"),
    (["--codecs", "jpeg-420"], "adapter 'jpeg' has no 'portable' parameter"),
    (["--codecs", "msp-tiny,webp"], "adapter 'webp' has no 'portable' parameter"),
    (["--codecs", "msp-tiny", "--images", "0"], "--images 0: give at least 1"),
    (["--codecs", "msp-tiny", "--rates", "q=1"], "--rates"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, images, capsys, argv, message) -> None:
    assert pp.main([*argv, "--dataset", str(images), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_outcome_reads_every_stored_form() -> None:
    assert pp.outcome("identical (1 threads on cpu, forced)") == ("identical", True, 0)
    assert pp.outcome("differs (1 threads on cpu, forced): 17 values") == ("differs", True, 17)
    assert pp.outcome("differs (1 threads on cpu): 17 values") == ("differs", False, 17)
    assert pp.outcome("differs (1 threads on cpu, forced): shape (2, 2, 3) vs (4, 4, 3)") == ("differs", True, None)
    assert pp.outcome("not cross-decoded: asked for 1 threads on cpu, the decoder ran with [2] threads")[0] is None
    assert pp.outcome("error (1 threads on cpu, forced): boom")[0] is None and pp.outcome(None)[0] is None


# --- bench run --cross-decode [force] -------------------------------------------------------------------------------

@pytest.mark.parametrize("given, on, forced", [([], False, False), (["--cross-decode"], True, False),
                                               (["--cross-decode", "force"], True, True)])
def test_run_cross_decode_option_reaches_the_settings(given, on, forced) -> None:
    argv = ["run", "--out", "r", *given, "--codecs", "jpeg-420"]
    settings = settings_of(cli.session_spec(cli.build_parser().parse_args(argv), argv))
    assert (settings.cross_decode, settings.cross_decode_forced) == (on, forced)
    assert settings.to_manifest().get("cross_decode_forced", False) is forced


@pytest.mark.timeout(1200)  # MLIC++ (83 M parameters) is loaded here and in two fresh decoders
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_forced_cross_decode_overrides_a_pinning_decoder_and_says_so() -> None:
    """MLIC++'s float32 decoder pins the encoder's thread count (its stream header): a plain cross-decode
    at 1 thread is not one, a forced one decodes with 1 thread and says so (before, the worker never
    passed --force-threads, so the pinning hid the other count)."""
    import dataclasses

    import torch

    from bench.codecs import registry
    from tests.conftest import PROJECT

    base = registry.load_config(PROJECT / "codecs" / "mlicpp-untrained.toml")
    config = dataclasses.replace(base, rates=base.rates[:1], params={**base.params, "portable": False})
    codec = registry.create(config, device="cpu")
    torch.set_num_threads(2)
    image = photo_like(64, 96, 5)
    data = codec.encode(image, config.rates[0]).data
    decoded = codec.decode(data)
    cell = Cell(config, config.rates[0], "d", "i", "i.png", "sha", "native", "cpu")
    plain = worker.cross_decode(cell, data, decoded, Settings(threads=2, cross_decode=True))
    forced = worker.cross_decode(cell, data, decoded, Settings(threads=2, cross_decode=True, cross_decode_forced=True))
    assert re.fullmatch(r"not cross-decoded: asked for 1 threads on cpu, the decoder ran with \[(1, )?2\] threads", plain), plain
    assert re.fullmatch(r"(identical \(1 threads on cpu, forced\)|differs \(1 threads on cpu, forced\): \d+ values)",
                        forced), forced
    with pytest.raises(ValueError, match="needs cross_decode"):
        Settings(cross_decode_forced=True)
