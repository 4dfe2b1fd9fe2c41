"""The report's one figure stack.

A figure is described once, as data (:class:`LineFigure`: lines, bands, error bars, markers and
reference rules on linear, log or categorical axes; :class:`BarFigure`; :class:`LatticeFigure`;
:class:`HeatmapFigure`), and drawn by this module: :meth:`svg` inline in ``report.html`` (with
hover titles and a text alternative), :meth:`png` with matplotlib for the run folder's
``fig_*.png``.  A producer (a layout, the report, a registered section) builds the description;
it draws nothing itself.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
VERDICT_COLOURS = {"helps": "#1a9850", "hurts": "#d73027", "no effect": "#8c8c8c", "does not help": "#6b6b9c",
                   "inconclusive": "#c8c8c8"}


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def shade(t: float) -> str:
    """A sequential colour (light → dark blue) for t in [0, 1]."""
    t = 0.5 if t != t else min(1.0, max(0.0, t))
    r, g, b = (int(247 - t * (247 - 8)), int(251 - t * (251 - 69)), int(255 - t * (255 - 148)))
    return f"#{r:02x}{g:02x}{b:02x}"


def label_lines(name: str, width: int = 16) -> list[str]:
    """A subset's full name over lines of about ``width`` characters, broken after a '+'."""
    lines, cur = [], ""
    for part in name.split("+"):
        piece = part if not cur else "+" + part
        if cur and len(cur) + len(piece) > width:
            lines.append(cur + "+")
            cur = part
        else:
            cur += piece
    return lines + [cur]


def axis_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between 10^lo and 10^hi (powers of ten only when there would be more than 8)."""
    ticks = [f * 10 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for f in (1, 2, 5)]
    ticks = [t for t in ticks if lo - 1e-9 <= math.log10(t) <= hi + 1e-9]
    return [t for t in ticks if f"{t:e}"[0] == "1"] if len(ticks) > 8 else ticks


def _svg_open(css: str, alt: str, width: float, height: float) -> str:
    return (f'<svg class="{css}" role="img" aria-label="{esc(alt)}" width="{width:g}" height="{height:g}" '
            f'viewBox="0 0 {width:g} {height:g}" xmlns="http://www.w3.org/2000/svg"><title>{esc(alt)}</title>')


# ------------------------------------------------------------------ line figures


@dataclass
class Line:
    """One series.  ``band``: (low, high) per point, shaded; ``err``: ± per point, error bars (PNG)
    and whiskers (SVG); ``filled``: per point, a filled (True) or hollow (False) marker, None for
    no markers; ``line``: False draws the markers only; ``scale``: False keeps it out of the axis
    range (a fitted curve), and its points outside the range are dropped."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str = "#bbb"
    width: float = 1.5
    dash: str = ""                          # an SVG dash array: "" solid, "5 3" dashed, "1 3" dotted
    css: str = "curve"
    filled: Sequence[bool] | None = None
    point_titles: Sequence[str] | None = None
    band: tuple[Sequence[float], Sequence[float]] | None = None
    err: Sequence[float] | None = None
    line: bool = True
    legend: bool = True
    scale: bool = True
    title: str | None = None


@dataclass
class Rule:
    """A reference line across the plot: ``axis`` "x" (vertical, at x = ``at``) or "y"."""

    at: float
    axis: str
    colour: str = "#666"
    dash: str = ""
    width: float = 1.2
    css: str = "rule"
    title: str = ""
    label: str = ""


@dataclass
class LineFigure:
    """Lines on a linear, log or categorical x axis (``categories``: x are their indices)."""

    css: str
    alt: str
    xlabel: str
    ylabel: str
    lines: list[Line]
    title: str = ""                          # the PNG's title (the page gives its own)
    logx: bool = False
    logy: bool = False
    categories: list[str] | None = None
    xticks: Sequence[float] | None = None
    ylim: tuple[float, float] | None = None  # the y range as given (else from the data, padded)
    ybounds: tuple[float, float] | None = None   # a data range clipped to these (accuracy: 0–100)
    rules: list[Rule] = field(default_factory=list)
    size: tuple[int, int] = (640, 360)
    margins: tuple[int, int, int, int] = (60, 150, 20, 45)    # left, right (legend), top, bottom

    # -- the axes
    def _yrange(self) -> tuple[float, float]:
        if self.ylim is not None:
            return self.ylim
        vals = [v for ln in self.lines if ln.scale for v in ln.y if v is not None and v == v]
        vals += [v for ln in self.lines if ln.scale and ln.band for b in ln.band for v in b if v == v]
        vals += [m + s * e for ln in self.lines if ln.scale and ln.err for m, e in zip(ln.y, ln.err)
                 for s in (-1, 1) if m is not None and e is not None]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        pad = (hi - lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
        if self.ybounds is not None:
            lo, hi = max(lo, self.ybounds[0]), min(hi, self.ybounds[1])
        return lo, hi

    def _xrange(self) -> tuple[float, float]:
        if self.categories is not None:
            return -0.3, len(self.categories) - 0.7
        xs = [x for ln in self.lines if ln.scale for x in ln.x]
        lo, hi = min(xs), max(xs)
        if self.logx:
            return math.log10(max(lo, 1e-12)), math.log10(max(hi, 1e-12))
        return lo, hi

    def svg(self) -> str:
        W, H = self.size
        L, R, T, B = self.margins
        x0, x1 = self._xrange()
        y0, y1 = self._yrange()
        ly0, ly1 = (math.log10(y0), math.log10(y1)) if self.logy else (y0, y1)

        def X(x: float) -> float:
            v = math.log10(max(x, 1e-12)) if self.logx and self.categories is None else x
            return L + (v - x0) / ((x1 - x0) or 1) * (W - L - R)

        def Y(y: float) -> float:
            v = math.log10(min(max(y, y0), y1)) if self.logy else min(max(y, y0), y1)
            return T + (1 - (v - ly0) / ((ly1 - ly0) or 1)) * (H - T - B)

        inside = lambda y: y is not None and y == y and y0 <= y <= y1  # noqa: E731
        parts = [_svg_open(self.css, self.alt, W, H),
                 f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="#fafafa" stroke="#ccc"/>']
        for v in (log_ticks(ly0, ly1) if self.logy else axis_ticks(y0, y1)):
            parts.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#e5e5e5"/>'
                         f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
        if self.categories is not None:
            for i, name in enumerate(self.categories):
                parts.append(f'<text x="{X(i):.1f}" y="{H - B + 14}" text-anchor="middle" font-size="10">'
                             + "".join(f'<tspan x="{X(i):.1f}" dy="{0 if j == 0 else 12}">{esc(p)}</tspan>'
                                       for j, p in enumerate(label_lines(name, 12))) + "</text>")
        else:
            ticks = self.xticks if self.xticks is not None else (
                log_ticks(x0, x1) if self.logx else axis_ticks(x0, x1))
            for t in ticks:
                parts.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{T}" y2="{H - B}" stroke="#e5e5e5"/>'
                             f'<text x="{X(t):.1f}" y="{H - B + 14}" text-anchor="middle" font-size="10">{t:g}</text>')
        parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle" font-size="11">'
                     f'{esc(self.xlabel)}</text><text x="14" y="{(T + H - B) / 2}" font-size="11" '
                     f'text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">{esc(self.ylabel)}</text>')
        for rule in self.rules:
            if rule.axis == "y" and inside(rule.at):
                parts.append(f'<line class="{rule.css}" x1="{L}" x2="{W - R}" y1="{Y(rule.at):.1f}" '
                             f'y2="{Y(rule.at):.1f}" stroke="{rule.colour}" stroke-width="{rule.width}" '
                             f'stroke-dasharray="{rule.dash}"><title>{esc(rule.title)}</title></line>'
                             + (f'<text x="{W - R - 4}" y="{Y(rule.at) - 4:.1f}" text-anchor="end" font-size="10" '
                                f'fill="{rule.colour}">{esc(rule.label)}</text>' if rule.label else ""))
            elif rule.axis == "x":
                parts.append(f'<line class="{rule.css}" x1="{X(rule.at):.1f}" x2="{X(rule.at):.1f}" y1="{T}" '
                             f'y2="{H - B}" stroke="{rule.colour}" stroke-width="{rule.width}" '
                             f'stroke-dasharray="{rule.dash}"><title>{esc(rule.title)}</title></line>')
        bands = [ln for ln in self.lines if ln.band is not None and len(ln.x) > 1]
        for ln in bands:                                            # bands under every line
            lo, hi = ln.band
            outline = [(X(x), Y(h)) for x, h in zip(ln.x, hi)] + [(X(x), Y(lw)) for x, lw in
                                                                    reversed(list(zip(ln.x, lo)))]
            parts.append(f'<polygon class="band" fill="{ln.colour}" fill-opacity="{0.15 if len(bands) <= 3 else 0.07}" '
                         'stroke="none" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in outline)
                         + f'"><title>{esc(ln.name)}: band</title></polygon>')
        for ln in self.lines:
            pts = [(x, y) for x, y in zip(ln.x, ln.y) if y is not None and y == y and (ln.scale or inside(y))]
            if ln.line and len(pts) > 1:
                parts.append(f'<polyline class="{ln.css}" fill="none" stroke="{ln.colour}" stroke-width="{ln.width}" '
                             f'stroke-dasharray="{ln.dash}" points="'
                             + " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
                             + f'"><title>{esc(ln.title or ln.name)}</title></polyline>')
            if ln.err is not None:
                for x, y, e in zip(ln.x, ln.y, ln.err):
                    if y is not None and e:
                        parts.append(f'<line class="err" x1="{X(x):.1f}" x2="{X(x):.1f}" y1="{Y(y - e):.1f}" '
                                     f'y2="{Y(y + e):.1f}" stroke="{ln.colour}" stroke-width="1"/>')
            if ln.filled is not None:
                titles = ln.point_titles or [f"{ln.name}: {y:.4g}" for _, y in pts]
                for (x, y), fill, t in zip(pts, ln.filled, titles):
                    parts.append(f'<circle class="{"point" if ln.line else ln.css}" cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" '
                                 f'fill="{ln.colour if fill else "#fff"}" stroke="{ln.colour}" stroke-width="1.3">'
                                 f'<title>{esc(t)}</title></circle>')
        y = T + 10
        for ln in self.lines:                                       # the legend, outside the plot area
            if not ln.legend:
                continue
            lines = label_lines(ln.name, 22)
            parts.append(f'<line x1="{W - R + 10}" x2="{W - R + 28}" y1="{y}" y2="{y}" stroke="{ln.colour}" '
                         f'stroke-width="2.2" stroke-dasharray="{ln.dash}"/>'
                         + "".join(f'<text x="{W - R + 32}" y="{y + 4 + j * 12}" font-size="10">{esc(p)}</text>'
                                   for j, p in enumerate(lines)))
            y += 6 + 12 * len(lines)
        parts.append("</svg>")
        return "".join(parts)

    def png(self, path: Path) -> Path:
        """The same figure with matplotlib, the legend right of the plot."""
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=120)
        dashes = {"": "-", "5 3": "--", "4 3": "--", "1 3": ":", "2 2": ":"}
        for ln in self.lines:
            style = dashes.get(ln.dash, "--")
            if ln.band is not None:
                ax.fill_between(ln.x, ln.band[0], ln.band[1], color=ln.colour, alpha=0.15, linewidth=0)
            label = ln.name if ln.legend else None
            if ln.err is not None:
                ax.errorbar(ln.x, ln.y, yerr=ln.err, color=ln.colour, linestyle=style if ln.line else "none",
                            marker="o", capsize=3, label=label, linewidth=ln.width)
            elif ln.line:
                ax.plot(ln.x, ln.y, color=ln.colour, linestyle=style, linewidth=ln.width, label=label,
                        marker="o" if ln.filled is not None else None)
            elif ln.filled is not None:
                ax.scatter(ln.x, ln.y, edgecolors=ln.colour, label=label,
                           facecolors=[ln.colour if f else "white" for f in ln.filled])
        for rule in self.rules:
            draw = ax.axhline if rule.axis == "y" else ax.axvline
            draw(rule.at, color=rule.colour, linestyle=dashes.get(rule.dash, "--"), linewidth=rule.width)
        if self.logx:
            ax.set_xscale("log")
        if self.logy:
            ax.set_yscale("log")
        if self.categories is not None:
            ax.set_xticks(range(len(self.categories)), self.categories)
        elif self.xticks is not None:
            ax.set_xticks(list(self.xticks))
        if self.ylim is not None:
            ax.set_ylim(*self.ylim)
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel(self.ylabel)
        if self.title:
            ax.set_title(self.title)
        ax.grid(alpha=0.3)
        if any(ln.legend for ln in self.lines):
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------ bars, lattice, heat map


@dataclass
class BarFigure:
    """Horizontal bars with CI whiskers (Shapley values)."""

    names: list[str]
    values: list[float | None]
    cis: list[list[float | None]] | None
    label: str

    @property
    def alt(self) -> str:
        return self.label

    def svg(self) -> str:
        W, row, L = 520, 26, 120
        H = row * len(self.names) + 30
        vals = [v for v in self.values if v is not None]
        ext = [x for pair in (self.cis or []) for x in pair if x is not None] + vals + [0.0]
        lo, hi = min(ext), max(ext)
        span = (hi - lo) or 1.0
        X = lambda v: L + (v - lo) / span * (W - L - 20)  # noqa: E731
        parts = [_svg_open("bars", self.label, W, H),
                 f'<line x1="{X(0):.1f}" x2="{X(0):.1f}" y1="4" y2="{H - 20}" stroke="#666"/>']
        for i, (n, v) in enumerate(zip(self.names, self.values)):
            if v is None:
                continue
            y = 8 + i * row
            x_a, x_b = sorted((X(0), X(v)))
            parts.append(f'<text x="{L - 8}" y="{y + 13}" text-anchor="end" font-size="11">{esc(n)}</text>'
                         f'<rect x="{x_a:.1f}" y="{y + 2}" width="{max(1.0, x_b - x_a):.1f}" height="16" '
                         f'fill="{"#4575b4" if v >= 0 else "#d73027"}"><title>{esc(n)}: {v:+.3f}</title></rect>')
            if self.cis and self.cis[i][0] is not None:
                parts.append(f'<line x1="{X(self.cis[i][0]):.1f}" x2="{X(self.cis[i][1]):.1f}" y1="{y + 10}" '
                             f'y2="{y + 10}" stroke="#111" stroke-width="1.2"/>')
        parts.append(f'<text x="{(L + W) / 2}" y="{H - 4}" text-anchor="middle" font-size="10">{esc(self.label)}'
                     '</text></svg>')
        return "".join(parts)


@dataclass
class LatticeFigure:
    """Nodes in rows (the first row on top), each with a shade in [0, 1] and a hover title;
    edges between nodes, coloured, with titles."""

    alt: str
    rows: list[list[str]]
    shades: dict[str, float]
    titles: dict[str, str]
    edges: list[tuple[str, str, str, float, str]]      # (upper node, lower node, colour, width, title)

    def svg(self) -> str:
        labels = {s: label_lines(s) for row in self.rows for s in row}
        line_h = 13
        node_h = line_h * max(len(v) for v in labels.values()) + 10
        node_w = max(84, 8 * max(len(x) for v in labels.values() for x in v) + 16)
        gap_x, gap_y = 12, node_h + 56
        width = max(480, max(len(r) for r in self.rows) * (node_w + gap_x) + 40)
        height = (len(self.rows) - 1) * gap_y + node_h + 28
        pos = {}
        for r, subs in enumerate(self.rows):
            span = len(subs) * (node_w + gap_x) - gap_x
            for i, s in enumerate(subs):
                pos[s] = (width / 2 - span / 2 + i * (node_w + gap_x) + node_w / 2, node_h / 2 + 14 + r * gap_y)
        parts = [_svg_open("hasse", self.alt, width, height)]
        for upper, lower, colour, w, title in self.edges:
            if upper in pos and lower in pos:
                (x1, y1), (x2, y2) = pos[upper], pos[lower]
                parts.append(f'<line class="edge" x1="{x1:.1f}" y1="{y1 + node_h / 2:.1f}" x2="{x2:.1f}" '
                             f'y2="{y2 - node_h / 2:.1f}" stroke="{colour}" stroke-width="{w}">'
                             f'<title>{esc(title)}</title></line>')
        for s, (x, y) in pos.items():
            t = self.shades.get(s, 0.5)
            lines = labels[s]
            top_y = y - line_h * len(lines) / 2 + line_h - 3
            text = "".join(f'<tspan x="{x:.1f}" y="{top_y + i * line_h:.1f}">{esc(p)}</tspan>'
                           for i, p in enumerate(lines))
            parts.append(f'<g class="node"><rect x="{x - node_w / 2:.1f}" y="{y - node_h / 2:.1f}" width="{node_w}" '
                         f'height="{node_h}" rx="5" fill="{shade(t)}" stroke="#555" stroke-width="0.5"/>'
                         f'<text class="label" text-anchor="middle" font-size="11" '
                         f'fill="{"#fff" if t > 0.55 else "#111"}">{text}</text>'
                         f'<title>{esc(self.titles.get(s, s))}</title></g>')
        parts.append("</svg>")
        return "".join(parts)


@dataclass
class HeatmapFigure:
    """A grid of labelled cells: rows × columns, each cell (colour, two text lines, title)."""

    alt: str
    xlabel: str
    columns: list[str]
    rows: list[str]
    cells: dict[tuple[int, int], tuple[str, str, str, str]]    # (row, col) → (colour, line 1, line 2, title)
    legend: dict[str, str]                                     # label → colour

    def svg(self) -> str:
        cw, ch, T = 96, 34, 34
        L = max(70, 8 * max(map(len, self.rows), default=4) + 16)
        legend_w = sum(22 + 6 * len(v) for v in self.legend)
        W, H = max(L + cw * len(self.columns) + 10, 10 + legend_w), T + ch * len(self.rows) + 48
        parts = [_svg_open("heatmap", self.alt, W, H),
                 f'<text x="{L + cw * len(self.columns) / 2:.1f}" y="12" text-anchor="middle" font-size="11">'
                 f'{esc(self.xlabel)}</text>']
        for j, c in enumerate(self.columns):
            parts.append(f'<text x="{L + cw * j + cw / 2:.1f}" y="{T - 6}" text-anchor="middle" font-size="11">'
                         f'{esc(c)}</text>')
        for i, name in enumerate(self.rows):
            y = T + ch * i
            parts.append(f'<text x="{L - 8}" y="{y + ch / 2 + 4:.1f}" text-anchor="end" font-size="12">{esc(name)}</text>')
            for j in range(len(self.columns)):
                if (i, j) not in self.cells:
                    continue
                col, top, bottom, title = self.cells[i, j]
                fg = "#111" if col == VERDICT_COLOURS["inconclusive"] else "#fff"
                x = L + cw * j
                parts.append(f'<g class="cell"><rect x="{x + 1}" y="{y + 1}" width="{cw - 2}" height="{ch - 2}" rx="3" '
                             f'fill="{col}"/><text x="{x + cw / 2:.1f}" y="{y + 14}" text-anchor="middle" '
                             f'font-size="10.5" fill="{fg}">{esc(top)}</text><text x="{x + cw / 2:.1f}" y="{y + 27}" '
                             f'text-anchor="middle" font-size="9.5" fill="{fg}">{esc(bottom)}</text>'
                             f'<title>{esc(title)}</title></g>')
        y, x = T + ch * len(self.rows) + 16, 10
        for v, col in self.legend.items():
            parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{col}"/>'
                         f'<text x="{x + 16}" y="{y + 10}" font-size="10">{esc(v)}</text>')
            x += 22 + 6 * len(v)
        parts.append("</svg>")
        return "".join(parts)
