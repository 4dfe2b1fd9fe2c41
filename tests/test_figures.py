"""The one figure stack: a figure described once is drawn inline (SVG, with hover titles and a
text alternative) and as the run folder's PNG."""
import re

import pytest

from mmgain.report.figures import BarFigure, HeatmapFigure, LatticeFigure, Line, LineFigure, Rule, label_lines


def _fig(**kw):
    lines = [Line("a+b", [10, 100, 1000], [60.0, 70.0, 80.0], colour="#1f77b4", filled=[True] * 3,
                  band=([55.0, 66.0, 78.0], [65.0, 74.0, 82.0])),
             Line("fit", [10, 1000], [0.0, 200.0], css="fit", dash="4 3", legend=False, scale=False)]
    return LineFigure("curves", "test accuracy against rows", "training rows (log scale)", "test accuracy %",
                      lines, logx=True, rules=[Rule(300.0, "x", "#1f77b4", "2 2", 1.0, "mstar", "m* ≈ 300")], **kw)


def test_a_line_figure_draws_its_lines_bands_rules_and_legend_in_svg():
    svg = _fig().svg()
    assert svg.startswith('<svg class="curves" role="img" aria-label="test accuracy against rows"')
    assert "<title>test accuracy against rows</title>" in svg
    assert svg.count('class="curve"') == 1 and svg.count('class="band"') == 1 and svg.count('class="mstar"') == 1
    assert svg.count("<circle") == 3
    # the fit is kept out of the axis range: its points outside it are dropped, not drawn at the edge
    ticks = [float(t) for t in re.findall(r'text-anchor="end" font-size="10">([-0-9.e]+)<', svg)]
    assert max(ticks) <= 85 and min(ticks) >= 50
    assert "fit" not in re.findall(r'font-size="10">([^<]*)</text>', svg)    # no legend entry for it


def test_the_same_figure_writes_its_png(tmp_path):
    path = _fig(title="a title").png(tmp_path / "fig_x.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.parametrize("figure", [
    BarFigure(["a", "b"], [1.0, -0.5], [[0.5, 1.5], [-1.0, 0.0]], "Shapley value"),
    LatticeFigure("lattice", [["a+b"], ["a", "b"]], {"a+b": 1.0, "a": 0.2, "b": 0.0}, {}, [("a+b", "a", "#1a9850", 3, "t")]),
    HeatmapFigure("grid", "n", ["10", "100"], ["a"], {(0, 0): ("#1a9850", "helps", "+1", "t")}, {"helps": "#1a9850"}),
    LineFigure("v", "categories", "subset", "η", [Line("ρ=1", [0, 1], [2.0, 1.0])], categories=["m1", "m1+m2"]),
])
def test_every_figure_kind_has_a_text_alternative(figure):
    svg = figure.svg()
    alt = figure.alt
    assert alt and f'aria-label="{alt}"' in svg and f"<title>{alt}</title>" in svg and svg.endswith("</svg>")


def test_labels_are_whole():
    assert "".join(label_lines("fou+fac+kar+pix+zer+mor")) == "fou+fac+kar+pix+zer+mor"
