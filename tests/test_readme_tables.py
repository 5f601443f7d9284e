"""README tables printed from their data (bench.tools.readme_tables): the README's blocks equal what the
generators print from committed inputs, and the store-based generators read real stores made here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from bench.tools import readme_data, readme_decode
from bench.tools import readme_tables as rt
from tests.conftest import photo_like

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(name: str) -> str:
    found = [table for _, command, table in rt.blocks(README.read_text(encoding="utf-8"))
             if command.split()[0] == name]
    assert len(found) == 1, f"one README block marked for {name}"
    return found[0]


def test_readme_vtm_anchor_table_is_the_generators_output():
    """Fails when someone edits the README's VTM table by hand (or the anchor file changes without it)."""
    assert readme_block("vtm-anchor") == readme_data.vtm_anchor_table()


def test_readme_kmac_rows_of_the_quick_configurations_are_counted():
    """The quick rows (msp-fast, mbt2018: about 10 s each on a loaded 2-core machine); the whole table,
    MLIC++ and the larger MSP profiles included (about 1.5 min), is the slow test below."""
    block = readme_block("kmac").splitlines()
    made = readme_data.kmac_table(["msp-fast", "mbt2018"]).splitlines()
    assert made[:2] == block[:2]
    assert made[2:] == [line for line in block[2:] if line.startswith(("| `msp-fast`", "| `mbt2018`"))]


@pytest.mark.slow
def test_readme_kmac_table_is_the_generators_output():
    assert readme_block("kmac") == readme_data.kmac_table()


def test_every_readme_mark_parses_and_names_one_table(tmp_path):
    marks = rt.blocks(README.read_text(encoding="utf-8"))
    assert {command.split()[0] for _, command, _ in marks} == set(rt.GENERATORS)
    assert all(table.startswith("| ") for _, _, table in marks)


def test_update_writes_each_regenerated_table_and_leaves_the_rest(tmp_path, capsys):
    readme = tmp_path / "README.md"
    good = readme_data.vtm_anchor_table()
    stale = good.replace("| 32 | 0.4917 |", "| 32 | 0.4918 |")
    assert stale != good
    readme.write_text(f"intro\n\n{rt.MARK}vtm-anchor -->\n{stale}\n\nmiddle\n\n{rt.MARK}vtm-anchor -->\n\nend\n",
                      encoding="utf-8")
    assert rt.main(["--update", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == (f"intro\n\n{rt.MARK}vtm-anchor -->\n{good}\n\nmiddle\n\n"
                                                  f"{rt.MARK}vtm-anchor -->\n{good}\n\nend\n")
    assert capsys.readouterr().out.count("UPDATED vtm-anchor") == 2
    assert rt.main(["--check", str(readme)]) == 0


def test_check_names_the_table_that_differs_and_skips_absent_stores(tmp_path, capsys):
    readme = tmp_path / "README.md"
    good = readme_data.vtm_anchor_table()
    readme.write_text(f"{rt.MARK}vtm-anchor -->\n{good}\n\ntext\n\n"
                      f"{rt.MARK}trained-bd --results nowhere -->\n| a |\n|---|\n", encoding="utf-8")
    assert rt.main(["--check", str(readme)]) == 0
    out = capsys.readouterr().out
    assert "same    vtm-anchor" in out and "skipped trained-bd (line 13): no store at nowhere" in out
    readme.write_text(readme.read_text().replace("| 32 | 0.4917 |", "| 32 | 0.4918 |"), encoding="utf-8")
    assert rt.main(["--check", str(readme)]) == 1
    captured = capsys.readouterr()
    assert "DIFFERS vtm-anchor" in captured.out and "-| 32 | 0.4918 |" in captured.out
    assert captured.err.strip() == "README tables that differ from their data: vtm-anchor"


@pytest.mark.parametrize("argv, message", [
    ([], "give one of a table NAME, --check README.md or --update README.md"),
    (["vtm-anchor", "--check", "README.md"], "give one of a table NAME"),
    (["--check", "no-such-readme.md"], "no file no-such-readme.md"),
    (["decode-parts", "--results", "no-such-store"], "no results store at no-such-store"),
    (["decode-parts", "--versus", "msp-fast"], "FAST:SLOW"),
    (["kmac", "--rows", "no-such-codec"], "no-such-codec"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        rt.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_a_bad_mark_is_refused(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"{rt.MARK}rm -rf / -->\n| a |\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        rt.main(["--check", str(readme)])
    assert exc.value.code == 2 and "not a readme_tables command" in capsys.readouterr().err


# --- store-based generators on small real stores ---------------------------------------------------

@pytest.fixture
def photo_dir(tmp_path, monkeypatch):
    Image.fromarray(photo_like(64, 64, seed=5)).save(tmp_path / "photo.png")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    return tmp_path


def test_decode_parts_table_from_a_tiny_run(photo_dir):
    from bench.results import decode_parts_rows
    from bench.store import read_decode_parts
    from bench.tools.decode_parts import main as decode_parts

    out = photo_dir / "results"
    assert decode_parts(["--codecs", "msp-tiny,mbt2018-tiny", "--sizes", "64x64", "--source", "photo.png",
                         "--threads", "1", "--repeats", "1", "--json", str(photo_dir / "p.json"),
                         "--results", str(out)]) == 0
    table = readme_decode.decode_parts_table(out, "msp-tiny", "mbt2018-tiny", "64x64").splitlines()
    assert table[0] == ("| threads | msp-tiny decode | its floor | decode/floor | mbt2018-tiny decode | "
                        "mbt2018-tiny ÷ msp-tiny | mbt2018-tiny ÷ msp-tiny's floor |")
    rows = decode_parts_rows(read_decode_parts(out))
    total = rows[rows["part"] == "total"].set_index("codec")
    a, b = total.loc["msp-tiny"], total.loc["mbt2018-tiny"]
    assert a["matmul_gflop_per_cpu_s"] > 0  # the CPU floor's yardstick is stored now
    cpu_floor = a["gflop"] / a["matmul_gflop_per_cpu_s"]
    assert table[2] == (f"| 1 | {a['seconds']:.1f} s / {a['cpu_seconds']:.1f} s | {a['floor_s']:.1f} s / "
                        f"{cpu_floor:.1f} s | {a['seconds'] / a['floor_s']:.1f} | {b['seconds']:.1f} s / "
                        f"{b['cpu_seconds']:.1f} s | ×{b['seconds'] / a['seconds']:.2f} / "
                        f"×{b['cpu_seconds'] / a['cpu_seconds']:.2f} | ×{b['seconds'] / a['floor_s']:.1f} / "
                        f"×{b['cpu_seconds'] / cpu_floor:.1f} |")
    # a store from before the column: the CPU floor is '-', never a made-up number
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("UPDATE decode_parts SET matmul_gflop_per_cpu_s = NULL")
    old = readme_decode.decode_parts_table(out, "msp-tiny", "mbt2018-tiny", "64x64").splitlines()[2]
    assert f"{a['floor_s']:.1f} s / - |" in old and old.endswith("/ - |")
    with pytest.raises(Exception, match="no decode_parts rows of msp-fast"):
        readme_decode.decode_parts_table(out, "msp-fast", "mbt2018-tiny", "64x64")


def test_portable_cost_and_parts_tables_from_a_run_of_two_modes(photo_dir):
    """Both tables are the stored rows of one interleaved run: each mode's total, the ratio, each part."""
    from bench.results import decode_parts_rows
    from bench.store import read_decode_parts
    from bench.tools.decode_parts import main as decode_parts

    out = photo_dir / "results"
    assert decode_parts(["--codecs", "msp-tiny,mbt2018-tiny", "--modes", "default,fast", "--sizes", "64x64",
                         "--source", "photo.png", "--threads", "1", "--repeats", "1", "--no-warm-up",
                         "--json", str(photo_dir / "p.json"), "--results", str(out)]) == 0
    rows = decode_parts_rows(read_decode_parts(out))
    total = rows[rows["part"] == "total"].set_index(["codec", "mode"])
    cost = readme_decode.portable_cost_table(out, ["msp-tiny", "mbt2018-tiny"], "64x64", ["default", "fast"])
    lines = cost.splitlines()
    assert lines[0] == ("| codec | threads | default decode s (wall / CPU) | fast decode s (wall / CPU) | "
                        "default ÷ fast |")
    for line, codec in zip(lines[2:], ("msp-tiny", "mbt2018-tiny"), strict=True):
        a, b = total.loc[(codec, "default")], total.loc[(codec, "fast")]
        assert line == (f"| {codec} | 1 | {a['seconds']:.2f} / {a['cpu_seconds']:.2f} | {b['seconds']:.2f} / "
                        f"{b['cpu_seconds']:.2f} | ×{a['seconds'] / b['seconds']:.2f} / "
                        f"×{a['cpu_seconds'] / b['cpu_seconds']:.2f} |")
    with pytest.raises(Exception, match="mode\\(s\\) reference"):
        readme_decode.portable_cost_table(out, ["msp-tiny"], "64x64", ["default", "reference"])

    parts = readme_decode.parts_table(out, "msp-tiny", "mbt2018-tiny", "64x64", "fast").splitlines()
    mine = rows[(rows["mode"] == "fast") & (rows["codec"] == "msp-tiny")].set_index("part")
    assert [line.split("|")[1].strip() for line in parts[2:]][-1] == "total"
    assert {line.split("|")[1].strip() for line in parts[2:]} >= set(mine.index)
    g_s = next(line for line in parts[2:] if line.startswith("| g_s |")).split("|")
    r = mine.loc["g_s"]
    assert g_s[2:5] == [f" {r['gflop']:.1f} ", f" {r['seconds']:.2f} / {r['cpu_seconds']:.2f} ",
                        f" {r['matmul_fraction']:.2f} "]


def test_trained_bd_table_reads_the_shipped_configurations_rows(tmp_path, run_python):
    """A real run of two codecs; rows of an older configuration of one of them (more recent in the store)
    are not what the table shows: the shipped configuration's are."""
    from tests.test_cli import write_photos

    photos = write_photos(tmp_path / "tiny", size=(96, 80), names=("astronaut", "coffee", "chelsea"))
    out = tmp_path / "results"
    done = run_python("bench", "run", "--codecs", "jpeg-420,webp", "--dataset", str(photos), "--ladder", "none",
                      "--repeats", "1", "--warmup", "0", "--memory", "off", "--jobs", "1", "--out", str(out),
                      "--quiet", timeout=900)
    assert done.returncode == 0, done.stderr
    table = readme_data.trained_bd_table(out, ["webp"], anchors=["codec:jpeg-420"], dataset="tiny").splitlines()
    assert table[0] == "| vs anchor (BD-rate PSNR-RGB, pchip, 95 % interval, 3 images) | webp |"
    assert table[2].startswith("| `jpeg-420` | ") and " % [" in table[2]
    from bench.store import read_measurements

    webp = read_measurements(out).query("codec == 'webp'")
    jpeg = read_measurements(out).query("codec == 'jpeg-420'")
    versus = readme_decode.decode_versus_table(out, "jpeg-420", "webp").splitlines()
    assert len(versus) == 3 and versus[2].startswith(f"| native | {int(webp['threads'].iloc[0])} | ")
    ratio = webp["dec_cpu_s"].median() / jpeg["dec_cpu_s"].median()
    assert versus[2].endswith(f"| ×{ratio:.1f} | {len(jpeg)} | {len(webp)} |")
    with pytest.raises(Exception, match="no cell size and thread count with rows of both jpeg-420 and avif"):
        readme_decode.decode_versus_table(out, "jpeg-420", "avif")
    luma = readme_data.trained_bd_table(out, ["webp"], anchors=["codec:jpeg-420"], dataset="tiny", metric="psnr-y").splitlines()
    assert luma[0] == "| vs anchor (BD-rate PSNR-Y, pchip, 95 % interval, 3 images) | webp |" and len(luma) == 3
    assert luma[2] != table[2]  # another metric, another BD-rate (96×80 is too small for MS-SSIM)
    assert table[-2:] == [f"| encode: median CPU-s per image (native size) | {webp['enc_cpu_s'].median():.2f} |",
                          f"| decode: median CPU-s per image (native size) | {webp['dec_cpu_s'].median():.2f} |"]
    # the same cells under another configuration hash, stored later with worse numbers: left out
    with sqlite3.connect(out / "results.sqlite") as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(measurements)") if r[1] != "id"]
        body = ", ".join(columns)
        conn.execute(f"INSERT INTO measurements ({body}) SELECT "
                     + ", ".join("cell_key || '-old'" if c == "cell_key" else "'0ther'" if c == "config_hash"
                                 else "bytes * 3" if c == "bytes" else "bpp * 3" if c == "bpp" else c
                                 for c in columns) + " FROM measurements WHERE codec = 'webp'")
    assert readme_data.trained_bd_table(out, ["webp"], anchors=["codec:jpeg-420"], dataset="tiny").splitlines() == table
    with sqlite3.connect(out / "results.sqlite") as conn:
        conn.execute("DELETE FROM measurements WHERE codec = 'webp' AND config_hash != '0ther'")
    with pytest.raises(Exception, match="no rows of the shipped configuration of webp"):
        readme_data.trained_bd_table(out, ["webp"], anchors=["codec:jpeg-420"], dataset="tiny")
