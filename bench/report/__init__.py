"""The report: ``python -m bench.report [RESULTS_DIR]`` → a self-contained HTML page and Markdown.

It reads a results store and anchors and calls the analysis layer; it never runs codecs.
Modules: :mod:`~bench.report.data` (reading and selecting rows), :mod:`~bench.report.tables`
(the numbers), :mod:`~bench.report.figures` (matplotlib), :mod:`~bench.report.provenance`
(manifests, definitions), :mod:`~bench.report.anchoring` (the BD anchor),
:mod:`~bench.report.document` (Markdown/HTML), :mod:`~bench.report.build` (assembly).
"""

from bench.report.build import Report, ReportError, ReportOptions, build_report

__all__ = ["Report", "ReportError", "ReportOptions", "build_report"]
