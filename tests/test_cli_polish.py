"""The command line at first sight: list with descriptions, grouped help with examples, the
quick first command, terminal output that fits 100 columns, verdicts in the data's modality
order, and messages that name only files that exist."""
import unicodedata

import numpy as np
import pytest

from mmgain.cli import build_parser, main
from mmgain.errors import Terminated
from mmgain.report.tables import TERMINAL_WIDTH, render


def _width(line: str) -> int:
    """Columns a line takes in a terminal (combining marks take none)."""
    return sum(not unicodedata.combining(c) for c in line)


def test_list_describes_every_registered_name(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    entries = [x for x in out if x.startswith("  ")]
    assert len(entries) >= 20
    assert all(len(x.split(None, 1)) == 2 for x in entries), [x for x in entries if len(x.split(None, 1)) < 2]
    assert any(x.strip().startswith("mfeat") and "digits" in x for x in entries)


def test_run_help_is_grouped_with_examples(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = capsys.readouterr().out
    groups = [g for g in ("data:", "design:", "protocol:", "outputs:", "execution:")]
    where = [text.index("\n" + g) for g in groups]
    assert where == sorted(where)                                   # every group, in this order
    at = lambda flag: text.index("\n  " + flag)                     # noqa: E731  where the flag is described
    assert where[0] < at("--data") < where[1] < at("--subsets") < where[2] < at("--epochs") < where[3]
    assert where[3] < at("--out") < where[4] < at("--backend")
    examples = text.split("examples:")[1]
    assert examples.count("mmgain run") >= 2 and "--quick" in examples


def test_quick_is_leave_one_out_at_two_sizes_unless_told_otherwise():
    parser = build_parser()
    args = parser.parse_args(["run", "--quick"])
    spec = args.build(args)
    assert spec.subsets == "leave-one-out" and spec.ratios == (0.1, 1.0)
    args = parser.parse_args(["run", "--quick", "--subsets", "all", "--ratios", "1"])
    spec = args.build(args)
    assert spec.subsets == "all" and spec.ratios == (1.0,)
    import mmgain
    import inspect
    assert "quick" in inspect.signature(mmgain.analyze).parameters


def test_a_wide_table_is_split_and_wrapped_to_100_columns():
    header = ["M", "N", "family"] + [f"a long column heading number {i} (units)" for i in range(8)]
    rows = [["fou+fac+kar+pix+zer+mor", "fou+fac+kar+pix+zer", "primary"] + [f"[-0.0268, +0.{i}066]" for i in range(8)]]
    text = render(header, rows, title="Table 3 — a title long enough to wrap " * 5)
    assert all(_width(x) <= TERMINAL_WIDTH for x in text.splitlines())
    assert text.count("fou+fac+kar+pix+zer+mor") >= 2                 # the row-naming columns repeat per part
    for i in range(8):
        assert f"+0.{i}066" in text                                   # no cell lost


def test_a_caption_keeps_its_lines():
    text = render(["a"], [["1"]], title="Table 1 — first line\nsecond line")
    assert text.splitlines()[:2] == ["Table 1 — first line", "second line"]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("polish")
    r = np.random.default_rng(1)
    n = 240
    y = r.integers(0, 3, n)
    # zeta first, alpha last: the data's order is not alphabetical
    np.savez(root / "d.npz", zeta=r.normal(size=(n, 4)) + y[:, None], mid=r.normal(size=(n, 3)),
             alpha=r.normal(size=(n, 2)) + 0.5 * y[:, None], y=y)
    return root / "d.npz"


def test_terminal_output_fits_100_columns_and_verdicts_follow_the_data_order(three, tmp_path, capsys):
    assert main(["run", "--data", str(three), "--quick", "--cv", "0", "--seeds", "2", "--epochs", "3",
                 "--quiet", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    too_wide = [x for x in out.splitlines() if _width(x) > TERMINAL_WIDTH]
    assert too_wide == []
    paragraphs = [x for x in out.splitlines() if " added to " in x and "(primary)" in x]
    assert [p.split()[0] for p in paragraphs] == ["zeta", "mid", "alpha"]
    last = out.rstrip().splitlines()[-1]
    assert " models in " in last and " s on " in last                  # the timing is the last line


def test_an_interrupt_before_any_chunk_names_no_missing_file(three, tmp_path, capsys, monkeypatch):
    from mmgain import api
    from mmgain.run.runner import RunInterrupted

    def stop(*a, **k):
        raise RunInterrupted(None, 0, 3, Terminated())
    monkeypatch.setattr(api, "run_experiment", stop)
    out = tmp_path / "o"
    assert main(["run", "--data", str(three), "--quiet", "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert "results.csv" not in err and not (out / "results.csv").exists()
    assert "nothing had finished" in err and (out / "run.json").is_file()
