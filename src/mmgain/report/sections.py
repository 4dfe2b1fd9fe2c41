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


# ------------------------------------------------------------------ built-in sections

def information_section(summary: dict, run: dict) -> Section | None:
    """The information game in nats (:mod:`mmgain.analysis.information`): per pair of modalities the
    identified synergy − redundancy and the feasible ranges of the PID atoms; the Möbius dividends."""
    from .tables import fmt_ci

    records = summary.get("information") or []
    if not records:
        return None
    rng = lambda r: f"[{r[0]:.3f}, {r[1]:.3f}]"                                   # noqa: E731
    keys = [k for k in records[0] if k not in ("ratio", "n_train", "H_Y", "values", "given", "pairs", "dividends",
                                               "unit", "estimates")]
    label = lambda rec: ", ".join(f"{k}={rec.get(k)}" for k in keys)              # noqa: E731
    data = ["data"] if keys else []
    pair_rows, div_rows, given_rows, lines = [], [], [], []
    for rec in records:
        lead = [label(rec)] if keys else []
        for g in rec.get("given") or []:
            given_rows.append(lead + [g["modality"], g["N"], f"{g['value']:+.3f} {fmt_ci(g['value_ci'], 3)}"])
        for p in rec["pairs"]:
            pair_rows.append(lead + [p["i"], p["j"], f"{p['I_i']:.3f}", f"{p['I_j']:.3f}", f"{p['I_ij']:.3f}",
                                     f"{p['synergy_minus_redundancy']:+.3f} {fmt_ci(p['synergy_minus_redundancy_ci'], 3)}",
                                     f"{p['unique_difference']:+.3f} {fmt_ci(p['unique_difference_ci'], 3)}",
                                     rng(p["R_range"]), rng(p["S_range"])])
            lines.append((f"{label(rec)}: " if keys else "") + p["text"])
        for d in rec["dividends"]:
            if d["subset"].count("+") >= 2:          # pairs are in the table above
                div_rows.append(lead + [d["subset"], f"{d['dividend']:+.3f} {fmt_ci(d['dividend_ci'], 3)}"])
    first = records[0]
    mc = (summary.get("model_class") or {})
    text = (f"v(S) = H(Y) − held-out cross-entropy of the model class trained on S, in nats, at n={first['n_train']} "
            f"(H(Y) ≈ {first['H_Y']:.3f} nats). Each v is a lower bound on I(X_S; Y): a finite model and finite "
            "data only lose information. "
            + ("For a pair of modalities only S − R and U_i − U_j are identified; the atoms have feasible ranges."
               if pair_rows else "The pairs' synergy and redundancy need each single modality and the pair trained "
                                 "(--subsets all, or singles+pairs+full).")
            + (" The fusion class is additive in the modalities, so synergy it cannot represent shows as 0."
               if mc.get("additive") else ""))
    tables = [Table(data + ["modality k", "given N", "v(N + k) − v(N) (nats) [95% CI]"], given_rows,
                    title="What each modality adds to all the others, in nats: an estimate of I(X_k; Y | X_N)")] \
        if given_rows else []
    tables += [Table(data + ["i", "j", "I_i", "I_j", "I_ij", "S − R [95% CI, unadjusted]", "U_i − U_j [95% CI, unadjusted]", "R range",
                            "S range"], pair_rows,
                    title="Pairs of modalities: what the information game identifies (nats)")] if pair_rows else []
    if div_rows:
        tables.append(Table(data + ["subset", "Möbius dividend (nats) [95% CI]"], div_rows,
                            title="Higher-order interactions: the Möbius (Harsanyi) dividends of v over 3 or more "
                                  "modalities"))
    return Section("Why, in information terms", tables, text + ("\n" + "\n".join(lines) if lines else ""))


SECTIONS.register("information", information_section,
                  "the information game in nats: synergy − redundancy per pair, PID ranges, Möbius dividends")
