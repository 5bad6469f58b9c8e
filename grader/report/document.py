"""A page as a list of blocks, rendered once as Markdown and once as self-contained HTML.

Feedback and the TA summary are built as blocks, so the Markdown and the HTML of a page
say the same thing. Inline text may use `code` and **bold**; everything else in it is
escaped, since much of it (tracebacks, messages, ids) comes from students.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable, Union

INLINE = re.compile(r"`([^`\n]+)`|\*\*([^*\n]+)\*\*|\*([^*\n]+)\*")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    css: str = ""  # a CSS class in HTML, e.g. "score"


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Meter:
    """A fraction shown as a bar in HTML and as a percentage in Markdown (a table cell)."""

    fraction: float
    label: str = ""  # e.g. "4/10", shown before the percentage


@dataclass(frozen=True)
class Link:
    """A relative link (a table cell or an item)."""

    text: str
    href: str


Cell = Union[str, Meter, Link]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]
    row_classes: list[str] = field(default_factory=list)  # CSS class per row, e.g. "pass", "fail"


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Image:
    svg: str  # a whole <svg> element, its text already escaped
    alt: str
    name: str  # file name suffix when written next to a Markdown file, e.g. "loss"


Block = Union[Heading, Paragraph, Bullets, Table, Code, Image]


# ---------------------------------------------------------------- Markdown

def _md_cell(cell: Cell) -> str:
    if isinstance(cell, Meter):
        return f"{cell.label} ({cell.fraction:.0%})" if cell.label else f"{cell.fraction:.0%}"
    if isinstance(cell, Link):
        return f"[{cell.text}]({cell.href})"
    return cell.replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: list[Block], image_path: Callable[[Image], str]) -> str:
    """Markdown text; each image is linked through `image_path` (the caller writes the file)."""
    return f"# {title}\n\n" + blocks_markdown(blocks, image_path)


def blocks_markdown(blocks: list[Block], image_path: Callable[[Image], str]) -> str:
    """The blocks alone, e.g. for a notebook's markdown cell."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Code):
            fence = "````" if "```" in block.text else "```"
            out += [fence, block.text, fence, ""]
        elif isinstance(block, Image):
            out += [f"![{block.alt}]({image_path(block)})", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans KR", "Malgun Gothic", sans-serif;
       max-width: 980px; margin: 2em auto; padding: 0 1em; color: #1d1d1f; line-height: 1.5;
       word-break: keep-all; overflow-wrap: anywhere; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; }
code { background: #f3f3f5; padding: .1em .3em; border-radius: 3px; font-size: .92em; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; padding: .8em; overflow-x: auto; font-size: .85em;
      line-height: 1.35; white-space: pre-wrap; word-break: break-word; }
table { border-collapse: collapse; margin: .5em 0; width: 100%; }
th, td { border: 1px solid #ddd; padding: .35em .6em; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }  /* "anywhere" would size columns to one letter: ids and names split */
th { background: #f3f3f5; }
table.marks td:first-child { width: 1.5em; text-align: center; }
table.marks td:nth-child(3) { white-space: nowrap; width: 5em; }
tr.pass td:first-child { color: #137333; font-weight: bold; }
tr.fail td:first-child, tr.grader-error td:first-child { color: #c5221f; font-weight: bold; }
tr.partial td:first-child, tr.pending td:first-child { color: #b06000; font-weight: bold; }
.nowrap { white-space: nowrap; }
.meter { background: #eee; width: 10em; height: .9em; display: inline-block; vertical-align: middle; }
.meter span { background: #4c8bf5; height: 100%; display: block; }
p.figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
p.score { font-size: 1.3em; }
"""


def inline_html(text: str) -> str:
    """Escaped text with `code`, **bold** and *emphasis* turned into tags."""
    out, last = [], 0
    for match in INLINE.finditer(text):
        out.append(html.escape(text[last:match.start()]))
        code, bold, emphasis = match.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif bold is not None:
            out.append(f"<strong>{html.escape(bold)}</strong>")
        else:
            out.append(f"<em>{html.escape(emphasis)}</em>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _html_cell(cell: Cell, tag: str) -> str:
    if isinstance(cell, Meter):
        width = max(0.0, min(1.0, cell.fraction))
        label = f"{html.escape(cell.label)} ({cell.fraction:.0%})" if cell.label else f"{cell.fraction:.0%}"
        return (f'<{tag} class="nowrap"><span class="meter"><span style="width:{width:.0%}"></span></span> '
                f"{label}</{tag}>")
    if isinstance(cell, Link):
        return f'<{tag}><a href="{html.escape(cell.href)}">{inline_html(cell.text)}</a></{tag}>'
    return f"<{tag}>{inline_html(cell)}</{tag}>"


def to_html(title: str, blocks: list[Block], lang: str) -> str:
    """One self-contained page: styles and SVG images inline."""
    body = [f"<h1>{inline_html(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = f' class="{html.escape(block.css)}"' if block.css else ""
            body.append(f"<p{css}>{inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            rows = ["<tr>" + "".join(_html_cell(h, "th") for h in block.header) + "</tr>"]
            for i, row in enumerate(block.rows):
                css = f' class="{html.escape(block.row_classes[i])}"' if i < len(block.row_classes) else ""
                rows.append(f"<tr{css}>" + "".join(_html_cell(c, "td") for c in row) + "</tr>")
            css = ' class="marks"' if block.header and block.header[0] == "" else ""  # a ✓/✗ column first
            body.append(f"<table{css}>" + "\n".join(rows) + "</table>")
        elif isinstance(block, Code):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        elif isinstance(block, Image):
            body.append(f'<p class="figure" role="img" aria-label="{html.escape(block.alt)}">{block.svg}</p>')
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
