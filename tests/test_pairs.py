"""The runner's pair statistics pinned by number: signs, η̂'s reference, chunking, stacking, verdicts."""
import json

import numpy as np
import pytest

from mmgain.cli import main
from mmgain.catalog import EXPERIMENTS
from mmgain.run import run_experiment
from mmgain.analysis.estimates import PairAnalysis
from mmgain.run.chunk import _probe_chunk
from mmgain.tasks import get_task
from conftest import DEVICES
from toy_data import label_noise_npz

FAST = {"epochs": 4, "probe_epochs": 2, "hidden": 16, "probe_max_iter": 100, "heldout_max_iter": 60}


_npz = label_noise_npz


def _spec(path, **kw):
    return EXPERIMENTS.get("run").with_(cv=0, data=str(path), seeds=3, ratios=(0.25, 1.0), protocol_overrides=FAST, **kw)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return run_experiment(_spec(_npz(tmp_path_factory.mktemp("d") / "k.npz")), device="cpu", progress=False)


def test_known_answer_label_helps_noise_does_not(known):
    pairs = {(p["M"], p["N"], p["ratio"]): p for p in known.summary["pairs"]}
    add_label = pairs["label+noise", "noise", 1.0]
    assert add_label["acc_diff_mean"] > 20 and add_label["verdict"] == "helps"
    assert add_label["gamma"] < -0.2 and add_label["gamma_ci"][1] < 0 and add_label["latent"] == "better"
    assert add_label["gamma_acc"] > 10 and add_label["gamma_acc_raw"] > 10      # + = M better for accuracy
    add_noise = pairs["label+noise", "label", 1.0]
    assert add_noise["verdict"] != "helps" and add_noise["latent"] == "not resolved"
    assert add_noise["gamma_ci"][0] <= 0 <= add_noise["gamma_ci"][1]


def test_pair_numbers_recomputed_from_the_per_row_outcomes(known):
    """acc_diff and γ̂ are means of per-row differences, M − N; flipping a sign or swapping M and N fails."""
    res = known
    a, b = res.subsets.index(("label", "noise")), res.subsets.index(("noise",))
    js = res.streams.where([0], 1.0)
    correct = res.rows["test"]["correct"].astype(float) * 100
    p = next(p for p in res.summary["pairs"] if p["M"] == "label+noise" and p["N"] == "noise" and p["ratio"] == 1.0)
    assert p["acc_diff_mean"] == pytest.approx((correct[js, a] - correct[js, b]).mean())
    assert p["acc_diff_mean"] == pytest.approx(res.metrics["test_acc"][js, a].mean() - res.metrics["test_acc"][js, b].mean())
    q = res.pairs.index((a, b))
    half = lambda w: 0.5 * (res.rows[f"{w}_fit"]["loss"] + res.rows[f"{w}_eval"]["loss"])  # noqa: E731
    assert p["gamma"] == pytest.approx((half("heldout")[js, a] - half("matched")[js, q]).mean(), rel=1e-6)
    paper = res.metrics["probe_acc"]
    assert p["gamma_acc_raw"] == pytest.approx((paper[js, a] - paper[js, b]).mean())


def test_eta_has_one_reference_per_run_across_ratios(known):
    """η̂ = corrected latent risk − min over every subset and ratio of its seed mean."""
    m, res = known.metrics, known
    cells = [m["latent_risk"][res.streams.where([0], r)][:, a].mean() for r in (0.25, 1.0)
             for a in range(len(res.subsets))]
    ref = min(cells)
    np.testing.assert_allclose(m["eta"], m["latent_risk"] - ref, rtol=0, atol=1e-12)
    assert res.eta_reference[0]["reference"] == pytest.approx(ref)
    per_ratio = [min(m["latent_risk"][res.streams.where([0], r)].mean(0)) for r in (0.25, 1.0)]
    assert max(per_ratio) > ref                          # a per-ratio reference would differ
    raw_ref = min(m["probe_ce"][res.streams.where([0], r)][:, a].mean() for r in (0.25, 1.0)
                  for a in range(len(res.subsets)))
    np.testing.assert_allclose(m["eta_raw"], m["probe_ce"] - raw_ref, atol=1e-12)


def test_a_run_in_many_chunks_equals_the_single_chunk_run(tmp_path, known):
    chunked = run_experiment(_spec(_npz(tmp_path / "k.npz")), device="cpu", progress=False, memory_budget=1.0)
    assert chunked.meta["n_chunks"] == len(chunked.streams) > known.meta["n_chunks"]
    for k in ("test_acc", "train_ce", "probe_ce", "latent_risk", "eta"):
        np.testing.assert_allclose(chunked.metrics[k], known.metrics[k], rtol=1e-4, atol=1e-5)
    for a, b in zip(chunked.summary["pairs"], known.summary["pairs"]):
        assert a["verdict"] == b["verdict"] and a["gamma"] == pytest.approx(b["gamma"], rel=1e-3, abs=1e-5)


def test_probes_of_stacked_streams_equal_probes_one_stream_at_a_time(tmp_path):
    """Stacking S streams × A subsets for the probe must keep each model's latent with its own y
    and its own head; a swapped stream/subset index mixes them up."""
    from mmgain.data.sources import load_source
    from mmgain.data.splits import nested_sample
    from mmgain.training.batched import BatchedTrainer, DeviceData, Streams
    from mmgain.training.protocol import PROTOCOLS

    ds = load_source(str(_npz(tmp_path / "s.npz", n=200)), 0, {}, {})
    tr, te = ds.train_test_indices()
    train, test = (DeviceData.stack([(ds.rows(i), ds.y[i])], "cpu") for i in (tr, te))
    protocol = PROTOCOLS.get("huang2021").with_(**FAST)
    subsets = [("label",), ("noise",), ("label", "noise")]
    streams = Streams(np.zeros(3, int), np.array([0, 1, 2]), [nested_sample(train.n, r, s) for s, r in
                                                               ((0, 1.0), (1, 0.5), (2, 0.2))])
    trainer = BatchedTrainer(protocol, ds.dims, subsets, 3, "classification").fit(train, streams)
    task, pairs = get_task("classification"), [(2, 0), (2, 1)]
    args = (trainer, streams.groups, train, test, task, 3, protocol)
    together = _probe_chunk(*args, 1e12, None, pairs)
    alone = _probe_chunk(*args, 1.0, None, pairs)
    for where in together:
        for k in together[where]:
            if k in ("probe_solves", "probe_rounds", "probe_objective_calls"):
                continue                       # one solver call per group of streams: these differ by design
            np.testing.assert_allclose(together[where][k], alone[where][k], rtol=1e-3, atol=1e-4, err_msg=k)
    assert alone["work"]["probe_solves"][0] > together["work"]["probe_solves"][0]
    assert not np.allclose(together["heldout_eval"]["loss"][0], together["heldout_eval"]["loss"][2])


def _analysis(alpha=0.05, margin=1.0):
    a = object.__new__(PairAnalysis)
    a.task, a.alpha, a.margin = get_task("classification"), alpha, margin
    return a


@pytest.mark.parametrize("ci, expected", [((-0.2, -0.1), "better"), ((0.1, 0.2), "worse"),
                                          ((-0.2, 0.1), "not resolved")])
def test_latent_rules(ci, expected):
    assert _analysis().latent({"gamma_ci": list(ci)}) == expected


def test_why_names_a_cause_only_where_the_latent_interval_excludes_0():
    a = _analysis()
    base = {"modality": "audio", "gamma": 0.001, "gamma_ci": [-0.01, 0.012], "family": "primary", "bound": -1.0}
    hurts = a.why({**base, "verdict": "hurts", "latent": "not resolved"})
    assert "costs accuracy through extra inputs at this n (complexity), not harmful information" in hurts
    assert "not shown to be worse" in hurts and "no worse" not in hurts
    helps = a.why({**base, "verdict": "helps", "latent": "not resolved"})
    assert "not resolved" in helps and "does not account" not in helps
    assert "better representation" in a.why({**base, "verdict": "helps", "latent": "better"})
    assert "close the gap" in a.why({**base, "verdict": "hurts", "latent": "better"})
    undecided = a.why({**base, "verdict": "inconclusive", "latent": "not resolved", "rows_needed": 4200,
                       "n_rows": 2000})
    assert "about 4200 scored rows (this run: 2000) would resolve" in undecided
    # powered for ±margin already (2000 ≥ 905 rows): never ask for fewer rows than were scored
    between = a.why({**base, "verdict": "inconclusive", "latent": "not resolved", "rows_needed": 905,
                     "n_rows": 2000})
    assert "rows would resolve" not in between and "between 0 and +1 points" in between
    assert "adds at most -1 points" in a.why({**base, "verdict": "does not help", "latent": "not resolved"})


def test_null_control_run(tmp_path, capsys):
    out = tmp_path / "run"
    data = _npz(tmp_path / "n.npz")
    assert main(["run", "--cv", "0", "--data", str(data), "--ratios", "1", "--seeds", "3", "--epochs", "4", "--probe-epochs", "2",
                 "--hidden", "16", "--null-control", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Null control at ratio 1" in printed
    s = json.loads((out / "summary.json").read_text())
    controls = {(c["M"], c["N"]): c for c in s["null_control"]}
    assert set(controls) == {("noise+perm(label)", "noise"), ("label+perm(noise)", "label")}
    for c in controls.values():                      # a permuted copy carries no information
        assert c["latent"] == "not resolved" and c["verdict"] != "helps"
    net = controls["noise+perm(label)", "noise"]
    assert net["gamma_vs_null"] < 0 and net["gamma_vs_null_ci"][1] < 0   # label's gain net of the control
    assert {p["M"] for p in s["pairs"]} == {"label+noise"}                # controls stay out of the verdicts
    assert len([c for c in s["cells"] if c.get("control")]) == 2


def test_margin_option_changes_the_equivalence_claim(tmp_path, capsys):
    data = _npz(tmp_path / "m.npz")
    args = ["run", "--cv", "0", "--data", str(data), "--ratios", "1", "--seeds", "3", "--epochs", "4", "--probe-epochs", "2",
            "--hidden", "16", "--quiet"]
    assert main([*args, "--margin", "50", "--out", str(tmp_path / "wide")]) == 0
    wide = json.loads((tmp_path / "wide" / "summary.json").read_text())
    assert wide["tests"]["margin"] == 50 and all(p["verdict"] == "no effect" for p in wide["pairs"]
                                                  if p["N"] == "label")
    assert main([*args, "--margin", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert "--margin: must be a finite number in (0, 1e+12], got -1" in capsys.readouterr().err


def test_cli_tells_user_errors_from_bugs(tmp_path, capsys, monkeypatch):
    import mmgain.api as api
    data = _npz(tmp_path / "b.npz")
    assert main(["run", "--cv", "0", "--data", str(data), "--protocol", "huang2021", "--epochs", "0", "--quiet",
                 "--out", str(tmp_path / "u")]) == 2
    assert "--epochs: must lie in 1..100,000, got 0" in capsys.readouterr().err

    def broken(*a, **k):
        raise KeyError("internal")                   # a bug, not the user's fault

    monkeypatch.setattr(api, "run_experiment", broken)
    with pytest.raises(KeyError):
        main(["run", "--cv", "0", "--data", str(data), "--quiet", "--out", str(tmp_path / "v")])
    assert json.loads((tmp_path / "v" / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("device", DEVICES)
def test_a_chunks_probes_in_one_solve_equal_them_call_by_call(tmp_path, device):
    """The layout a GPU gets (``one_solve``: every fold, control and block of a chunk in one
    solver call, the paper's probe in another, widths padded) fits the same problems as one call
    per width and fold: the same outcomes, far fewer solver calls and rounds one after the other."""
    from mmgain.data.sources import load_source
    from mmgain.data.splits import nested_sample
    from mmgain.training.batched import BatchedTrainer, DeviceData, Streams
    from mmgain.training.protocol import PROTOCOLS

    ds = load_source(str(_npz(tmp_path / "s.npz", n=240)), 0, {}, {})
    tr, te = ds.train_test_indices()
    train, test = (DeviceData.stack([(ds.rows(i), ds.y[i])], device) for i in (tr, te))
    protocol = PROTOCOLS.get("huang2021").with_(**{**FAST, "hidden": 8, "probe_max_iter": 500,
                                                   "heldout_max_iter": 500})
    subsets = [("label",), ("noise",), ("label", "noise")]
    streams = Streams(np.zeros(2, int), np.array([0, 1]), [nested_sample(train.n, r, s) for s, r in
                                                           ((0, 1.0), (1, 0.5))])
    trainer = BatchedTrainer(protocol, ds.dims, subsets, 3, "classification", device).fit(train, streams)
    args = (trainer, streams.groups, train, test, get_task("classification"), 3, protocol, 1e12, None,
            [(2, 0), (2, 1)], [True, True])
    calls = _probe_chunk(*args, one_solve=False)
    one = _probe_chunk(*args, one_solve=True)
    assert set(one) == set(calls)
    for where in calls:
        if where == "work":
            continue
        assert set(one[where]) == set(calls[where])
        for k in calls[where]:                 # per row at the solver's stopping rule; per model (what γ̂ reads) tighter
            if k == "correct":                 # a row on a decision boundary may flip at the solver's tolerance
                assert np.mean(one[where][k] != calls[where][k]) <= 0.01, f"{where} {k}"
                continue
            np.testing.assert_allclose(one[where][k], calls[where][k], rtol=3e-2, atol=1e-3, err_msg=f"{where} {k}")
            if np.ndim(calls[where][k]) == 3:
                np.testing.assert_allclose(one[where][k].mean(-1), calls[where][k].mean(-1), rtol=1e-3, atol=1e-4)
    assert np.isfinite(one["diagnostics"]["block_noise_ce"]).sum() == 2        # the joint model's block, per stream
    w1, w0 = one["work"], calls["work"]
    assert w1["probe_fits"] == w0["probe_fits"] and w1["probe_unconverged"] == w0["probe_unconverged"] == 0
    # calls: paper (widths 8, 16) + 3 folds × (models and controls: widths 8, 16; blocks: 8) = 11; one solve: 2
    assert w0["probe_solves"][0] == pytest.approx(11) and w1["probe_solves"][0] == pytest.approx(2)
    assert w1["probe_rounds"][0] < w0["probe_rounds"][0] / 2


def test_a_gpu_chunk_whose_one_solve_runs_out_of_memory_is_probed_call_by_call(monkeypatch):
    """Out of GPU memory in the one-solve layout: the chunk's probes again, call by call, with a
    warning (the run goes on); on the CPU, whose layout that already is, the error stands."""
    import torch
    from mmgain.run import chunk

    calls = []

    def fake(*args, one_solve=None):
        calls.append(one_solve)
        if one_solve is None:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return {"work": {}}

    monkeypatch.setattr(chunk, "_probe_chunk", fake)
    with pytest.warns(RuntimeWarning, match="call by call"):
        assert chunk._probes_fitting_memory(torch.device("cuda"), None, [0, 1]) == {"work": {}}
    assert calls == [None, False]
    with pytest.raises(torch.OutOfMemoryError):
        chunk._probes_fitting_memory(torch.device("cpu"), None, [0, 1])
