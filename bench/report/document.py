"""The report as a document: built once as blocks, written as Markdown and as self-contained HTML.

Markdown links its figures as files (``figures/*.png``); the HTML page embeds the same PNGs as
base64 ``data:`` URIs and carries its CSS inline, so the page alone shows everything. The HTML is
rendered from the Markdown with markdown-it-py (CommonMark + tables), so both say the same.

Codec names, descriptions, error messages and paths come from the user's files, so neither output
may carry raw HTML or live Markdown: the page is rendered with HTML disabled (markdown-it escapes
it), and the Markdown file has every ``&``, ``<`` and ``>`` written as an entity. A Markdown viewer
shows those as the characters, except inside a code span, where the entity shows literally; no
text of our own contains them, so only such odd names are affected, and no ``<script>`` can run.
Markdown syntax in such text (``[x](https://…)``, ``![n](…)``, emphasis, backticks) is escaped
where it enters the document (:func:`md_escape` for table cells and notes, :func:`md_code` for a
name in a code span), and the page renders no link or image whose target is not a file of the
report folder or an embedded PNG (:func:`local_target`), so it never fetches anything.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from markdown_it import MarkdownIt

Formatter = Callable[[Any], str]

#: ASCII punctuation that starts CommonMark inline syntax (links, images, emphasis, code, strike,
#: headings, table cells) gets a backslash; ``<`` (autolinks, HTML) is handled by the HTML/entity
#: escaping and :func:`local_target`.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]!~#|])")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_EMBEDDED_PNG = "data:image/png;base64,"


def md_escape(text: Any) -> str:
    """``text`` as literal Markdown: every character that could start a link, image, emphasis or
    code span is backslash-escaped, newlines become spaces (a table cell or list item stays one)."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(text)))


def md_prose(text: Any) -> str:
    """A sentence of ours that quotes names in code spans (a note): the code spans are kept, every
    other Markdown character is escaped (:func:`md_escape`), so a quoted name cannot add a link."""
    text = " ".join(str(text).split())
    parts, end = [], 0
    for match in _CODE_SPAN.finditer(text):
        parts += [md_escape(text[end:match.start()]), match.group(0)]
        end = match.end()
    return "".join(parts) + md_escape(text[end:])


def md_code(text: Any) -> str:
    """``text`` as an inline code span that nothing inside can end: the fence is one backtick more
    than the longest run in ``text`` (CommonMark), and padded when ``text`` starts or ends with one."""
    text = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def local_target(url: str) -> bool:
    """Whether a link or image target may appear in the page: a relative path inside the report
    folder (no scheme, no ``//`` host, no absolute path, no ``..``) or an embedded PNG."""
    if url.startswith(_EMBEDDED_PNG):
        return True
    if _SCHEME.match(url) or url.startswith(("/", "\\")) or "\\" in url:
        return False
    return ".." not in url.split("/")


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1180px;
       margin: 2em auto; padding: 0 1.2em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .86em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: .25em .55em; vertical-align: top; overflow-wrap: break-word; }
th { background: #f0f0f3; }
tr:nth-child(even) td { background: #fafafc; }
td { font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
code { background: #f3f3f6; padding: 0 .2em; border-radius: 3px; overflow-wrap: anywhere; }
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


def fmt_duration(digits: int = 3) -> Formatter:
    """A time in seconds with its unit: ``16.5 ms``, ``651 µs``, ``1.23 s``; empty for NaN/None."""
    def f(v: Any) -> str:
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            return ""
        for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(v) >= scale or unit == "µs":
                return f"{v / scale:.{digits}g} {unit}"
        return ""
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
    return md_escape(text)


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

    def markdown(self, escape_html: bool = True) -> str:
        """The Markdown text, figures linked as files (``figures/*.png``).

        ``escape_html`` (the file written to disk) turns ``&``, ``<``, ``>`` into entities so no
        raw HTML reaches a Markdown viewer; :meth:`html` renders the unescaped text with HTML off.
        """
        parts = [f"# {self.title}"]
        for block in self.blocks:
            if isinstance(block, FigureRef):
                links = [f"[SVG]({block.svg})"] + [f"[data: {Path(c).name}]({c})" for c in block.csv]
                parts.append(f"![{block.alt}]({block.png})\n\n{' · '.join(links)}")
            else:
                parts.append(block)
        text = "\n\n".join(parts) + "\n"
        return html.escape(text, quote=False) if escape_html else text

    def html(self, root: Path) -> str:
        """A self-contained HTML page: inline CSS, figures embedded (no external assets).

        The Markdown is rendered with figures as file links, then each figure's ``src`` becomes its
        base64 PNG: the parser never scans the megabytes of base64 (it used to, for seconds).
        """
        renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
        renderer.validateLink = local_target  # a remote or odd target stays text: nothing is fetched
        body = renderer.render(self.markdown(escape_html=False))
        for block in self.blocks:
            if isinstance(block, FigureRef):
                data = _EMBEDDED_PNG + base64.b64encode((root / block.png).read_bytes()).decode()
                src = html.escape(renderer.normalizeLink(block.png))
                body = body.replace(f'<img src="{src}"', f'<img src="{data}"')
        return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                f"{body}</body>\n</html>\n")
