"""``python -m bench list`` and ``python -m bench metrics``: what this installation can measure.

``list`` probes every codec configuration (available or why not, trained weights or random ones,
version) and turns the warnings raised while probing into footnotes; ``metrics`` shows the metric
registry. Both import rich and the codecs only when called, so ``bench --help`` stays instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.codecs.base import CodecConfig


class _Collected(logging.Handler):
    """Keeps the log records emitted while a codec is probed, for the footnotes of ``bench list``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _probe(config: CodecConfig) -> tuple[str | None, str, bool | None, list[str]]:
    """(reason it cannot run or None, version, trained, warnings and log messages emitted meanwhile)."""
    import warnings

    from bench.codecs import registry
    from bench.codecs.learned import hide_import_noise

    root, collected = logging.getLogger(), _Collected()
    saved, root.handlers = root.handlers, [collected]
    version, trained = "", None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hide_import_noise()  # "always", except for the third-party import noise that runs hide too
            reason = registry.availability(config)
            if reason is None:
                try:
                    codec = registry.create(config, device="cpu")
                    version, trained = codec.library_version(), codec.trained
                    codec.close()
                except Exception as exc:  # noqa: BLE001 — listing must not fail because one codec does
                    reason = f"{type(exc).__name__}: {exc}"
    finally:
        root.handlers = saved
    return reason, version, trained, [str(w.message) for w in caught] + collected.messages


def cmd_list(args: argparse.Namespace) -> int:
    """Every configuration: available or why not (broken files with file:line), trained weights or
    random ones, version. Warnings raised while probing become footnotes below the table."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bench.codecs import registry

    configs = registry.load_configs(args.codecs_dir)
    # the terminal's width; when piped, $COLUMNS or 120 (rich would take 80)
    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120)
    table = Table(title=f"codecs ({configs.directory})")
    for col in ("codec", "adapter", "available", "trained", "rates", "default"):
        table.add_column(col, overflow="fold")
    table.add_column("version / reason", overflow="fold", ratio=1)
    notes: list[str] = []  # distinct warnings, numbered in order of appearance
    for name in sorted({*configs, *configs.broken}):
        if name in configs.broken:
            reason = str(configs.broken[name]).removeprefix(f"{configs.directory}{os.sep}")
            table.add_row(escape(name), "?", "[red]unavailable[/red]", "-", "-", "-", escape(reason))
            continue
        config = configs[name]
        reason, version, trained, messages = _probe(config)
        notes += [m for m in dict.fromkeys(messages) if m not in notes]
        marks = "".join(f" [{notes.index(m) + 1}]" for m in dict.fromkeys(messages))
        table.add_row(escape(name), escape(config.adapter),
                      "yes" if reason is None else "[red]unavailable[/red]",
                      "-" if trained is None else "yes" if trained else "[yellow]no[/yellow]",
                      str(len(config.rates)), "yes" if config.default_run else "no",
                      escape(version if reason is None else reason) + marks)
    console.print(table)
    for i, message in enumerate(notes):
        console.print(escape(f"[{i + 1}] {message}"), highlight=False)
    return 0


def cmd_metrics() -> int:
    """The metric registry as a table: what each computes, on which channel, with what, and whether it can run here."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from bench.metrics.run import table as metric_table

    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 140)
    table = Table(title="quality metrics (--metrics default | jpeg-ai | all | names)")
    for col in ("metric", "columns", "on", "sets", "implementation / reason"):
        table.add_column(col, overflow="fold")
    for m in metric_table():
        sets = ", ".join(s for s, yes in (("default", m["default"]), ("jpeg-ai", m["jpeg-ai"])) if yes) or "-"
        table.add_row(escape(m["metric"]), escape(m["columns"]), escape(m["on"]), sets,
                      escape(m["implementation"]) if m["available"] else f"[red]unavailable[/red] {escape(m['reason'])}")
    console.print(table)
    return 0
