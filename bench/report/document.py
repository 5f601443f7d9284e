"""The report as a document: built once as blocks, written as Markdown and as self-contained HTML.

Markdown links its figures as files (``figures/*.png``); the HTML page embeds the same PNGs as
base64 ``data:`` URIs and carries its CSS inline, so the page alone shows everything. The HTML is
rendered from the Markdown with markdown-it-py (CommonMark + tables), so both say the same.

Codec names, descriptions, error messages and paths come from the user's files, so neither output
may carry raw HTML: the page is rendered with HTML disabled (markdown-it escapes it), and the
Markdown file has every ``&``, ``<`` and ``>`` written as an entity. A Markdown viewer shows those
as the characters, except inside a code span, where the entity shows literally; no text of our
own contains them, so only such odd names are affected, and no ``<script>`` can run.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from markdown_it import MarkdownIt

Formatter = Callable[[Any], str]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1180px;
       margin: 2em auto; padding: 0 1.2em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .86em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; vertical-align: top; }
th { background: #f0f0f3; }
tr:nth-child(even) td { background: #fafafc; }
td { font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
code { background: #f3f3f6; padding: 0 .2em; border-radius: 3px; }
blockquote { border-left: 4px solid #ccd; margin-left: 0; padding-left: 1em; color: #333; }
"""


def fmt_number(digits: int = 4) -> Formatter:
    """``digits`` significant digits; empty for NaN/None."""
    def f(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, (int, float)):
            return f"{v:.{digits}g}"
        return str(v)
    return f


def fmt_fixed(decimals: int = 2, sign: bool = False) -> Formatter:
    def f(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:+.{decimals}f}" if sign else f"{v:.{decimals}f}"
    return f


def _cell(value: Any, formatter: Formatter | None) -> str:
    if formatter is not None:
        text = formatter(value)
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        text = ""
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return text.replace("\n", " ").replace("|", "\\|")


def md_table(frame: pd.DataFrame, columns: Mapping[str, str] | None = None,
             formats: Mapping[str, Formatter] | None = None) -> str:
    """A GitHub/CommonMark pipe table of ``frame`` (``columns``: column → header, in order)."""
    columns = dict(columns or {c: c for c in frame.columns})
    formats = dict(formats or {})
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_cell(row.get(c), formats.get(c)) for c in columns) + " |")
    return "\n".join(lines)


@dataclass
class FigureRef:
    """A saved figure: PNG and SVG paths relative to the report folder, and its data CSV."""

    png: str
    svg: str
    alt: str
    csv: list[str] = field(default_factory=list)


@dataclass
class Document:
    """Ordered Markdown blocks; figures stay references until rendered."""

    title: str
    blocks: list[str | FigureRef] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(f"{'#' * level} {text}")

    def text(self, markdown: str) -> None:
        self.blocks.append(markdown)

    def table(self, frame: pd.DataFrame, columns: Mapping[str, str] | None = None,
              formats: Mapping[str, Formatter] | None = None, empty: str = "_(none)_") -> None:
        self.blocks.append(md_table(frame, columns, formats) if len(frame) else empty)

    def figure(self, ref: FigureRef) -> None:
        self.blocks.append(ref)

    def markdown(self, root: Path | None = None, escape_html: bool = True) -> str:
        """The Markdown text; with ``root``, figures are embedded as base64 PNG data URIs.

        ``escape_html`` (the file written to disk) turns ``&``, ``<``, ``>`` into entities so no
        raw HTML reaches a Markdown viewer; :meth:`html` renders the unescaped text with HTML off.
        """
        parts = [f"# {self.title}"]
        for block in self.blocks:
            if isinstance(block, FigureRef):
                target = block.png
                if root is not None:
                    target = "data:image/png;base64," + base64.b64encode((root / block.png).read_bytes()).decode()
                links = [f"[SVG]({block.svg})"] + [f"[data: {Path(c).name}]({c})" for c in block.csv]
                parts.append(f"![{block.alt}]({target})\n\n{' · '.join(links)}")
            else:
                parts.append(block)
        text = "\n\n".join(parts) + "\n"
        return html.escape(text, quote=False) if escape_html else text

    def html(self, root: Path) -> str:
        """A self-contained HTML page: inline CSS, figures embedded (no external assets)."""
        renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
        body = renderer.render(self.markdown(root, escape_html=False))
        return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                f"{body}</body>\n</html>\n")
