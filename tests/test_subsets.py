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
