"""The report: ``python -m bench.report [RESULTS_DIR]`` → a self-contained HTML page and Markdown.

It presents the results view (:mod:`bench.results`: the store's rows, selected, with RD curves and
BD tables) and published anchors; it never runs codecs. Modules: :mod:`~bench.report.tables`
(complexity, scaling and trade-off numbers), :mod:`~bench.report.figures` (matplotlib), :mod:`~bench.report.provenance`
(manifests, definitions), :mod:`~bench.report.anchoring` (the BD anchor's options and description; which anchor:
:mod:`bench.anchor_choice`),
:mod:`~bench.report.document` (Markdown/HTML), :mod:`~bench.report.build` (assembly).
"""

from bench.report.build import Report, ReportOptions, build_report

__all__ = ["Report", "ReportOptions", "build_report"]
