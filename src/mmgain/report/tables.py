"""Plain-text tables for the terminal (no dependency, fixed-width columns)."""
from __future__ import annotations

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


def render(header: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    out = [title] if title else []
    out += [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


@dataclass
class Table:
    """Table data, drawn by the terminal (:meth:`text`) and by the HTML report alike."""

    header: list[str]
    rows: list[list[str]]
    title: str | None = None

    def text(self) -> str:
        return render(self.header, self.rows, self.title)
