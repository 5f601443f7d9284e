"""Sessions: ``nox -s bench`` (the embedded default benchmark), ``nox -s tests``, ``nox -s gate``,
``nox -s report``, ``nox -s scaling``, ``nox -s vtm``, ``nox -s train``.

All sessions need the same packages (the package with its ``heif`` and ``test`` extras, PyTorch
included), so they share ONE environment, ``.nox/lic-bench``, instead of nox's one per session:
the first session creates and installs it (about 6 GB, most of it PyTorch and its CUDA libraries;
a few minutes), the others reuse it. It is installed again only when ``pyproject.toml`` changes;
``rm -rf .nox/lic-bench`` rebuilds it from scratch. (nox has no option to point several sessions
at one virtualenv, so the sessions run without nox's own and call this one's Python.) Results go
to ``results/`` and reports to ``reports/`` under the project root.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]

ROOT = Path(__file__).resolve().parent
ENV = ROOT / ".nox" / "lic-bench"
EXTRAS = ".[heif,test]"
DATA_ENV = {"BENCH_DATA_DIR": os.environ.get("BENCH_DATA_DIR", "data")}


def _python(session: nox.Session) -> str:
    """The shared environment's Python: created when missing, (re)installed when pyproject.toml
    or the extras changed since its last install (a stamp file in the environment says which)."""
    python = ENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = ENV / ".lic-bench-installed"
    wanted = f"{EXTRAS} {hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()}"
    if not python.exists():
        # virtualenv comes with nox and, unlike venv, needs no ensurepip (missing on some Linux Pythons).
        maker = "virtualenv" if importlib.util.find_spec("virtualenv") else "venv"
        session.run(sys.executable, "-m", maker, str(ENV), external=True)
    if not stamp.is_file() or stamp.read_text() != wanted:
        session.run(str(python), "-m", "pip", "install", "-e", EXTRAS, external=True)
        stamp.write_text(wanted)
    else:
        session.log(f"reusing {ENV} (pyproject.toml unchanged since its install)")
    return str(python)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """The default benchmark: Kodak (or bundled photos) × every available default configuration
    (the classical codecs and the trained compact learned ones) × its ladder, plus the resolution
    ladder, into results/default; then its report into reports/default (report.html)."""
    python = _python(session)
    args = session.posargs or ["--repeats", "2"]
    session.run(python, "-m", "bench", "list", env=DATA_ENV, external=True)
    session.run(python, "-m", "bench", "run", "--out", "results/default", *args, env=DATA_ENV, external=True)
    session.run(python, "-m", "bench.report", "results/default", "--out", "reports/default", external=True)
    session.log("open reports/default/report.html (one self-contained page) or read reports/default/report.md")


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite without the slow tests (BENCH_DATA_DIR / BENCH_SHARED_DIR add the data-dependent ones)."""
    python = _python(session)
    session.run(python, "-m", "pytest", "-q", "-rs", "-m", "not slow", *session.posargs, external=True)


@nox.session(python=False)
def report(session: nox.Session) -> None:
    """The report of results/default (run ``nox -s bench`` first) → reports/default/report.html and .md."""
    python = _python(session)
    args = session.posargs or ["results/default", "--out", "reports/default"]
    session.run(python, "-m", "bench.report", *args, external=True)


@nox.session(python=False)
def gate(session: nox.Session) -> None:
    """The regression gate against the committed baseline gate/baseline.json (exit 1 on a regression,
    2 when it cannot judge). CI machines differ from the baseline's, so decode times are compared
    across machine classes (yardstick-normalised ratios: indicative; the printout says so)."""
    python = _python(session)
    session.run(python, "-m", "bench.gate", "--baseline", "gate/baseline.json", "--timing-across-machines",
                *session.posargs, env=DATA_ENV, external=True)


@nox.session(python=False)
def vtm(session: nox.Session) -> None:
    """Build VTM into the cache folder (python -m bench.tools.vtm build; arguments pass through,
    e.g. ``nox -s vtm -- --source vtm-23.13-src.tar.gz``). Standard library only: no virtualenv."""
    session.run("python3", "-m", "bench.tools.vtm", "build", *session.posargs, external=True)


SCALING_CODECS = "mlicpp-untrained,msp-fast,msp-base,msp-best,mbt2018"


@nox.session(python=False)
def scaling(session: nox.Session) -> None:
    """Complexity scaling of the learned codecs over the resolution ladder (untrained weights
    are fine for timing), into results/scaling, then its report into reports/scaling."""
    python = _python(session)
    args = session.posargs or [
        "--codecs", SCALING_CODECS, "--images", "0", "--ladder", "256x256,512x512,768x512,1024x1024,2048x1365",
        "--ladder-per-size", "1", "--jobs", "1", "--threads", "2", "--repeats", "1", "--timeout", "3600"]
    session.run(python, "-m", "bench", "run", "--out", "results/scaling", *args, env=DATA_ENV, external=True)
    session.run(python, "-m", "bench.report", "results/scaling", "--out", "reports/scaling", external=True)


#: ``nox -s decode_parts`` without arguments: MSP against its serial baselines on a 2048×1365 crop
DECODE_PARTS_ARGS = ("--codecs", "msp-fast,mbt2018,msp-tiny,mbt2018-tiny", "--modes", "default,fast", "--sizes",
                     "2048x1365", "--threads", "1,2", "--repeats", "2",
                     "--versus", "msp-fast:mbt2018,msp-tiny:mbt2018-tiny", "--no-warm-up")


@nox.session(python=False)
def decode_parts(session: nox.Session) -> None:
    """Learned decoders split into parts against the arithmetic floor (bench.tools.decode_parts):
    by default MSP (msp-fast, msp-tiny) beside its serial baselines (mbt2018, mbt2018-tiny), each on its
    portable (default) and float32 (fast) path, at 1 and 2 threads, interleaved, 2 decodes each (about
    21 minutes on an idle 2-core machine), into results/decode_parts and reports/decode_parts.json; arguments after
    ``--`` replace the defaults (MLIC++'s modes: ``-- --codecs mlicpp-untrained --modes
    reference,fast,fast-direct,portable,portable-direct --sizes kodim01,2048x1365 --threads 2``). The
    serial decoders take minutes per decode: run it on a quiet machine."""
    python = _python(session)
    session.run(python, "-m", "bench.tools.decode_parts", *(session.posargs or DECODE_PARTS_ARGS), env=DATA_ENV,
                external=True)


#: The compact models' training schedule: (run, λ, steps, run to start from). A base run at
#: λ = 0.0067, then every shipped rate point fine-tuned from a neighbour (0.0932 from 0.025), all
#: with the same seed, data, batch (8 × 128²) and optimiser. Runs land in results/train/CODEC/RUN
#: and resume from their checkpoints when the session is run again.
TRAIN_SCHEDULE = (("base-0.0067", 0.0067, 6000, None), ("ft-0.025", 0.025, 1200, "base-0.0067"),
                  ("ft-0.0018", 0.0018, 1200, "base-0.0067"), ("ft-0.0932", 0.0932, 1200, "ft-0.025"),
                  ("ft-0.0067", 0.0067, 1200, "base-0.0067"))


@nox.session(python=False)
def train(session: nox.Session) -> None:
    """Train the compact reference models (msp-tiny, mbt2018-tiny; or those given after ``--``)
    on ``$BENCH_TRAIN_DIR`` (else ``$BENCH_DATA_DIR/train``) into results/train/, resumable; one
    torch thread per model. Export a finished run with
    ``python -m bench.training export RUN --to codecs/weights/NAME.pt --half``."""
    python = _python(session)
    for codec in session.posargs or ["msp-tiny", "mbt2018-tiny"]:
        runs = ROOT / "results" / "train" / codec
        for name, lam, steps, start in TRAIN_SCHEDULE:
            init = [] if start is None else ["--init", str(runs / start / "checkpoint.pt")]
            session.run(python, "-m", "bench.training", "train", codec, "--lambda", str(lam), "--steps", str(steps),
                        "--out", str(runs / name), "--threads", "1", *init, env=DATA_ENV, external=True)
