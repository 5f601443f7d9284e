"""The regression gate: ``python -m bench.gate --baseline gate/baseline.json``.

It runs a small fixed benchmark (centre crops of a few Kodak images, a few codecs, their whole
rate ladders) into a temporary store — or reads ``--results DIR`` — and compares every codec with
the committed baseline:

rate-distortion
    The codec's gate curve (mean bpp and mean PSNR-RGB per rate point over the gate images) is
    compared with its baseline curve by BD-rate (pchip). It **fails** when the BD-rate is worse
    than ``--bd-threshold`` percentage points (default 0.5): the codec now needs that many percent
    more bits for the same PSNR. Codecs are deterministic, so an unchanged codec gives 0.00 %.
decode time
    Never absolute seconds (machines differ, and so does one machine's load from run to run):
    every run also times a **yardstick** — libwebp decoding a WebP (q75) of each gate crop, a
    fixed configuration defined here, not one of ``codecs/``. The benchmark runs in **rounds**;
    each round runs every cell once (the round is a field of the cell and a column of the
    store) in a **fresh worker process**, yardstick first. A codec cell's time in a round is divided by the yardstick's time
    for the same image in the same round (same process, minutes apart at most); the cell's
    **ratio** is the median of those quotients over the rounds. The baseline stores these
    dimensionless ratios per cell. A codec **fails** when the median over its cells of (ratio now
    / ratio in the baseline) exceeds 1 + ``--time-threshold`` (default 0.25). Comparing cell by
    cell removes the spread between rate points and images; the medians make a disturbed cell or
    round harmless.

    Two times are judged that way, and either fails the codec. **CPU time** (``dec_cpu_s``, the
    ratio of each round's quotient as above) is immune to other load time-slicing the CPU, but
    blind to a decode that *waits* (a sleep, a lock, I/O): a 20 ms sleep added to JPEG 2000's
    decode made its wall time ×4 and its CPU time ×1.1, and passed. So **wall time**
    (``dec_time_s``) is judged too: per cell, its fastest round over the yardstick's fastest round
    for the image (other load only ever adds wall time, so the fastest round is the least
    disturbed, while a wait in the code is in every round), failing above
    ``WALL_MARGIN`` (2) × ``--time-threshold`` (+50 % by default): on a 2-core machine at load 5–17,
    unchanged codecs kept these within +20 % over ten runs (a median of per-round quotients, as for
    CPU time, strayed to +141 %), and the 20 ms sleep read +860 to +1090 %. On a GPU CPU time
    says nothing about the work: cells that ran on CUDA are judged on their wall time only, which
    there is CUDA-event time (:class:`bench.device.Timer`), and the baseline records which
    (``timer``). A baseline written before wall time was judged has no wall ratios; the table
    then says wall time was not judged until it is rewritten with ``--update-baseline``.

    Why this shape — each choice measured on a loaded, shared 2-core VM: the decode speed of
    libjpeg-turbo and of dav1d settles *per process* into states up to ±25 % apart (repeats in
    one process agree with each other, a new process may not), so one long-lived worker shifted a
    whole run; five processes and a median over them average that out. The gate pins itself and
    its workers to **one CPU** (``sched_setaffinity``, inherited by the workers): Pillow's AVIF
    decoder sizes its dav1d thread pool by the CPUs it may use, and two threads on a loaded
    2-core machine swung its times by ±20 %; pinned, no process migrates and every decoder runs
    single-threaded. The yardstick is WebP because libwebp's times were the steady ones. Each cell
    is coded once per round, without a warm-up call (``--warmup 0 --repeats 1``): the rounds are
    the repeats that matter, and the encodes a warm-up would add (AVIF, JPEG XL) doubled the
    gate's time without steadying it — cold, unchanged runs agreed within ±6 % for every codec
    (with one warm-up call, within ±8 %), where one long-lived worker had strayed by up to ±30 %.

A codec with error cells fails too. Exit status: 0 when every codec passed; 1 when something
regressed (the table says what and by how much); 2 when the gate cannot judge — no baseline or
one of the wrong shape (see :mod:`bench.gate.baseline`), no Kodak, bad options, a codec missing
from the baseline or from the run, decode times from another machine class than the baseline's
(without ``--timing-across-machines``), rows of one run from several machine classes, or any
unexpected error (never 1, which means "regressed").
A regression outranks "cannot judge": when both occur the status is 1. ``--update-baseline``
rewrites the baseline from this run, deliberately, and says so.

machine class
    Decode-time ratios are judged only against a baseline recorded on the same machine class
    (CPU model, logical CPU count, architecture; :class:`bench.machine.MachineClass`). The run's
    class is the one its rows record (each row carries the machine that measured it), else its
    manifest's. On another class the rates are still judged (BD-rate is machine-independent) but
    the times are not, and the gate exits 2 naming both classes. ``--timing-across-machines``
    judges them anyway: the ratios are normalised by the yardstick, so the comparison is
    indicative, and the printout says it is cross-machine. ``nox -s gate`` (CI) passes it. When
    the run's own rows come from several machine classes (cells spread over a cluster), a codec
    and its yardstick may have been timed on different machines: the times are not judged, with
    or without that option, and the gate exits 2 (1 if a rate regressed).

The comparison (:func:`summarise`, :func:`compare`) is pure; only :func:`run_benchmark` runs codecs.
The package's modules: :mod:`~bench.gate.benchmark` (what the gate runs, and running it),
:mod:`~bench.gate.judge` (summarising a run and judging it), :mod:`~bench.gate.baseline` (the
baseline file) and :mod:`~bench.gate.cli` (the command line).
"""

from bench.errors import GateError
from bench.gate.baseline import DEFAULT_BASELINE, SCHEMA, read_baseline, validate_baseline
from bench.gate.benchmark import (GATE_DATASET, TIME, YARDSTICK, GateBenchmark, idlest_cpu, one_cpu, run_benchmark,
                                  session_spec, yardstick_config)
from bench.gate.cli import build_parser, main
from bench.gate.judge import (FAIL, PASS, UNJUDGED, CodecSummary, Verdict, baseline_document, cell_key, compare,
                              exit_status, format_table, summarise, time_change, yardstick_times)

__all__ = [
    "DEFAULT_BASELINE", "FAIL", "GATE_DATASET", "PASS", "SCHEMA", "TIME", "UNJUDGED", "YARDSTICK",
    "CodecSummary", "GateBenchmark", "GateError", "Verdict", "baseline_document", "build_parser",
    "cell_key", "compare", "exit_status", "format_table", "idlest_cpu", "main", "one_cpu",
    "read_baseline", "run_benchmark", "session_spec", "summarise", "time_change", "validate_baseline",
    "yardstick_config", "yardstick_times",
]
