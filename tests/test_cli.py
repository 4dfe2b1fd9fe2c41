"""End to end through the command line, on a reduced size."""
import csv
import json
import subprocess
import sys

import pytest

from mmgain.cli import main

SMALL = ["--seeds", "2", "--n-train", "600", "--n-test", "200", "--epochs", "2", "--quiet"]


def test_reproduce_synthetic_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    # 1500 test rows: the corrected η̂'s probe is cross-fitted on them (1200 rows per fit, ≤ 513 parameters)
    assert main(["reproduce", "synthetic", *SMALL[:4], "--n-test", "1500", *SMALL[6:], "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paper" in printed and "η* closed form" in printed and "12.04±0.39" in printed
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * 5 * 4
    assert {r["subset"] for r in rows} == {"m1", "m1+m2", "m1+m2+m3", "m1+m2+m3+m4"}
    assert {"experiment", "subset", "overlap", "seed", "test_mse", "probe_mse", "eta"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiment"] == "synthetic" and len(summary["cells"]) == 20
    cell = next(c for c in summary["cells"] if c["subset"] == "m1+m2" and c["overlap"] == 0.5)
    assert cell["paper"] == 51.25 and cell["closed_form"] == 50.0 and cell["n_seeds"] == 2
    # With 600 rows the probe is OLS on 201 parameters: the paper's procedure (the probe's test MSE)
    # lands near the finite-sample value η_n = 75.3, far above η* = 50; the corrected η̂ near η*.
    assert cell["eta_raw_mean"] == pytest.approx(cell["finite_sample"], rel=0.2)
    assert cell["eta_mean"] == pytest.approx(cell["closed_form"], rel=0.2)
    assert abs(cell["eta_mean"] - 50.0) < 0.5 * abs(cell["eta_raw_mean"] - 50.0)
    full = [c for c in summary["cells"] if c["subset"] == "m1+m2+m3+m4"]
    assert all(abs(c["eta_mean"]) < 1e-3 and abs(c["eta_raw_mean"]) < 1e-3 for c in full)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["n_models"] == 40 and "torch" in run["versions"]
    assert run["spec"]["resolved_protocol"]["epochs"] == 2
    assert (out / "fig_eta_vs_modalities.png").stat().st_size > 1000
    page = (out / "report.html").read_text()                      # the synthetic study writes a report too
    # no pairs: one line says why, instead of a grey card per modality; every overlap is drawn
    assert 'class="card"' not in page and "this experiment makes no pair comparisons" in page
    assert "this run compares no subset" in page and "<svg class=\"hasse\"" not in page
    variants = page.split('<svg class="variants"')[1].split("</svg>")[0]
    assert all(f"overlap={r}" in variants for r in (1.0, 0.8, 0.5, 0.2, 0.0))


def test_every_registered_experiment_can_be_reproduced_by_name():
    from mmgain.cli import build_parser
    from mmgain.catalog import EXPERIMENTS
    parser = build_parser()
    for name in EXPERIMENTS.names():
        extra = ["--data", "x.pkl"] if name == "iemocap" else []
        args = parser.parse_args(["reproduce", name, *extra, "--seeds", "1"])
        assert args.build(args).name == name


def test_refuses_to_overwrite_an_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.csv").write_text("precious")
    assert main(["reproduce", "synthetic", *SMALL, "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == "precious"


@pytest.mark.parametrize("args, message", [
    (["--subsets", "m1+m7"], "unknown modality 'm7'"),
    (["--epochs", "0"], "argument --epochs: must lie in 1..100,000, got 0"),
    (["--device", "cuda:7"] if True else [], "no CUDA device"),
])
def test_bad_arguments_get_clear_errors(tmp_path, capsys, args, message):
    import torch
    if "cuda:7" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["reproduce", "synthetic", *SMALL, "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "mmgain", "list"], capture_output=True, text=True, check=True)
    assert "synthetic" in res.stdout and "huang2021" in res.stdout


def test_version_is_printed(capsys):
    import mmgain
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mmgain {mmgain.__version__}"
