"""Report sections registered by name: one producer each, drawn by the terminal and the HTML report.

A producer reads the run's files as dicts (``summary`` from summary.json, ``run`` from run.json)
and returns a :class:`Section` (or None when it has nothing to say for this run): text, tables
(:class:`~.tables.Table`) and figures (:mod:`.figures`, e.g. a ``LineFigure``).  The report
draws every registered section after the built-in ones, in registration order, with the same
table template and figure stack as the rest of the report; the CLI prints its tables (and each
figure's text alternative) after the layout's.  A new
section is one producer and one registration::

    SECTIONS.register("verdict-counts", verdict_counts)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..registry import Registry
from .tables import Table, wrap_text


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    text: str = ""
    figures: list = field(default_factory=list)         # report.figures objects: .svg() and .alt


SECTIONS: Registry[Callable[[dict, dict], Section | None]] = Registry("report section")


def produce_sections(summary: dict, run: dict) -> list[tuple[str, Section]]:
    """Every registered section that has something to say for this run, as (name, section)."""
    out = []
    for name in SECTIONS.names():
        section = SECTIONS.get(name)(summary, run)
        if section is not None:
            out.append((name, section))
    return out


def sections_text(summary: dict, run: dict) -> str:
    """The registered sections for the terminal: title, text and tables."""
    blocks = []
    for _, s in produce_sections(summary, run):
        blocks.append("\n\n".join([wrap_text(s.title)] + ([wrap_text(s.text)] if s.text else [])
                                  + [wrap_text(f"[figure: {getattr(f, 'alt', '')}; in report.html]") for f in s.figures]
                                  + [t.text() for t in s.tables]))
    return "\n\n".join(blocks)
