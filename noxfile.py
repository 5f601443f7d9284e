"""Sessions: ``nox -s bench`` (the embedded default benchmark), ``nox -s tests``, ``nox -s gate``,
``nox -s report``, ``nox -s scaling``, ``nox -s vtm``.

Every session installs the package with its extras into its own virtual environment; results go
to ``results/`` and reports to ``reports/`` under the project root.
"""

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

EXTRAS = ".[heif,test]"
DATA_ENV = {"BENCH_DATA_DIR": os.environ.get("BENCH_DATA_DIR", "data")}


def _install(session: nox.Session) -> None:
    session.install("-e", EXTRAS)


@nox.session
def bench(session: nox.Session) -> None:
    """The default benchmark: Kodak (or bundled photos) × every available classical codec ×
    its ladder, plus the resolution ladder, into results/default."""
    _install(session)
    args = session.posargs or ["--repeats", "2"]
    session.run("python", "-m", "bench", "list", env=DATA_ENV)
    session.run("python", "-m", "bench", "run", "--out", "results/default", *args, env=DATA_ENV)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (set BENCH_DATA_DIR / BENCH_SHARED_DIR to run the data-dependent tests)."""
    _install(session)
    session.run("python", "-m", "pytest", "-q", "-m", "not slow", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """The report of results/default (run ``nox -s bench`` first) → reports/default/report.html and .md."""
    _install(session)
    args = session.posargs or ["results/default", "--out", "reports/default"]
    session.run("python", "-m", "bench.report", *args)


@nox.session
def gate(session: nox.Session) -> None:
    """The regression gate against the committed baseline gate/baseline.json (exit 1 on a regression,
    2 when it cannot judge). CI machines differ from the baseline's, so decode times are compared
    across machine classes (yardstick-normalised ratios: indicative; the printout says so)."""
    _install(session)
    session.run("python", "-m", "bench.gate", "--baseline", "gate/baseline.json", "--timing-across-machines",
                *session.posargs, env=DATA_ENV)


@nox.session(python=False)
def vtm(session: nox.Session) -> None:
    """Build VTM into the cache folder (python -m bench.tools.vtm build; arguments pass through,
    e.g. ``nox -s vtm -- --source vtm-23.13-src.tar.gz``). Standard library only: no virtualenv."""
    session.run("python3", "-m", "bench.tools.vtm", "build", *session.posargs)


SCALING_CODECS = "mlicpp-untrained,msp-fast,msp-base,msp-best,mbt2018"


@nox.session
def scaling(session: nox.Session) -> None:
    """Complexity scaling of the learned codecs over the resolution ladder (untrained weights
    are fine for timing), into results/scaling, then its report into reports/scaling."""
    _install(session)
    args = session.posargs or [
        "--codecs", SCALING_CODECS, "--images", "0", "--ladder", "256x256,512x512,768x512,1024x1024,2048x1365",
        "--ladder-per-size", "1", "--jobs", "1", "--threads", "2", "--repeats", "1", "--timeout", "3600"]
    session.run("python", "-m", "bench", "run", "--out", "results/scaling", *args, env=DATA_ENV)
    session.run("python", "-m", "bench.report", "results/scaling", "--out", "reports/scaling")
