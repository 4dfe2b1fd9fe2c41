"""Plain-text tables for the terminal (no dependency, fixed-width columns)."""
from __future__ import annotations

import textwrap

from dataclasses import dataclass
from typing import Sequence


# The report's number formats, one each, shared by the terminal and the HTML report.  A missing
# value (None, NaN: not computed) prints as "—".

def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and x != x)


def fmt_num(x, digits: int = 2, sign: bool = True) -> str:
    """A signed (or plain) fixed-point number: a difference, a gain, γ̂."""
    return "—" if _missing(x) else (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}")


def fmt_g(x) -> str:
    """Three significant figures: a bound, a complexity, a sample size predicted."""
    return "—" if _missing(x) else f"{x:.3g}"


def fmt_ci(ci, digits: int = 2) -> str:
    """An interval [lo, hi], signed."""
    lo, hi = ci
    return "—" if _missing(lo) or _missing(hi) else f"[{lo:+.{digits}f}, {hi:+.{digits}f}]"


def fmt_p(p) -> str:
    """A p-value (or q-value): three significant figures, "<1e-16" below double precision's reach."""
    return "—" if _missing(p) else ("<1e-16" if p < 1e-16 else f"{p:.3g}")


def fmt_pm(mean: float | None, std: float | None = None, digits: int = 2) -> str:
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f}±{std:.{digits}f}"


TERMINAL_WIDTH = 100
KEY_HEADERS = {"data", "M", "N", "i", "j", "N + perm(k)"}     # columns repeated in every part of a split table


def _key_columns(header: Sequence[str]) -> int:
    """How many leading columns name a row (repeated when a wide table is split)."""
    n = 1
    while n < len(header) and header[n] in KEY_HEADERS:
        n += 1
    return n


def render(header: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None,
           width: int = TERMINAL_WIDTH) -> str:
    """A plain-text table at most ``width`` columns wide: long headers wrap over several lines,
    and a table still too wide is split into parts that each repeat the row-naming columns."""
    rows = [[str(c) for c in r] for r in rows]
    header = [str(h) for h in header]
    data_w = [max([len(r[i]) for r in rows if i < len(r)] or [0]) for i in range(len(header))]
    widths = [max(d, min(len(h), 12), max((len(w) for w in h.split()), default=0)) for d, h in zip(data_w, header)]
    keys = _key_columns(header)
    parts, cur = [], list(range(keys))
    for i in range(keys, len(header)):
        if len(cur) > keys and sum(widths[j] + 2 for j in cur + [i]) - 2 > width:
            parts.append(cur)
            cur = list(range(keys))
        cur.append(i)
    parts.append(cur)
    out = [part for line in (title or "").split("\n") for part in textwrap.wrap(line, width)]
    for n, cols in enumerate(parts):
        if n:
            out.append("")
        heads = [textwrap.wrap(header[i], widths[i]) or [""] for i in cols]
        depth = max(map(len, heads))
        for line in range(depth):
            out.append(_line([h[line - depth + len(h)] if line >= depth - len(h) else "" for h in heads],
                             [widths[i] for i in cols]))
        out.append("  ".join("-" * widths[i] for i in cols))
        out += [_line([r[i] if i < len(r) else "" for i in cols], [widths[i] for i in cols]) for r in rows]
    return "\n".join(x.rstrip() for x in out)


def wrap_text(text: str, width: int = TERMINAL_WIDTH) -> str:
    """``text`` with every line wrapped at ``width`` columns; continuation lines keep the line's
    own indent plus two spaces, so that a paragraph still reads as one."""
    out = []
    for line in text.split("\n"):
        indent = line[:len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False) or [""]
    return "\n".join(out)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))


@dataclass
class Table:
    """Table data, drawn by the terminal (:meth:`text`) and by the HTML report alike."""

    header: list[str]
    rows: list[list[str]]
    title: str | None = None

    def text(self) -> str:
        return render(self.header, self.rows, self.title)
