"""Weights files never run code: every model loader refuses a pickle that calls a function.

The malicious files are real ``torch.save`` pickles whose unpickling calls ``builtins.exec`` on a
payload that creates a marker file; a loader that ran it would leave the marker behind.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from bench.errors import CheckpointError
from bench.models.mlicpp import load_checkpoint
from bench.models.msp.factory import create_model
from bench.models.msp.profiles import get_profile
from bench.models.weights import load_weights_file
from bench.models.zoo import load_model, weights_file_name


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
    save_malicious(tmp_path / weights_file_name("bmshj2018-hyperprior", "mse", 1), marker)
    load_model("bmshj2018-hyperprior", 1, checkpoint_dir=tmp_path, allow_untrained=False)


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
