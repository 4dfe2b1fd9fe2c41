"""Probes of a large lattice are fitted in model groups: the groups give each model the fit it
gets in one batch, and the join puts every result back under its model."""
import torch

from mmgain.probes.latent import Latent, in_model_groups, least_squares_probe, logistic_probe


def _lattice(n, seed=0):
    """Models a, b, a+b, c, a+c (members per modality block), with class signal in a and c."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    blk = lambda m, shift: torch.randn(n, m, 4, generator=g) + shift * y[:, None, None].float()   # noqa: E731
    Z = Latent({"a": blk(3, 1.0), "b": blk(2, 0.0), "c": blk(2, 0.5)},
               {"a": [0, 2, 4], "b": [1, 2], "c": [3, 4]}, ["a", "b", "c"], 5)
    return Z, y


def test_latent_models_keeps_each_chosen_models_blocks():
    Z, _ = _lattice(10)
    sub = Z.models([2, 3])                       # a+b and c
    assert sub.n_models == 2 and sub.members == {"a": [0], "b": [0], "c": [1]}
    assert torch.equal(sub.blocks["a"][:, 0], Z.blocks["a"][:, 1]) and torch.equal(sub.blocks["c"][:, 0],
                                                                                    Z.blocks["c"][:, 0])
    assert Z.widest() == 8 and Z.models([3]).widest() == 4


def test_logistic_probe_in_groups_of_one_matches_one_batch():
    Z, y = _lattice(60)
    Zt, yt = _lattice(30, seed=1)
    probe = lambda Z_, y_, Zt_, yt_: logistic_probe(Z_, y_, Zt_, yt_, 3)   # noqa: E731
    whole = probe(Z, y, Zt, yt)
    pieces = in_model_groups(probe, 3, dense=False, max_bytes=1)(Z, y, Zt, yt)     # every model alone
    for part in ("train", "test"):
        for name, v in whole[part].items():
            assert pieces[part][name].shape == v.shape
            torch.testing.assert_close(pieces[part][name], v, rtol=1e-3, atol=1e-4)
    assert torch.equal(pieces["converged"], whole["converged"])
    # a model's own results, not a neighbour's: model 1 (b, no signal) is worse than model 0 (a)
    assert pieces["test"]["loss"][1].mean() > pieces["test"]["loss"][0].mean()


def test_least_squares_in_groups_matches_one_batch_with_per_model_targets():
    Z, y = _lattice(60)
    Zt, yt = _lattice(30, seed=1)
    Y, Yt = torch.stack([y.double() * (i + 1) for i in range(5)], 1), torch.stack([yt.double() * (i + 1)
                                                                                   for i in range(5)], 1)
    whole = least_squares_probe(Z, Y, Zt, Yt)
    pieces = in_model_groups(least_squares_probe, 1, dense=True, max_bytes=1)(Z, Y, Zt, Yt)
    torch.testing.assert_close(pieces["test"]["loss"], whole["test"]["loss"], rtol=1e-6, atol=1e-8)
