"""report.html: built from the run folder alone, and rendered in a real headless browser."""
import os
import shutil

import numpy as np
import pytest

from mmgain.cli import main

NAMES = ["text", "audio", "video"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    np.savez(root / "d.npz", text=rng.normal(size=(n, 4)) + y[:, None], audio=rng.normal(size=(n, 3)) + 0.3 * y[:, None],
             video=rng.normal(size=(n, 2)), y=y)
    out = root / "run"
    assert main(["run", "--cv", "0", "--data", str(root / "d.npz"), "--ratios", "0.2", "1", "--seeds", "2", "--epochs", "2",
                 "--probe-epochs", "1", "--hidden", "8", "--quiet", "--out", str(out)]) == 0
    return out


def test_every_run_writes_a_report_and_report_rebuilds_it_from_the_folder_alone(run_dir, tmp_path, capsys):
    page = (run_dir / "report.html").read_bytes()
    assert b"<svg" in page and b"http://" not in page.replace(b"http://www.w3.org/2000/svg", b"")
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").read_bytes() == page                 # same files, same page
    bare = tmp_path / "bare"                                               # only the two JSON files travel
    bare.mkdir()
    for f in ("summary.json", "run.json"):
        shutil.copy(run_dir / f, bare / f)
    assert main(["report", str(bare)]) == 0
    assert f"report: {bare / 'report.html'}" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


def _chromium() -> str:
    path = os.environ.get("MMGAIN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: install the system chromium (see README, Set-up)")
        pytest.skip("no system chromium (apt-get install -y chromium)")
    return path


def test_the_report_renders_in_a_real_browser(run_dir, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_load_state("networkidle")
        assert errors == []
        assert [u for u in requests if not u.startswith("file://")] == []          # no network at all
        for k in NAMES:                                                             # a card with a verdict each
            verdict = page.locator(f'.card[data-modality="{k}"] .verdict-main')
            assert verdict.count() == 1
            assert verdict.inner_text() in ("helps", "hurts", "no effect", "inconclusive")
        assert page.locator("svg.hasse g.node").count() == 7                        # the whole lattice
        assert page.locator("svg.hasse line.edge").count() == 9                     # one edge per pair
        assert page.locator("svg.curves polyline.curve").count() == 7
        assert page.locator("svg.bars rect").count() == 3                           # Shapley bars
        box = page.locator("svg.curves").bounding_box()
        assert box["width"] > 300 and box["height"] > 200                           # drawn, not collapsed
        table = page.locator("#tables table.sortable").first                        # sorting works
        column = lambda: [float(t.split("±")[0]) for t in table.locator("tr td:nth-child(2)").all_inner_texts()]  # noqa: E731
        table.locator("th").nth(1).click()
        assert column() == sorted(column()) and len(column()) == 7
        table.locator("th").nth(1).click()
        assert column() == sorted(column(), reverse=True)
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20_000


# The page must fit the window: nothing wider than the viewport, and nothing hidden in a
# scroll box.  An element counts when its right edge passes the viewport's.
_OVERFLOW = """() => {
  const vw = document.documentElement.clientWidth, bad = [];
  document.querySelectorAll('body *').forEach(e => {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1) bad.push(e.tagName + '.' + e.className.baseVal + e.className + ' ' + Math.round(r.right));
  });
  return {page: document.documentElement.scrollWidth, viewport: vw, bad: bad.slice(0, 10)};
}"""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.mark.parametrize("width", [1400, 800])
def test_nothing_is_wider_than_the_window(run_dir, browser, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_load_state("networkidle")
    got = page.evaluate(_OVERFLOW)
    assert got["page"] <= got["viewport"] and got["bad"] == [], got
    assert errors == []
    page.close()


def test_printing_shows_every_table_row_and_every_folded_part(run_dir, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_load_state("networkidle")
    page.locator("input.filter").first.fill("no row matches this")             # a filter hides rows on screen
    assert page.locator("details[open]").count() == 0
    page.emulate_media(media="print")
    hidden = page.evaluate("""() => Array.from(document.querySelectorAll('table tr'))
        .filter(r => r.getBoundingClientRect().height === 0).length""")
    assert hidden == 0
    assert page.locator("details").count() > 0
    assert page.locator("details:not([open])").count() == 0                     # every <details> printed open
    assert page.evaluate("() => document.querySelector('nav').getBoundingClientRect().height") == 0
    page.emulate_media(media="screen")
    page.wait_for_function("document.querySelectorAll('details[open]').length === 0", timeout=5000)  # closed again
    page.close()


def test_the_page_reads_at_a_glance(run_dir):
    """No text in <pre> blocks, every figure with alt text, full lattice labels, the verdict
    heat map, learning curves with bands, and a caption that promises only what is drawn."""
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<pre" not in page
    svgs = page.split("<svg")[1:]
    assert svgs and all('aria-label="' in s.split(">", 1)[0] and "<title>" in s for s in svgs)
    assert 'class="heatmap"' in page and 'class="band"' in page
    assert "…" not in "".join(s for s in svgs if 'class="hasse"' in s.split(">", 1)[0])
    assert ("dashed: the fitted" in page) == ('class="fit"' in page)


def test_lattice_labels_are_whole():
    from mmgain.report.figures import label_lines
    name = "image+text+sensor+audio+depth+thermal"
    lines = label_lines(name)
    assert "".join(lines) == name and all(len(x) <= 17 for x in lines)


def test_the_curve_band_is_mean_plus_minus_t_sd_over_root_n():
    from mmgain.report.html import _band
    lo, hi = _band({"n_seeds": 5, "test_acc_std": 2.0, "test_acc_mean": 90.0}, "acc")
    half = 2.7764451051977987 * 2.0 / 5 ** 0.5                    # t(0.975, 4), by hand
    assert (lo, hi) == pytest.approx((90.0 - half, 90.0 + half))
    assert _band({"n_seeds": 1, "test_acc_std": 0.0, "test_acc_mean": 90.0}, "acc") is None
