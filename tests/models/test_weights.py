"""Weights files never run code: every model loader refuses a pickle that calls a function.

The malicious files are real ``torch.save`` pickles whose unpickling calls ``builtins.exec`` on a
payload that creates a marker file; a loader that ran it would leave the marker behind.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

from bench.errors import CheckpointError
from bench.models.mlicpp import load_checkpoint
from bench.models.msp.factory import create_model
from bench.models.msp.profiles import get_profile
from bench.hashing import file_sha256
from bench.models.weights import WeightsSpec, fetch, load_weights_file, resolve
from bench.models.zoo import load_model


class Payload:
    """Unpickles as ``exec(code)``: the code creates ``marker``."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('the payload ran')"

    def __reduce__(self):
        return (exec, (self.code,))


def save_malicious(path: Path, marker: Path, zipfile: bool = True) -> Path:
    obj = {"epoch": 1, "state_dict": {"w": torch.zeros(2)}, "optimizer": Payload(marker)}
    torch.save(obj, path, _use_new_zipfile_serialization=zipfile)
    return path


def load_mlicpp(tmp_path: Path, marker: Path) -> None:
    load_checkpoint(save_malicious(tmp_path / "mlicpp.pth.tar", marker))


def load_zoo(tmp_path: Path, marker: Path) -> None:
    load_model("bmshj2018-hyperprior", 1, weights=save_malicious(tmp_path / "zoo.pth.tar", marker))


def load_msp(tmp_path: Path, marker: Path) -> None:
    create_model(get_profile("msp-fast"), checkpoint=save_malicious(tmp_path / "msp.pth", marker))


@pytest.mark.parametrize("load", [load_mlicpp, load_zoo, load_msp], ids=["mlicpp", "zoo", "msp"])
def test_loaders_refuse_code_in_a_checkpoint(load, tmp_path):
    marker = tmp_path / "marker"
    with pytest.raises(CheckpointError, match=r"builtins\.exec") as err:
        load(tmp_path, marker)
    assert not marker.exists(), "loading the checkpoint ran code from it"
    assert "refused" in str(err.value) and str(tmp_path) in str(err.value)


def test_legacy_format_is_refused_too(tmp_path):
    """Pre-1.6 (non-zip) files cannot be scanned beforehand; torch's message names the global."""
    marker = tmp_path / "marker"
    path = save_malicious(tmp_path / "old.pth.tar", marker, zipfile=False)
    with pytest.raises(CheckpointError, match=r"\(exec\)"):
        load_weights_file(path)
    assert not marker.exists()


def test_official_mlicpp_layout_loads_without_extra_globals(tmp_path):
    """Spec §6.2: epoch, state_dict, a tensor loss, Adam and MultiStepLR state (a Counter) — all
    readable by the restricted unpickler, so no global needs allow-listing."""
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[80, 100], gamma=0.1)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = tmp_path / "checkpoint_best_loss.pth.tar"
    torch.save({"epoch": 120, "state_dict": net.state_dict(), "loss": torch.tensor(0.61),
                "optimizer": optimizer.state_dict(), "aux_optimizer": optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict()}, path)
    obj = load_weights_file(path)
    assert isinstance(obj["lr_scheduler"]["milestones"], Counter)
    assert torch.equal(obj["state_dict"]["weight"], net.weight)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_bytes(b"<html>404</html>")
    with pytest.raises(CheckpointError, match="cannot be read as a torch weights file") as err:
        load_weights_file(path)
    assert "weights.pth" in str(err.value) and "Unsupported operand" in str(err.value)
    assert "\n" not in str(err.value)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty or truncated"):
        load_weights_file(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_weights_file(tmp_path / "absent.pth")


# --- the weights description (one per rate point) ------------------------------------------------
def test_weights_table_is_checked():
    spec = WeightsSpec.parse({"path": "~/w.pth", "sha256": "ABCDEF12", "lambda": 0.0018, "metric": "mse",
                              "licence": "MIT", "source": "x"}, "c: rate point 'a'")
    assert spec.sha256 == "abcdef12" and spec.lam == 0.0018 and spec.location() == Path.home() / "w.pth"
    assert spec.describe()["lambda"] == 0.0018
    bad = [({"sha256": "ab"}, "exactly one of 'path'"),
           ({"path": "a", "url": "http://h/a"}, "exactly one of 'path'"),
           ({"path": "a", "sha256": "xyz"}, "not 8..64 hex digits"),
           ({"url": "http://h/a.pth"}, "need a sha256"),
           ({"url": "ftp://h/a.pth", "sha256": "abcdef12"}, "not an http"),
           ({"path": "a", "lambda": -1}, "must be > 0"),
           ({"path": "a", "lamda": 1}, "unknown weights key 'lamda'"),
           ({"path": 3}, "wrong type")]
    for table, message in bad:
        with pytest.raises(ValueError, match=message) as err:
            WeightsSpec.parse(table, "c: rate point 'a'")
        assert "c: rate point 'a'" in str(err.value)


def test_sha256_mismatch_names_both_hashes(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(2)}, path)
    actual = file_sha256(path)
    assert resolve(WeightsSpec(path=str(path), sha256=actual)) == (path, actual)
    assert resolve(WeightsSpec(path=str(path), sha256=actual[:8]))[1] == actual  # torch hub style prefix
    assert resolve(WeightsSpec(path=str(path)))[1] == actual  # unpinned: still recorded
    wrong = "f" * 64
    with pytest.raises(CheckpointError) as err:
        resolve(WeightsSpec(path=str(path), sha256=wrong))
    assert actual in str(err.value) and wrong in str(err.value) and str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        resolve(WeightsSpec(path=str(tmp_path / "absent.pth")))
    monkeypatch.delenv("NO_SUCH_DIR_VAR", raising=False)
    with pytest.raises(CheckpointError, match="NO_SUCH_DIR_VAR, which is not set"):
        WeightsSpec(path="$NO_SUCH_DIR_VAR/w.pth").location()


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_downloads_checks_and_reuses(http_root, tmp_path, monkeypatch):
    root, base = http_root
    torch.save({"w": torch.arange(4.0)}, root / "model-1.pth.tar")
    sha = file_sha256(root / "model-1.pth.tar")
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(cache))
    spec = WeightsSpec(url=f"{base}/model-1.pth.tar", sha256=sha)
    with pytest.raises(FileNotFoundError, match="download it from"):
        resolve(spec)
    path = fetch(spec)
    assert path == cache / "model-1.pth.tar" and file_sha256(path) == sha
    assert torch.equal(load_weights_file(path)["w"], torch.arange(4.0))
    (root / "model-1.pth.tar").unlink()
    assert fetch(spec) == path  # a checked local copy is reused, no second download


def test_fetch_refuses_a_wrong_download_and_leaves_nothing(http_root, tmp_path, monkeypatch):
    root, base = http_root
    (root / "model-2.pth.tar").write_bytes(b"not the weights")
    cache = tmp_path / "cache"
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(cache))
    expected = "a" * 64
    with pytest.raises(CheckpointError) as err:
        fetch(WeightsSpec(url=f"{base}/model-2.pth.tar", sha256=expected))
    assert expected in str(err.value) and file_sha256(root / "model-2.pth.tar") in str(err.value)
    assert list(cache.iterdir()) == []  # neither the file nor a .part is left behind
    with pytest.raises(RuntimeError, match="cannot download"):
        fetch(WeightsSpec(url=f"{base}/absent.pth.tar", sha256=expected))
    assert list(cache.iterdir()) == []


def save_zip_bomb(path: Path, declared_mib: int) -> Path:
    """A real ``torch.save`` archive whose tensor record is replaced by ``declared_mib`` MiB of
    deflated zeros: a file of a few MB that declares (and would inflate to) hundreds of MB."""
    import io
    import zipfile

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:
        for info in source.infolist():
            if not info.filename.endswith("/data/0"):
                bomb.writestr(info, source.read(info))
                continue
            with bomb.open(info.filename, "w", force_zip64=True) as record:
                for _ in range(declared_mib):
                    record.write(bytes(2**20))
    return path


def test_zip_bomb_is_refused_from_its_directory_before_torch_reads_it(tmp_path, monkeypatch):
    bomb = save_zip_bomb(tmp_path / "bomb.pth.tar", 300)
    assert bomb.stat().st_size < 4 * 2**20
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(CheckpointError, match=r"declare 31\d,\d{3},\d{3} bytes uncompressed .*decompression bomb"):
        load_weights_file(bomb)
    assert calls == []  # refused from the zip directory: torch never inflated anything


def test_ordinary_and_legacy_checkpoints_pass_the_size_check(tmp_path):
    big = {"w": torch.arange(2**20, dtype=torch.float32)}  # 4 MiB, stored uncompressed: declares ~its size
    torch.save(big, tmp_path / "zip.pth")
    torch.save(big, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)  # no zip directory at all
    for name in ("zip.pth", "legacy.pth"):
        assert torch.equal(load_weights_file(tmp_path / name)["w"], big["w"])
