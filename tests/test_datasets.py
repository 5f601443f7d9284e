"""Named sets, the resolution ladder rule, and fetching Kodak over real HTTP (from 127.0.0.1)."""

import functools
import http.server
import shutil
import threading

import pytest

from bench import datasets
from bench.errors import UsageError
from bench.images import load_image


@pytest.fixture
def http_folder(tmp_path):
    """Serve a folder on 127.0.0.1 with the standard library's HTTP server."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/kodak/"
    server.shutdown()


def test_fetch_kodak_verifies_every_image(data_dir, http_folder, tmp_path):
    root, url = http_folder
    shutil.copytree(data_dir / "kodak", root / "kodak")
    target = tmp_path / "data"
    folder = datasets.fetch_kodak(target, base_url=url)
    assert sorted(p.name for p in folder.glob("*.png")) == [f"kodim{i:02d}.png" for i in range(1, 25)]
    assert not list(folder.glob("*.part"))
    images, errors = datasets.load_all(datasets.resolve("kodak", target))
    assert len(images) == 24 and errors == {}


def test_fetch_rejects_a_wrong_image_and_leaves_nothing_behind(data_dir, http_folder, tmp_path):
    root, url = http_folder
    shutil.copytree(data_dir / "kodak", root / "kodak")
    shutil.copy(root / "kodak" / "kodim02.png", root / "kodak" / "kodim01.png")  # wrong pixels
    target = tmp_path / "data"
    with pytest.raises(RuntimeError, match="kodim01.png: pixel checksum mismatch"):
        datasets.fetch_kodak(target, base_url=url)
    assert not (target / "kodak" / "kodim01.png").exists()
    assert not list((target / "kodak").glob("*.part"))


def test_fetch_reports_unreachable_server(tmp_path):
    with pytest.raises(RuntimeError, match="cannot download"):
        datasets.fetch_kodak(tmp_path, base_url="http://127.0.0.1:9/kodak/", timeout=5)


def test_fetch_cli(data_dir, http_folder, tmp_path, capsys):
    root, url = http_folder
    shutil.copytree(data_dir / "kodak", root / "kodak")
    assert datasets.main(["fetch", "kodak", "--root", str(tmp_path), "--base-url", url]) == 0
    assert "Kodak verified" in capsys.readouterr().out


def test_kodak_and_highres_resolve(data_dir):
    kodak = datasets.resolve("kodak", data_dir)
    assert len(kodak.paths) == 24
    highres = datasets.resolve("highres", data_dir)
    assert len(highres.paths) >= 3 and all(p.suffix == ".png" for p in highres.paths)


def test_samples_fallback_needs_no_download(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    dataset = datasets.default_dataset()
    assert dataset.name == "samples" and "scikit-image" in dataset.note
    images, errors = datasets.load_all(dataset)
    assert len(images) >= 4 and not errors
    assert all(im.pixels.shape[2] == 3 for im in images)


def test_modified_kodak_image_is_flagged(data_dir, tmp_path):
    folder = tmp_path / "kodak"
    shutil.copytree(data_dir / "kodak", folder)
    import numpy as np
    from PIL import Image

    pixels = load_image(folder / "kodim03.png").pixels.copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(folder / "kodim03.png")
    images, errors = datasets.load_all(datasets.resolve("kodak", tmp_path))
    assert len(images) == 23 and "differ from the published Kodak" in errors["kodim03.png"]
    assert np.asarray(pixels).shape == (512, 768, 3)


def test_ladder_rule(data_dir):
    images, _ = datasets.load_all(datasets.resolve("highres", data_dir))
    entries, skipped = datasets.ladder(images, [(256, 256), (2048, 1365), (3072, 2048), (9000, 9000)], per_size=2)
    by_size = {}
    for e in entries:
        by_size.setdefault(e.label, []).append(e)
        assert e.pixels().shape == (e.height, e.width, 3)
        assert e.image.width >= e.width and e.image.height >= e.height  # never upscaled
    assert len(by_size["256x256"]) == 2 and len(by_size["3072x2048"]) == 1
    assert skipped == ["9000x9000"]
    # Largest images first: the same pictures recur across sizes, so content stays comparable.
    assert by_size["256x256"][0].image.name == by_size["2048x1365"][0].image.name


def test_unknown_dataset():
    with pytest.raises(FileNotFoundError, match="unknown dataset"):
        datasets.resolve("no-such-set")


def test_one_image_file_is_a_set_of_that_image(tmp_path):
    """``--dataset``/``--ladder-set`` may name one image (decode_scaling's crops of one picture)."""
    _write_images(tmp_path, "a.png", "b.png")
    one = datasets.resolve(str(tmp_path / "b.png"))
    assert one.name == "b" and one.paths == (tmp_path / "b.png",)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="an image file"):
        datasets.resolve(str(tmp_path / "notes.txt"))


def _write_images(folder, *names):
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_same_stem_files_are_refused_naming_both(tmp_path):
    """a.png and a.bmp would both be image 'a': refused, not merged into one id."""
    folder = _write_images(tmp_path / "mixed", "a.png", "a.bmp", "b.png")
    with pytest.raises(UsageError) as caught:
        datasets.resolve(str(folder))
    message = str(caught.value)
    assert str(folder / "a.bmp") in message and str(folder / "a.png") in message and "'a'" in message


def test_same_stem_in_two_highres_folders_is_refused(tmp_path):
    _write_images(tmp_path / "tecnick-subset", "x.png")
    _write_images(tmp_path / "highres", "x.png")
    with pytest.raises(UsageError, match="would both be image 'x'"):
        datasets.resolve("highres", tmp_path)


def test_gif_files_belong_to_a_folder_set(tmp_path):
    folder = _write_images(tmp_path / "set", "a.png", "b.gif")
    assert [p.name for p in datasets.resolve(str(folder)).paths] == ["a.png", "b.gif"]


def test_bad_ladder_size_is_a_usage_error():
    with pytest.raises(UsageError, match="'foo' is not WxH"):
        datasets.parse_size("foo")


def test_show_of_an_absent_set_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    assert datasets.main(["show", "kodak"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Kodak not found in ") and "fetch kodak" in err


def test_show_of_a_colliding_folder_is_one_line_exit_2(tmp_path, capsys):
    folder = _write_images(tmp_path / "mixed", "a.png", "a.bmp")
    assert datasets.main(["show", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.bmp" in err and "a.png" in err
