"""The answer a user acts on: cross-fitted intervals (coverage by simulation), verdict rules, the
primary/exploratory families, the rows needed to decide, regression read as regression."""
import json

import numpy as np
import pytest

from mmgain.cli import main
from mmgain.catalog import EXPERIMENTS
from mmgain.run import plan_run, run_experiment
from mmgain.analysis.estimates import decide
from mmgain.analysis.stats import cross_fitted, interval, naive_cross_fitted, paired, rows_needed
from mmgain.theory.coverage import coverage
from toy_data import label_noise_npz

FAST = {"epochs": 4, "probe_epochs": 2, "hidden": 16, "probe_max_iter": 100, "heldout_max_iter": 60}


# ---------------------------------------------------------------- coverage of the CV interval
# Ground truth in closed form (mmgain.theory.coverage): nearest-means rules on Gaussian classes.

INTERVALS = {"cross_fitted": cross_fitted, "naive": naive_cross_fitted}


def test_cv_interval_covers_on_a_null_where_the_naive_one_does_not():
    """Models that vary (seed noise) and train on overlapping folds: the naive CV interval, every row
    independent, covers far below 95 %; the cross-fitted interval holds ≥ 93 %."""
    cover, _ = coverage("null", INTERVALS, reps=400, seed_noise=0.8)
    assert cover["cross_fitted"]["coverage"] >= 0.93
    assert cover["naive"]["coverage"] < 0.85


def test_cv_interval_covers_a_known_gain():
    cover, truth = coverage("effect", INTERVALS, reps=400, seed_noise=0.0)
    assert truth > 1.0
    assert cover["cross_fitted"]["coverage"] >= 0.93


def test_cross_fitted_interval_by_hand():
    """The variance: pooled within-fold row variance over K·m rows, plus (1/J + 1/(K−1))·τ̂²."""
    rng = np.random.default_rng(0)
    D = rng.normal(size=(2, 4, 30)) + rng.normal(size=(2, 4, 1))
    r = cross_fitted(D)
    rows = D.mean(0)
    within = ((rows - rows.mean(1, keepdims=True)) ** 2).sum() / (4 * 29)
    tau2 = max(0.0, D.mean(2).reshape(-1).var(ddof=1) - within / 30)
    assert r["var"] == pytest.approx(within / 120 + (1 / 8 + 1 / 3) * tau2)
    assert r["mean"] == pytest.approx(D.mean())
    # one fold: the fixed-split interval, unchanged
    assert paired(D[:, :1])["ci"] == pytest.approx(paired(D[:, :1])["ci"])
    lo, hi = interval(r, 1 - 0.05 / 3)
    assert lo < r["ci"][0] and hi > r["ci"][1]          # a simultaneous interval is wider


# ---------------------------------------------------------------- verdict rules


@pytest.mark.parametrize("lo, hi, expected", [
    (+0.5, +3.0, "helps"),
    (+0.1, +0.4, "helps"),            # a real gain, smaller than the margin: still helps (it rejects 0)
    (-3.0, -0.5, "hurts"),
    (-0.6, +0.7, "no effect"),        # inside ±margin
    (-4.0, +0.2, "does not help"),    # cannot add a margin's worth; a loss beyond the margin not excluded
    (-0.5, +2.0, "inconclusive"),
    (float("nan"), float("nan"), "inconclusive"),
])
def test_verdict_rules(lo, hi, expected):
    assert decide(lo, hi, 1.0) == expected


# ---------------------------------------------------------------- rows needed, against a simulation


def test_rows_needed_gives_the_promised_power():
    """With the variance components known (seed sd τ, per-row sd σ on a fixed split: the interval's
    variance is τ²/S + 2σ²/(S·n)), a true difference of exactly the margin, measured on the rows the
    rule asks for, is declared (the simultaneous interval's lower end > 0) in ≈ 80 % of studies."""
    rng = np.random.default_rng(1)
    S, sigma, tau, margin, alpha = 5, 20.0, 0.3, 2.0, 0.05 / 3
    pilot = paired(rng.normal(size=(S, 1, 300)) * sigma + rng.normal(size=(S, 1, 1)) * tau)   # its df
    n = rows_needed({"row_var": 2 * sigma ** 2 / S, "model_part": tau ** 2 / S, "df": pilot["df"]}, margin, alpha)
    assert 400 < n < 900
    hits, reps = 0, 1500
    for _ in range(reps):
        D = margin + rng.normal(size=(S, 1, n)) * sigma + rng.normal(size=(S, 1, 1)) * tau
        hits += interval(paired(D), 1 - alpha)[0] > 0
    assert abs(hits / reps - 0.80) < 0.04


def test_the_variance_components_are_estimated_from_a_pilot():
    rng = np.random.default_rng(2)
    S, sigma, tau, m = 10, 20.0, 1.0, 2000
    r = paired(rng.normal(size=(S, 1, m)) * sigma + rng.normal(size=(S, 1, 1)) * tau)
    assert r["row_var"] == pytest.approx(2 * sigma ** 2 / S, rel=0.1)
    assert abs(r["model_part"] - tau ** 2 / S) < 0.1


def test_rows_needed_says_none_when_rows_cannot_help():
    assert rows_needed({"row_var": 400.0, "model_part": 10.0}, 1.0, 0.05) is None     # seeds, not rows
    assert rows_needed({"row_var": float("nan"), "model_part": 0.0}, 1.0, 0.05) is None


# ---------------------------------------------------------------- runs: families, agreement, CV


_npz = label_noise_npz


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    path = _npz(tmp_path_factory.mktemp("cv") / "d.npz")
    spec = EXPERIMENTS.get("run").with_(data=str(path), ratios=(0.25, 1.0), protocol_overrides=FAST)
    return run_experiment(spec, device="cpu", progress=False)


def test_data_without_a_split_are_cross_fitted_by_default(cv_run):
    assert cv_run.design["folds"] == 5 and cv_run.design["seeds"] == 1
    assert cv_run.design["n_scored"] == 400                 # every row scored once
    assert {g.fold for g in cv_run.groups} == set(range(5))
    name, rows = cv_run.data.row_file                       # folds.csv: the fold that scored each row
    assert name == "folds.csv" and [r["row"] for r in rows] == list(range(400))
    plan = plan_run(cv_run.spec, device="cpu", progress=False)
    tested = np.concatenate([g.rows[g.dataset.train_test_indices()[1]] for g in plan.groups])
    assert sorted(tested.tolist()) == list(range(400))
    assert all(r["fold"] == g.fold for g in plan.groups for r in (rows[i] for i in g.rows[g.dataset.train_test_indices()[1]]))
    for g in plan.groups:                                   # no fold trains on its own test rows
        tr, te = g.dataset.train_test_indices()
        assert not set(g.rows[tr]) & set(g.rows[te])
    p = next(p for p in cv_run.summary["pairs"] if p["M"] == "label+noise" and p["N"] == "noise" and p["ratio"] == 1)
    assert p["n_rows"] == 400 and p["n_folds"] == 5


def test_primary_family_is_each_modality_added_to_the_others(cv_run):
    pairs = cv_run.summary["pairs"]
    primary = [p for p in pairs if p["family"] == "primary"]
    assert {(p["M"], p["N"]) for p in primary} == {("label+noise", "noise"), ("label+noise", "label")}
    assert all(p["ratio"] == 1.0 for p in primary)
    assert all("q_by" in p for p in pairs if p["family"] == "exploratory")
    assert all(p["ci_level"] == pytest.approx(1 - 0.05 / 2) for p in primary)
    assert all(p["ci_level"] == pytest.approx(0.95) for p in pairs if p["family"] == "exploratory")
    verdicts = {(v["M"], v["N"], v["ratio"]): v for v in cv_run.summary["verdicts"]}
    assert verdicts["label+noise", "noise", 1.0]["family"] == "primary"
    assert verdicts["label+noise", "noise", 1.0]["verdict"] == "helps"
    assert verdicts["label+noise", "label", 1.0]["verdict"] != "helps"


def test_every_verdict_agrees_with_its_printed_interval(cv_run):
    for p in cv_run.summary["pairs"]:
        lo, hi = p["gain_ci"]
        assert p["verdict"] == decide(lo, hi, cv_run.summary["tests"]["margin"])
        assert {"helps": lo > 0, "hurts": hi < 0, "inconclusive": lo <= 0 <= hi}.get(p["verdict"], True)
        assert p["acc_diff_ci"] == pytest.approx([lo, hi])     # the one interval, in M − N orientation too


def test_primary_pairs_named_by_the_user(tmp_path, capsys):
    data = _npz(tmp_path / "d.npz", n=200)
    out = tmp_path / "r"
    assert main(["run", "--data", str(data), "--ratios", "1", "--epochs", "3", "--probe-epochs", "2", "--hidden",
                 "8", "--primary", "noise+label:label", "--quiet", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    primary = [p for p in s["pairs"] if p["family"] == "primary"]
    assert [(p["M"], p["N"]) for p in primary] == [("label+noise", "label")]
    assert primary[0]["ci_level"] == pytest.approx(0.95)        # a family of one
    assert (out / "folds.csv").exists()
    capsys.readouterr()
    assert main(["run", "--data", str(data), "--ratios", "1", "--primary", "label:noise", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "not a pair this run compares" in capsys.readouterr().err


def test_a_cv_run_in_many_chunks_equals_the_single_chunk_run(tmp_path):
    data = _npz(tmp_path / "d.npz", n=200)
    spec = EXPERIMENTS.get("run").with_(data=str(data), ratios=(0.5, 1.0), protocol_overrides=FAST)
    one = run_experiment(spec, device="cpu", progress=False)
    many = run_experiment(spec, device="cpu", progress=False, memory_budget=1.0)
    assert one.design["folds"] == 5 and many.meta["n_chunks"] > one.meta["n_chunks"]
    for k in ("test_acc", "train_ce"):
        np.testing.assert_allclose(one.metrics[k], many.metrics[k], rtol=1e-4, atol=1e-5, err_msg=k)
    # A stream trained beside streams with more rows has a padded minibatch (its sums grouped
    # apart), and a probe capped on a flat objective (FAST's 60 iterations) carries that further
    # (docs/guide/run-folder.md, "Determinism"; benchmarks/2026-12-07-decrease-test.md, also for
    # what MKL's alignment-dependent rounding added before MKL_CBWR was set).
    for k in ("latent_risk", "eta", "probe_ce"):
        np.testing.assert_allclose(one.metrics[k], many.metrics[k], rtol=3e-3, err_msg=k)
    a = [(p["M"], p["N"], p["ratio"], p["verdict"]) for p in one.summary["pairs"]]
    assert a == [(p["M"], p["N"], p["ratio"], p["verdict"]) for p in many.summary["pairs"]]


def test_a_cv_run_resumes(tmp_path):
    from mmgain.run.store import ResultStore
    data = _npz(tmp_path / "d.npz", n=200)
    out = tmp_path / "r"
    args = ["run", "--data", str(data), "--ratios", "0.5", "1", "--epochs", "3", "--probe-epochs", "2",
            "--hidden", "8", "--memory-gb", "1e-9", "--quiet", "--out", str(out)]
    assert main(args) == 0
    full = json.loads((out / "summary.json").read_text())
    store = ResultStore(out)
    chunks = sorted(store.path.glob("chunk-*.npz"))
    assert len(chunks) > 1
    for c in chunks[1:]:                     # as if killed after the first chunk
        c.unlink()
    assert main(["resume", str(out), "--quiet"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert [p["gain"] for p in again["pairs"]] == pytest.approx([p["gain"] for p in full["pairs"]], abs=1e-6)


# ---------------------------------------------------------------- regression reads like regression


def test_regression_gain_is_the_mse_reduction_with_a_baseline(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 300
    good, noise = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    y = good @ np.array([1.0, -1.0, 0.5, 2.0]) + 0.3 * rng.normal(size=n)
    np.savez(tmp_path / "r.npz", good=good, noise=noise, y=y)
    out = tmp_path / "out"
    assert main(["run", "--data", str(tmp_path / "r.npz"), "--task", "regression", "--ratios", "1",
                 "--epochs", "30", "--probe-epochs", "10", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    p = next(p for p in s["pairs"] if p["M"] == "good+noise" and p["N"] == "noise")
    assert p["gain"] > 0 and p["gain"] == pytest.approx(-p["mse_diff_mean"])     # + = helps
    assert p["gain_ci"] == pytest.approx(sorted(-x for x in p["mse_diff_ci"]))
    assert p["verdict"] == "helps"
    cells = {c["subset"]: c for c in s["cells"]}
    assert cells["good"]["r2_mean"] > 0.5 and not cells["good"]["worse_than_baseline"]
    assert cells["noise"]["r2_mean"] < 0.1
    assert "(predict the training mean)" in printed and "R² (vs. the mean)" in printed
    margin = s["tests"]["margin"]
    assert margin == float(f"{margin:.3g}")                                        # 3 significant figures


# ---------------------------------------------------------------- a new user's data, default design


def test_a_new_users_data_gets_an_answer(tmp_path, capsys):
    """The example of the issue "An answer a user can act on": image informative, text weak (≈ +3
    points on top of image), sensor pure noise; 1500 rows without a split, the default design."""
    rng = np.random.default_rng(42)
    n = 1500
    y = rng.integers(0, 3, n)

    def block(d, s):
        c = rng.normal(size=(3, d))
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        return s * c[y] + rng.normal(size=(n, d))
    image, text, sensor = block(32, 2.2), block(16, 0.9), rng.normal(size=(n, 8))
    np.savez(tmp_path / "mine.npz", image=image, text=text, sensor=sensor, y=y)
    out = tmp_path / "r"
    assert main(["run", "--data", str(tmp_path / "mine.npz"), "--ratios", "0.1", "1", "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["design"]["folds"] == 5 and s["design"]["n_scored"] == 1500
    primary = {p["modality"]: p for p in s["pairs"] if p["family"] == "primary"}
    assert primary["image"]["verdict"] == "helps"
    assert primary["sensor"]["verdict"] in ("no effect", "does not help", "hurts")
    assert primary["text"]["verdict"] == "helps" or primary["text"]["rows_needed"]
    for p in primary.values():
        assert p["verdict"] == decide(*p["gain_ci"], s["tests"]["margin"])
    assert "sensor added to image+text at n=1200 (primary)" in printed


def test_a_run_folder_from_before_cross_fitting_resumes_on_its_fixed_split(tmp_path):
    data = _npz(tmp_path / "d.npz", n=200)
    out = tmp_path / "r"
    assert main(["run", "--cv", "0", "--data", str(data), "--ratios", "0.5", "1", "--seeds", "2", "--epochs", "3",
                 "--probe-epochs", "2", "--hidden", "8", "--memory-gb", "1e-9", "--quiet", "--out", str(out)]) == 0
    for name in ("store/manifest.json", "run.json"):      # as written by a version without these fields
        d = json.loads((out / name).read_text())
        del d["spec"]["cv"], d["spec"]["primary"]
        (out / name).write_text(json.dumps(d))
    sorted((out / "store").glob("chunk-*.npz"))[-1].unlink()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["design"]["folds"] == 0
