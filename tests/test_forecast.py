"""The collection forecast and the best subset under a budget, against ground truth."""
import itertools
import json

import numpy as np
import pytest

from mmgain.analysis.forecast import parse_costs, rank_affordable
from mmgain.errors import SpecError


def test_the_budget_choice_is_the_brute_force_one():
    """Random values and costs over every subset of 4 modalities: the best affordable subset (ties:
    the cheaper) is what enumerating every subset by hand finds."""
    rng = np.random.default_rng(0)
    names = "abcd"
    subsets = [frozenset(c) for r in range(1, 5) for c in itertools.combinations(names, r)]
    for trial in range(300):
        values = {s: float(rng.integers(0, 6)) for s in subsets}          # ties on purpose
        costs = {k: float(rng.integers(0, 5)) for k in names}
        budget = None if trial % 10 == 0 else float(rng.integers(0, 12))
        higher = bool(trial % 2)
        ranked = rank_affordable(values, costs, budget, higher)
        brute = None
        for s in subsets:
            c = sum(costs[k] for k in s)
            if budget is not None and c > budget:
                continue
            v = values[s] if higher else -values[s]
            if brute is None or v > brute[1] or (v == brute[1] and c < brute[2]):
                brute = (s, v, c)
        if brute is None:
            assert ranked == []
        else:
            assert (ranked[0][1], ranked[0][2]) == (values[brute[0]], brute[2])
            assert all(r[2] <= (budget if budget is not None else np.inf) for r in ranked)


def test_costs_are_parsed_and_checked():
    assert parse_costs("text=1, audio=3,video=10") == {"text": 1.0, "audio": 3.0, "video": 10.0}
    assert parse_costs(None) is None and parse_costs({"a": 2}) == {"a": 2}
    for bad in ("text", "text=x", "=3", "text=-1", "text=inf"):
        with pytest.raises(SpecError, match="cost"):
            parse_costs(bad)


def test_the_forecast_beyond_the_grid_covers_the_closed_form_gain():
    """Least squares on two 100-feature Gaussian modalities (ρ = 0.8, σ² = 60), measured from 600 to
    6000 rows with 6 seeds: at 12 000 rows (2× the largest, the default target) each modality's
    forecast gain is flagged extrapolated and its interval holds the closed-form expected gain
    s²_N(1 + p_N/(n − p_N − 1)) − s²_M(1 + p_M/(n − p_M − 1)); the break-even n* of m2 lies near
    the closed-form 1702 rows."""
    from mmgain.catalog import EXPERIMENTS
    from mmgain.run.runner import run_experiment
    from mmgain.theory.closed_form import ols_crossover, ols_risk

    sizes = (600, 850, 1200, 1700, 2400, 3400, 4800, 6000)
    spec = EXPERIMENTS.get("oracle").with_(variants=({"overlap": 0.8, "noise": 60.0},), seeds=6,
                                           subsets=("m1", "m2", "m1+m2"), ratios=tuple(n / 6000 for n in sizes),
                                           data_args={"n_train": 6000, "n_test": 2000, "n_modalities": 2, "dim": 100})
    r = run_experiment(spec, device="cpu", progress=False)
    pop = r.groups[0].population
    fc = {f["modality"]: f for f in r.summary["forecast"]}
    assert set(fc) == {"m1", "m2"}
    for k, partner in (("m2", "m1"), ("m1", "m2")):
        f = fc[k]
        assert (f["M"], f["N"]) == ("m1+m2", partner) and f["target_n"] == 12000 and f["extrapolated"] is True
        truth = ols_risk(pop, (partner,), 12000) - ols_risk(pop, ("m1", "m2"), 12000)
        lo, hi = f["gain_ci"]
        assert lo <= truth <= hi, (k, lo, truth, hi)
        assert lo > 0                                            # an interval that says something: it helps
    assert fc["m2"]["n_star"] == pytest.approx(ols_crossover(pop, ("m1", "m2"), ("m1",)), rel=0.25)
    sel = r.summary["selection"][0]
    assert sel["best"] == "m1+m2" and sel["distinguishable"] is True
    assert sel["target"]["best"] == "m1+m2" and sel["target"]["extrapolated"] is True


def _npz(tmp_path, n=300):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    np.savez(tmp_path / "d.npz", a=rng.normal(size=(n, 3)) + y[:, None], b=rng.normal(size=(n, 2)),
             c=rng.normal(size=(n, 2)) + 0.5 * y[:, None], y=y)
    return str(tmp_path / "d.npz")


def test_costs_budget_and_target_reach_the_summary_and_the_report(tmp_path, capsys):
    from mmgain.cli import main

    data, out = _npz(tmp_path), tmp_path / "o"
    assert main(["run", "--data", data, "--grid", "dense", "--seeds", "3", "--cv", "0", "--epochs", "2",
                 "--hidden", "4", "--costs", "a=1,b=1,c=5", "--budget", "2", "--target-n", "500",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Should I collect it?" in printed and "Best subset (budget 2; costs a=1, b=1, c=5)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert {f["modality"] for f in summary["forecast"]} == {"a", "b", "c"}
    assert all(f["target_n"] in (500, None) for f in summary["forecast"])
    (sel,) = summary["selection"]
    assert sel["costs"] == {"a": 1, "b": 1, "c": 5} and sel["cost"] <= 2 and "c" not in sel["best"].split("+")
    assert summary["model_class"]["additive"] is True and "cannot show synergy" in summary["model_class"]["text"]
    est = json.loads((out / "run.json").read_text())["estimate"]      # the calibrated estimate, kept
    assert est["matmul_peak_gflops"]["float32"] > 0 and est["train_floor_s"] > 0 and est["seconds"] > 0
    work = json.loads((out / "run.json").read_text())["work"]        # what the run counted and timed
    assert work["probe_evals"] > 0 and work["train_flops"] > 0 and work["probe_flops"] > 0
    assert est["train_flops"] == pytest.approx(work["train_flops"], rel=1e-3)     # one count, said up front
    assert work["probe_fits"] > 0 and 0 <= work["probe_fits_short"] <= work["probe_fits"]
    # solver calls on the CPU: per chunk and fold at least one, each running rounds one after the other
    assert 0 < work["probe_solves"] <= work["probe_rounds"] <= work["probe_objective_calls"] <= work["probe_evals"]
    assert 0 < work["train_frac_peak"] < 1 and 0 < work["probe_frac_peak"] < 1
    peak = work["peak_gflops"]["float32"] * 1e9
    assert work["floor_s"] == pytest.approx((work["train_flops"] + work["probe_flops"]) / peak, rel=0.01)
    assert work["wall_over_floor"] > 1
    page = (out / "report.html").read_text()
    assert 'id="decision"' in page and "Should I collect it?" in page and "cannot show synergy" in page


def test_a_cost_for_a_modality_the_data_lack_is_refused_before_training(tmp_path, capsys):
    from mmgain.cli import main

    data = _npz(tmp_path)
    assert main(["run", "--data", data, "--costs", "a=1,x=3", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--costs names x" in err and "modalities: a, b, c" in err and not (tmp_path / "o").exists()
    assert main(["run", "--data", data, "--costs", "a=lots", "--quiet"]) == 2
    assert "modality=cost" in capsys.readouterr().err


def test_the_forecast_interval_covers_where_the_last_measured_gain_does_not():
    """Coverage by simulation: least squares on m1 and m1+m2 (20 features each, ρ = 0.8, σ² = 12,
    6 seeds, 120 to 1200 rows), each training sample's expected test MSE exact
    (mmgain.theory.coverage.ols_curves); truth: the closed-form expected gain at 2400 rows.  The
    forecast interval (bootstrap widened for few seeds, plus the tail spread) covers it in ≥ 90 %
    of 100 studies; the naive answer — the gain at the largest measured size with its t interval —
    answers another question and covers it rarely."""
    from scipy import stats
    from mmgain.analysis.curves import _boot_index
    from mmgain.analysis.forecast import tail_difference
    from mmgain.data.synthetic import make_linear_dataset
    from mmgain.theory.closed_form import ols_risk
    from mmgain.theory.coverage import ols_curves

    sizes = np.array([120, 170, 240, 340, 480, 680, 960, 1200], dtype=float)
    pop = make_linear_dataset(0, 10, 10, 2, 20, 0.8, 12.0).population
    truth = ols_risk(pop, ("m1",), 2400) - ols_risk(pop, ("m1", "m2"), 2400)
    rng, seeds = np.random.default_rng(1), 6
    ours = naive = done = 0
    for r in range(100):
        c = ols_curves(0.8, 12.0, sizes.astype(int), seeds, 20, rng)
        idx = _boot_index(seeds, r)
        eM, eN = c["m1+m2"], c["m1"]
        f = tail_difference(sizes, (eM, eM[idx].mean(1)), (eN, eN[idx].mean(1)), 2400)
        if f["gain"] is None:
            continue
        done += 1
        ours += f["gain_ci"][0] <= truth <= f["gain_ci"][1]
        last = (eN - eM)[:, -1]
        half = stats.t.ppf(0.975, seeds - 1) * last.std(ddof=1) / np.sqrt(seeds)
        naive += abs(last.mean() - truth) <= half
    assert done >= 85
    assert ours / done >= 0.9, ours / done
    assert naive / done < 0.5, naive / done
