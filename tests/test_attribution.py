"""Modality attribution and joint-training diagnostics against brute force and constructed cases."""
from itertools import permutations

import numpy as np
import pytest
import torch

from mmgain.analysis.attribution import (MISSING_P, attribution, interactions_exact, permutation_shapley,
                                            shapley_exact)
from mmgain.run.diagnostics import joint_diagnostics
from mmgain.run.runner import run_experiment
from mmgain.spec import ExperimentSpec
from mmgain.models.late_fusion import BatchedLateFusion
from mmgain.models.components import HEADS
from mmgain.tasks import get_task
from mmgain.training.batched import DeviceData, Streams


def _brute_shapley(v, K):
    """The definition: the mean marginal contribution over all K! orderings."""
    phi = np.zeros(K)
    orders = list(permutations(range(K)))
    for order in orders:
        m = 0
        for k in order:
            phi[k] += v[m | 1 << k] - v[m]
            m |= 1 << k
    return phi / len(orders)


def _game(K, seed):
    return np.random.default_rng(seed).normal(size=2 ** K)


@pytest.mark.parametrize("K", [1, 2, 3, 4, 5])
def test_exact_shapley_equals_brute_force_and_is_efficient(K):
    v = _game(K, K)
    phi = shapley_exact(v)
    np.testing.assert_allclose(phi, _brute_shapley(v, K), atol=1e-12)
    assert phi.sum() == pytest.approx(v[-1] - v[0])                  # efficiency


def test_known_games():
    # additive: v(S) = Σ w_k → φ = w, no interaction
    w = np.array([3.0, -1.0, 0.5])
    v = np.array([sum(w[i] for i in range(3) if m >> i & 1) for m in range(8)])
    np.testing.assert_allclose(shapley_exact(v), w)
    np.testing.assert_allclose(interactions_exact(v), 0, atol=1e-12)
    # pure synergy of 0 and 1: v = c when both are present → φ_0 = φ_1 = c/2, I_01 = c
    v = np.array([5.0 * (m & 3 == 3) for m in range(8)])
    np.testing.assert_allclose(shapley_exact(v), [2.5, 2.5, 0])
    assert interactions_exact(v)[0, 1] == pytest.approx(5.0) and interactions_exact(v)[0, 2] == pytest.approx(0)
    # full redundancy: either 0 or 1 gives c → I_01 = −c
    v = np.array([5.0 * (m & 3 != 0) for m in range(8)])
    assert interactions_exact(v)[0, 1] == pytest.approx(-5.0)


def test_sampled_shapley_is_within_its_standard_error():
    K = 8
    v = _game(K, 0) + np.array([bin(m).count("1") for m in range(2 ** K)])
    exact = shapley_exact(v)
    est, se = permutation_shapley(lambda m: v[m], K, n_permutations=400, seed=1)
    z = np.abs(est - exact) / se
    assert (z < 4).all() and (z < 2).mean() >= 0.75, z
    _, se_big = permutation_shapley(lambda m: v[m], K, n_permutations=1600, seed=2)
    assert np.all(se_big < se)                                        # the error shrinks with draws


def _model(dims, subsets, seeds=(0, 1), O=3, head="linear"):
    return BatchedLateFusion(dims, subsets, list(seeds), O, hidden=5, head=head, head_width=4)


@pytest.mark.parametrize("head", HEADS.names())
def test_dropped_terms_and_the_ensemble_equal_the_standalone_models(head):
    """Every registered head: a modality dropped from the head's first layer, the uni-modal
    ensemble and the masked values equal the standalone models run by hand; the empty model's
    per-row loss is −log of the training labels' smoothed class frequency."""
    dims = {"a": 3, "b": 2}
    subsets = [("a",), ("b",), ("a", "b")]
    model = _model(dims, subsets, head=head)
    rng = np.random.default_rng(0)
    n = 50
    xs = {k: rng.normal(size=(1, n, d)).astype(np.float32) for k, d in dims.items()}
    y = rng.integers(0, 3, (1, n))
    data = DeviceData({k: torch.from_numpy(v) for k, v in xs.items()}, torch.from_numpy(y))
    streams = Streams(np.zeros(2, dtype=int), np.array([0, 1]), [np.arange(20), np.arange(30)])
    task = get_task("classification")
    d = joint_diagnostics(model, data, data, streams, task, row_chunk=16)
    x = {k: torch.from_numpy(v[0]) for k, v in xs.items()}
    for s in range(2):
        full = model.to_module(s, 2)
        with torch.no_grad():
            z = full.encode(x)                          # [a-block | b-block]
            for k, blk in (("a", slice(0, 5)), ("b", slice(5, 10))):
                zk = z.clone()
                zk[:, blk] = 0                          # modality k missing: its block (term) dropped
                acc = 100 * (full.head(zk).argmax(1).numpy() == y[0]).mean()
                assert d["metrics"][f"drop_{k}_acc"][s, 2] == pytest.approx(acc)
            ens = (model.to_module(s, 0)(x) + model.to_module(s, 1)(x)) / 2
            assert d["metrics"]["ensemble_acc"][s, 2] == pytest.approx(100 * (ens.argmax(1).numpy() == y[0]).mean())
            masked_b = full.head(torch.cat([torch.zeros(n, 5), z[:, 5:]], 1))   # only b kept: bitmask 0b10
            assert d["extras"]["masked_acc"][s, 2] == pytest.approx(100 * (masked_b.argmax(1).numpy() == y[0]).mean())
            assert d["extras"]["masked_acc"][s, 3] == pytest.approx(100 * (full(x).argmax(1).numpy() == y[0]).mean())
        counts = np.bincount(y[0][streams.train_rows[s]], minlength=3)
        assert d["extras"]["baseline_acc"][s] == pytest.approx(100 * (y[0] == counts.argmax()).mean())
        freq = (counts + 0.5) / (counts + 0.5).sum()
        np.testing.assert_allclose(d["extras"]["prior_loss"][s], -np.log(freq[y[0]]), rtol=1e-6)
    assert np.isnan(d["metrics"]["ensemble_acc"][:, :2]).all()
    assert np.isnan(d["metrics"]["drop_b_acc"][:, 0]).all()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 240
    y = rng.integers(0, 2, n)
    path = tmp_path_factory.mktemp("d") / "d.npz"
    np.savez(path, a=rng.normal(size=(n, 3)) + y[:, None], b=rng.normal(size=(n, 2)), y=y)
    spec = ExperimentSpec(name="t", cv=0, data=str(path), subsets="all", seeds=3, ratios=(1.0,),
                          protocol_overrides={"epochs": 2, "hidden": 4, "probe_epochs": 1})
    return run_experiment(spec, device="cpu", progress=False)


def test_attribution_on_constructed_numbers(small_run):
    r = small_run
    names = ["a", "b"]
    idx = {s: i for i, s in enumerate(r.subsets)}
    S = len(r.streams)
    # Constructed: v(∅)=50, v(a)=80, v(b)=55, v(ab)=90 in every seed; masked values of the joint model.
    for s, val in ((("a",), 80.0), (("b",), 55.0), (("a", "b"), 90.0)):
        r.metrics["test_acc"][:, idx[s]] = val
    r.extras["baseline_acc"][:] = 50.0
    r.extras["masked_acc"][:] = [50.0, 70.0, 52.0, 90.0]
    r.metrics["ensemble_acc"][:, idx[("a", "b")]] = [92.0, 93.0, 94.0][:S]
    r.metrics["drop_b_acc"][:, idx[("a", "b")]] = 70.0
    r.metrics["drop_a_acc"][:, idx[("a", "b")]] = 52.0
    r.metrics["probe_block_a_acc"][:, idx[("a", "b")]] = 70.0       # a's block inside a+b
    r.metrics["heldout_acc"][:, idx[("a",)]] = 75.0                  # the a-only encoder (its own probe)
    out = attribution(r)
    (d,) = [x for x in out["deficit"] if x["modality"] == "a"]
    assert d["M"] == "a+b" and d["deficit"] == pytest.approx(-5.0) and d["alone"] == 75.0
    sh = out["shapley"][0]
    # φ_a = ½[(80−50) + (90−55)] = 32.5, φ_b = ½[(55−50) + (90−80)] = 7.5
    assert sh["modalities"] == names and sh["phi"] == [32.5, 7.5] and sum(sh["phi"]) == 90 - 50
    assert sh["masked_phi"] == [29.0, 11.0]           # ½[(70−50)+(90−52)], ½[(52−50)+(90−70)]
    assert out["interactions"][0]["pairs"][0]["value"] == pytest.approx(90 - 80 - 55 + 50)
    gap = out["ensemble_gap"][0]
    assert gap["M"] == "a+b" and gap["gap"] == pytest.approx(3.0) and gap["ensemble_better"]
    miss = {(x["M"], x["missing"]): x for x in out["missing_modality"]}
    x = miss[("a+b", "b")]                              # N = a (80): 90 → 70 as b goes missing
    assert x["p"] == list(MISSING_P) and x["value"] == [90.0, 88.0, 84.0, 80.0, 70.0]
    assert x["N"] == "a" and x["N_value"] == 80.0 and x["p_star"] == pytest.approx(0.5)
    y = miss[("a+b", "a")]                              # N = b (55), dropped a gives 52 < 55
    assert y["p_star"] == pytest.approx((90 - 55) / (90 - 52), abs=1e-4)
    z = miss[("a", "a")]                                # N = ∅: the constant baseline
    assert z["N"] == "∅" and z["N_value"] == 50.0


def test_a_block_probed_alone_equals_a_latent_of_that_block_only():
    from mmgain.probes.latent import Latent, block_latent, logistic_probe
    rng = np.random.default_rng(1)
    n, H = 120, 3
    y = torch.from_numpy(rng.integers(0, 2, n))
    blk_a = torch.from_numpy(rng.normal(size=(n, 2, H)).astype(np.float32))
    blk_b = torch.from_numpy(rng.normal(size=(n, 1, H)).astype(np.float32)) + y[:, None, None]
    Z = Latent({"a": blk_a, "b": blk_b}, {"a": [0, 1], "b": [1]}, ["a", "b"], 2)   # model 1 = a+b
    blocks, origin = block_latent(Z)
    assert origin == [(0, "a"), (1, "a"), (1, "b")]
    both = logistic_probe(blocks, y, blocks, y, 2)
    alone = logistic_probe(Latent({"b": blk_b}, {"b": [0]}, ["b"], 1), y, Latent({"b": blk_b}, {"b": [0]}, ["b"], 1), y, 2)
    np.testing.assert_allclose(both["test"]["loss"][2], alone["test"]["loss"][0], atol=1e-4)
    only = block_latent(Z, {1})[1]
    assert only == [(1, "a"), (1, "b")]


def test_sampled_orderings_give_the_prefixes_and_an_unbiased_shapley(tmp_path):
    from mmgain.data.subsets import sampled_orderings, select_subsets
    names = ["a", "b", "c", "d"]
    subsets = select_subsets("sampled:3", names)
    orders = sampled_orderings(names, 3)
    want = {frozenset(o[:i]) for o in orders for i in range(1, 5)}
    assert {frozenset(s) for s in subsets} == want and len(subsets) < 15
    with pytest.raises(Exception, match="sampled:N needs a whole number"):
        select_subsets("sampled:x", names)
    # A run on the sampled lattice: with additive constructed values the estimator is exact.
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n)
    np.savez(tmp_path / "d.npz", **{k: rng.normal(size=(n, 2)) + (k == "a") * y[:, None] for k in names}, y=y)
    spec = ExperimentSpec(name="t", cv=0, data=str(tmp_path / "d.npz"), subsets="sampled:3", seeds=2, ratios=(1.0,),
                          protocol_overrides={"epochs": 1, "hidden": 4, "probe_epochs": 1})
    r = run_experiment(spec, device="cpu", progress=False)
    w = {"a": 20.0, "b": 5.0, "c": 1.0, "d": 0.0}
    for i, s in enumerate(r.subsets):
        r.metrics["test_acc"][:, i] = 50.0 + sum(w[k] for k in s)
    r.extras["baseline_acc"][:] = 50.0
    sh = attribution(r)["shapley"][0]
    assert sh["phi"] == [20.0, 5.0, 1.0, 0.0] and sh["phi_se"] == [0.0] * 4 and "permutation" in sh["estimator"]
    assert "shapley_note" not in attribution(r)


def test_without_subsets_a_lattice_above_eight_modalities_is_sampled(tmp_path, capsys):
    """No --subsets: every subset up to 8 modalities, the prefixes of 32 orderings above (the
    same on every device); the Shapley values then come from the permutation estimator."""
    from mmgain.data.subsets import DEFAULT_ORDERINGS, select_subsets
    eight, nine = [f"m{i}" for i in range(8)], [f"m{i}" for i in range(9)]
    assert len(select_subsets(None, eight)) == 255
    sampled = select_subsets(None, nine)
    assert sampled == select_subsets(f"sampled:{DEFAULT_ORDERINGS}", nine) and tuple(nine) in sampled
    assert len(sampled) <= DEFAULT_ORDERINGS * 8 + 1 < 511
    assert select_subsets("all", nine) != sampled and len(select_subsets("all", nine)) == 511
    rng = np.random.default_rng(1)
    n = 120
    y = rng.integers(0, 2, n)
    np.savez(tmp_path / "d.npz", **{k: rng.normal(size=(n, 1)) + (k == "m0") * y[:, None] for k in nine}, y=y)
    spec = ExperimentSpec(name="t", cv=0, data=str(tmp_path / "d.npz"), seeds=2, ratios=(1.0,),
                          protocol_overrides={"epochs": 1, "hidden": 2, "probe_epochs": 1})
    r = run_experiment(spec, device="cpu", progress=False)
    assert r.subsets == sampled
    assert f"9 modalities: training --subsets sampled:{DEFAULT_ORDERINGS}, the prefixes of random orderings" in capsys.readouterr().err
    sh = attribution(r)["shapley"][0]
    assert "permutation" in sh["estimator"] and len(sh["phi"]) == 9


def test_a_sampled_lattice_run_writes_its_report(tmp_path, capsys):
    """The sampled Shapley values carry a standard error per modality: the run folder's
    summary.json must read back into report.html (it was refused as 'not a number')."""
    import json

    from mmgain.cli import main
    rng = np.random.default_rng(2)
    n, names = 160, ["a", "b", "c", "d"]
    y = rng.integers(0, 2, n)
    np.savez(tmp_path / "d.npz", **{k: rng.normal(size=(n, 2)) + (k == "a") * y[:, None] for k in names}, y=y)
    out = tmp_path / "r"
    assert main(["run", "--data", str(tmp_path / "d.npz"), "--cv", "0", "--subsets", "sampled:3", "--seeds", "2",
                 "--ratios", "1", "--epochs", "2", "--hidden", "4", "--quiet", "--out", str(out)]) == 0
    assert "could not be written" not in capsys.readouterr().err
    phi_se = json.loads((out / "summary.json").read_text())["shapley"][0]["phi_se"]
    assert isinstance(phi_se, list) and len(phi_se) == 4
    assert "report.html" in json.loads((out / "run.json").read_text())["files"] or (out / "report.html").is_file()
    html = (out / "report.html").read_text()
    assert "Shapley" in html and " ± " in html
    summary = json.loads((out / "summary.json").read_text())
    summary["shapley"][0]["phi_se"] = "0.1"                       # a hand-edited folder: named, not a traceback
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(out)]) == 2
    assert "summary.shapley[0].phi_se: must be a list of numbers" in capsys.readouterr().err
