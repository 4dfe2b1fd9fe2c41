"""Plain-text tables for the terminal (no dependency, fixed-width columns)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


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
