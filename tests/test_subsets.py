import numpy as np
import pytest

from mmgain.data import DataError, enumerate_subsets, parse_subset, proper_pairs, select_subsets, subset_name

NAMES = ["t", "a", "v"]


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_enumeration_counts_and_order(k):
    names = [f"m{i}" for i in range(k)]
    subs = enumerate_subsets(names)
    assert len(subs) == 2 ** k - 1
    assert len(set(subs)) == len(subs)
    assert [len(s) for s in subs] == sorted(len(s) for s in subs)
    for s in subs:  # canonical order: the dataset's modality order
        assert list(s) == [n for n in names if n in s]


def test_names_and_parsing_are_canonical():
    assert subset_name(("t", "v")) == "t+v"
    assert parse_subset("v+t", NAMES) == ("t", "v")
    assert select_subsets("t, v+a ,t", NAMES) == [("t",), ("a", "v")]
    assert select_subsets("all", NAMES) == enumerate_subsets(NAMES)
    assert select_subsets(None, NAMES) == enumerate_subsets(NAMES)


@pytest.mark.parametrize("bad", ["x", "t+x", "", "t+t"])
def test_unknown_or_bad_subset_names_are_refused(bad):
    with pytest.raises(DataError) as e:
        parse_subset(bad, NAMES)
    assert "t, a, v" in str(e.value) or "twice" in str(e.value)


def test_proper_pairs():
    pairs = proper_pairs(enumerate_subsets(NAMES))
    assert (("t", "a"), ("t",)) in pairs and (("t", "a", "v"), ("a", "v")) in pairs
    assert all(len(m) == len(n) + 1 and set(n) < set(m) for m, n in pairs)
    assert len(pairs) == 3 * 2 + 3  # each 2-subset has 2 parents-of, the 3-subset has 3


def test_subset_policies_grow_polynomially_and_hold_their_pairs():
    from mmgain.data.subsets import POLICIES, proper_pairs, select_subsets
    names = [f"m{i}" for i in range(1, 16)]
    spf = select_subsets("singles+pairs+full", names)
    assert len(spf) == 15 + 105 + 1 and spf[0] == ("m1",) and spf[-1] == tuple(names)
    loo = select_subsets("leave-one-out", names)
    assert len(loo) == 16 and loo[-1] == tuple(names)
    # every modality has its leave-one-out pair (full, full − k)
    assert sorted(next(iter(set(m) - set(n))) for m, n in proper_pairs(loo)) == sorted(names)
    assert select_subsets("leave-one-out", ["a"]) == [("a",)]
    for policy in POLICIES:                                  # canonical order, no repeats
        got = select_subsets(policy, names[:4])
        assert len(set(got)) == len(got) and got == sorted(got, key=lambda s: (len(s), [names.index(k) for k in s]))
    with pytest.raises(Exception, match="leave-one-out"):    # 'all' refused above the limit names the policies
        select_subsets("all", names)


def _greedy_by_brute_force(names, v, higher=True):
    """Greedy forward selection written out: at each stage, the best of every one-modality extension."""
    chosen, path = frozenset(), []
    for _ in names:
        exts = [chosen | {k} for k in names if k not in chosen]
        best = (max if higher else min)(exts, key=lambda s: v[s])
        path.append(best)
        chosen = best
    return path


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("higher", [True, False])
def test_forward_path_is_the_greedy_path(seed, higher):
    from itertools import combinations

    from mmgain.data.subsets import forward_path
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(5)]
    v = {frozenset(c): float(rng.normal()) for r in range(1, 6) for c in combinations(names, r)}   # no ties
    calls = []

    def score(cands):
        calls.append(cands)
        return [v[frozenset(c)] for c in cands]

    subsets, path = forward_path(names, score, higher)
    assert [frozenset(s) for s, _ in path] == _greedy_by_brute_force(names, v, higher)
    assert [x for _, x in path] == [v[frozenset(s)] for s, _ in path]
    assert len(subsets) == 5 + 4 + 3 + 2 + 1 == len(set(subsets)) and [len(c) for c in calls] == [5, 4, 3, 2, 1]
    assert all(list(s) == [k for k in names if k in s] for s in subsets)          # canonical order
    # every stage's chosen subset is a pair partner of the previous one: the path's gains are in Table 3
    assert all((path[i + 1][0], path[i][0]) in proper_pairs(subsets) for i in range(4))


def test_forward_path_ties_and_failures():
    from mmgain.data.subsets import forward_path
    names = ["a", "b", "c"]
    _, path = forward_path(names, lambda cands: [1.0] * len(cands))
    assert [s for s, _ in path] == [("a",), ("a", "b"), ("a", "b", "c")]        # ties: the first modality
    _, path = forward_path(names, lambda cands: [float("nan") if "a" in c else 0.0 for c in cands])
    assert path[0][0] == ("b",)                                                 # a diverged candidate is worst
    with pytest.raises(DataError, match="forward chooses its subsets by training"):
        select_subsets("forward", names)


def test_forward_selection_scores_on_held_out_training_rows():
    from mmgain.run.selection import split_streams
    from mmgain.training import Streams
    streams = Streams(np.array([0, 0]), np.array([3, 4]), [np.arange(100), np.arange(50, 60)])
    fit, held = split_streams(streams)
    for f, h, rows in zip(fit.train_rows, held.train_rows, streams.train_rows):
        assert not set(f) & set(h) and sorted([*f, *h]) == list(rows)
        assert len(h) == round(0.2 * len(rows))
    fit2, _ = split_streams(streams)
    assert all(np.array_equal(a, b) for a, b in zip(fit.train_rows, fit2.train_rows))   # keyed by seed


def test_run_with_forward_selection_finds_the_informative_modality_first(tmp_path, capsys):
    import json

    from mmgain.cli import main
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    np.savez(tmp_path / "d.npz", noise=rng.normal(size=(400, 6)), signal=rng.normal(size=(400, 4)) + 2 * y[:, None],
             weak=rng.normal(size=(400, 4)) + 0.3 * y[:, None], y=y)
    out = tmp_path / "r"
    assert main(["run", "--cv", "0", "--data", str(tmp_path / "d.npz"), "--subsets", "forward", "--seeds", "2", "--epochs", "20",
                 "--ratios", "0.5", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "forward selection, stage 1/3: 3 candidates, best signal" in captured.err
    assert "Forward selection (--subsets forward)" in captured.out
    summary = json.loads((out / "summary.json").read_text())
    path = summary["forward_selection"]
    assert [p["subset"] for p in path][0] == "signal" and len(path) == 3
    assert path[-1]["subset"] == "noise+signal+weak"
    assert len({c["subset"] for c in summary["cells"]}) == 3 + 2 + 1
    assert json.loads((out / "run.json").read_text())["forward_selection"] == path
    before = (out / "results.csv").read_bytes()
    assert main(["collect", str(out)]) == 0                     # from the store: no second selection
    assert "forward selection" not in capsys.readouterr().err
    assert (out / "results.csv").read_bytes() == before
