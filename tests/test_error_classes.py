"""Error rows are classed by cause: a failed allocation is "out of memory" whatever wraps it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from bench.errors import CodecError
from bench.worker import classify_error
from bench.store import read_measurements
from tests.conftest import python_module


def raised(fail, wrap: bool = True) -> BaseException:
    """The exception a real failing call raises, optionally wrapped in a CodecError as the
    learned adapters do (``raise CodecError(...) from exc``)."""
    try:
        try:
            fail()
        except Exception as exc:
            if wrap:
                raise CodecError(f"MLIC++ encode failed: {type(exc).__name__}") from exc
            raise
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("fail", [
    lambda: np.empty(1 << 62, dtype=np.uint8),     # numpy: a MemoryError subclass
    lambda: torch.empty(1 << 62, dtype=torch.uint8),  # torch CPU: RuntimeError "can't allocate memory"
    lambda: bytearray(1 << 62),                     # bare MemoryError, empty message
    pytest.param(lambda: torch.empty(1 << 50, dtype=torch.uint8, device="cuda"),  # torch.OutOfMemoryError
                 marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
], ids=["numpy", "torch-cpu", "python", "cuda"])
@pytest.mark.parametrize("wrap", [False, True], ids=["bare", "wrapped"])
def test_allocation_failures_are_out_of_memory(fail, wrap):
    text = classify_error(raised(fail, wrap))
    assert text.startswith("out of memory: "), text
    if wrap:
        assert "CodecError: MLIC++ encode failed" in text and "(from " in text


def test_implicit_context_counts_and_other_errors_keep_their_class():
    try:
        try:
            bytearray(1 << 62)
        except MemoryError:
            raise CodecError("while recovering")  # noqa: B904 — implicit __context__ on purpose
    except CodecError as exc:
        assert classify_error(exc).startswith("out of memory: CodecError: while recovering")
    assert classify_error(raised(lambda: int("x"))) == "codec error: MLIC++ encode failed: ValueError"


def test_out_of_memory_in_a_wrapped_encode_is_stored_as_such(tmp_path, small_photo):
    """One real cell through the CLI and runner: an encoder's CodecError from a MemoryError."""
    codecs = tmp_path / "codecs"
    codecs.mkdir()
    (codecs / "faulty.toml").write_text("""
adapter = "tests.support.faulty_codecs:FaultyJpeg"
[params]
subsampling = "4:2:0"
[[rates]]
label = "oom"
quality = 50
fault = "oom"
""")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(small_photo).save(images / "a.png")
    out = tmp_path / "res"
    result = python_module("bench", "--codecs-dir", str(codecs), "run", "--codecs", "faulty", "--dataset", str(images),
                           "--ladder", "none", "--out", str(out), "--jobs", "1", "--repeats", "1", "--quiet",
                           data_dir=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    row = read_measurements(out, status=None).iloc[0]
    assert row.status == "error"
    assert re.match(r"out of memory: CodecError: injected encoder failure \(from \w*MemoryError: Unable to allocate",
                    row.error), row.error
