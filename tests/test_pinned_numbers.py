"""Numbers pinned against independent values (hand-computed, or a hand-built case), each written so
that a one-line slip in the code it covers fails it: a constant of Theorem 1, the ReLU path-norm
factor, the control permutations' keys, m*'s interpolation and the stream order of assembly."""
import math

import numpy as np
import pytest

from mmgain.analysis.curves import _crossing
from mmgain.catalog import EXPERIMENTS
from mmgain.probes import latent as probes
from mmgain.run import assemble, plan_run
from mmgain.run.backends import LocalBackend
from mmgain.theory import bounds
from mmgain.theory.rademacher import path_norm_upper

FAST = {"epochs": 3, "batch_size": 32}


def test_theorem1_bound_by_hand():
    """r_M − r_N ≤ γ + 8·LR_M + 4C/√m + 2C·√(2 ln(2/δ)/m), with C = 1 (Huang et al., Theorem 1)."""
    t = bounds.theorem1(0.1, 0.05, 400, delta=0.05)
    assert t["complexity"] == pytest.approx(0.4)
    expected = 0.1 + 8 * 0.05 + 4 / 20 + 2 * math.sqrt(2 * math.log(2 / 0.05) / 400)
    assert float(t["bound"]) == pytest.approx(expected, rel=1e-12)


def test_theorem2_bound_by_hand():
    t = bounds.theorem2(0.05, 0.02, 0.01, 400, delta=0.05)
    expected = 4 * 0.05 + 4 * 0.02 + 6 * math.sqrt(2 * math.log(2 / 0.05) / 400) + 0.01
    assert float(t["bound"]) == pytest.approx(expected, rel=1e-12)


def test_path_norm_bound_by_hand():
    """P·√(Σ‖x̃‖²)/m, times 2 for ReLU (contraction with |·|), 1 for linear units."""
    assert float(path_norm_upper(3.0, 16.0, 8, relu=True)) == pytest.approx(3.0)
    assert float(path_norm_upper(3.0, 16.0, 8, relu=False)) == pytest.approx(1.5)


def test_m_star_is_interpolated_inside_the_crossing_interval():
    """Δ = −1, −0.5, +1.5 at m = 10, 100, 1000: linear in log m between 100 and 1000, Δ = 0 a
    quarter of the way, at m* = 100·10^0.25."""
    m_star, code = _crossing(np.array([[-1.0, -0.5, 1.5]]), np.array([10.0, 100.0, 1000.0]))
    assert code[0] == 1 and m_star[0] == pytest.approx(100 * 10 ** 0.25, rel=1e-12)
    m_star, _ = _crossing(np.array([[-3.0, 1.0, 2.0]]), np.array([10.0, 100.0, 1000.0]))
    assert m_star[0] == pytest.approx(10 * 10 ** 0.75, rel=1e-12)


def _npz(path, n=160):
    r = np.random.default_rng(0)
    y = r.integers(0, 2, n)
    np.savez(path, a=r.normal(size=(n, 3)) + y[:, None], b=r.normal(size=(n, 2)), y=y)
    return str(path)


def test_control_permutations_are_keyed_by_seed_and_modality(tmp_path, monkeypatch):
    """Each width-matched control permutes the added modality's rows with its own permutation per
    (seed, modality): one shared permutation would make the controls of different seeds alike and
    the intervals too narrow."""
    seen = []
    real = probes.with_matched_controls

    def spy(Z, triples, perms):
        seen.append(([k for _, _, k in triples], [p.cpu().numpy().copy() for p in perms]))
        return real(Z, triples, perms)

    monkeypatch.setattr(probes, "with_matched_controls", spy)
    spec = EXPERIMENTS.get("run").with_(data=_npz(tmp_path / "d.npz"), seeds=2, ratios=(1.0,), cv=0,
                                        protocol_overrides=FAST)
    plan = plan_run(spec, device="cpu", progress=False)
    parts = dict(LocalBackend().run(plan, list(range(len(plan.chunks))), progress=False))
    assert parts
    (ks, perms), = seen                       # one chunk: 2 streams × 2 pairs
    keys = [(int(plan.table.seed[s]), k) for s in range(2) for k in ks[:2]]
    assert sorted(keys) == sorted({(s, k) for s in (0, 1) for k in ("a", "b")})
    distinct = {p.tobytes() for p in perms}
    assert len(distinct) == 4 and all(sorted(p) == list(range(len(p))) for p in perms)


def test_assembly_restores_stream_order(tmp_path):
    """Chunks trained in any order come back in the plan's stream order: each stream's metrics and
    rows are tagged with its own index here, by hand, and must land in that row."""
    spec = EXPERIMENTS.get("run").with_(data=_npz(tmp_path / "d.npz"), seeds=2, ratios=(0.5, 1.0), cv=0,
                                        protocol_overrides=FAST)
    plan = plan_run(spec, device="cpu", progress=False, chunks=[[3, 1], [2], [0]])
    parts = dict(LocalBackend().run(plan, [2, 0, 1], progress=False))
    A = len(plan.subsets)
    for ci, part in parts.items():
        ids = np.asarray(plan.chunks[ci], dtype=np.float64)
        part["metrics"]["stream_id"] = np.repeat(ids[:, None], A, 1)
        part["test"]["loss"] = part["test"]["loss"].copy()
        part["test"]["loss"][:, :, 0] = ids[:, None]
    res = assemble(plan, parts)
    S = len(plan.table)
    assert res.metrics["stream_id"][:, 0].tolist() == list(range(S))
    assert res.rows["test"]["loss"][:, 0, 0].tolist() == list(range(S))
    assert res.streams.ratio.tolist() == plan.table.ratio.tolist()
    assert res.streams.seed.tolist() == plan.table.seed.tolist()
