"""⊥-equivalence: a subset model inside the batched program is exactly the model
built without the other modalities."""
import numpy as np
import pytest
import torch

from conftest import toy_modalities
from mmgain.data import enumerate_subsets
from mmgain.models import ACTIVATIONS, BatchedLateFusion, LateFusion

DIMS = {"m1": 3, "m2": 4, "m3": 2}
SUBSETS = enumerate_subsets(list(DIMS))


def _batched(activation, seeds=(0, 5)):
    model = BatchedLateFusion(DIMS, SUBSETS, seeds, n_outputs=3, hidden=8, activation=activation)
    with torch.no_grad():  # move away from the initial weights so the test is not about init alone
        for p in model.params.values():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model


def _inputs(n=7):
    xs = toy_modalities(n=n, dims=tuple(DIMS.values()), seed=3)
    return {k: torch.from_numpy(v) for k, v in xs.items()}


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
def test_subset_model_equals_model_without_other_modalities(activation):
    model = _batched(activation)
    xs = _inputs()
    out = model.forward({k: torch.stack([v, v]) for k, v in xs.items()})        # (S, B, A, O)
    lat = model.latent({k: torch.stack([v, v]) for k, v in xs.items()})
    for s in range(2):
        for a, sub in enumerate(SUBSETS):
            single = model.to_module(s, a)
            assert list(single.encoders) == list(sub)                          # built without the others
            only = {k: xs[k] for k in sub}
            torch.testing.assert_close(out[s, :, a], single(only), rtol=1e-5, atol=1e-6)
            blocks = [lat[s, :, a, i * 8:(i + 1) * 8] for i, k in enumerate(DIMS) if k in sub]
            torch.testing.assert_close(torch.cat(blocks, -1), single.encode(only), rtol=1e-5, atol=1e-6)
            for i, k in enumerate(DIMS):
                if k not in sub:
                    assert torch.all(lat[s, :, a, i * 8:(i + 1) * 8] == 0)


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
def test_outputs_ignore_modalities_outside_the_subset(activation):
    model = _batched(activation)
    xs = {k: torch.stack([v, v]) for k, v in _inputs().items()}
    noisy = dict(xs, m3=xs["m3"] + 100.0)
    out, out2 = model.forward(xs), model.forward(noisy)
    for a, sub in enumerate(SUBSETS):
        if "m3" not in sub:
            assert torch.equal(out[:, :, a], out2[:, :, a])
        else:
            assert not torch.allclose(out[:, :, a], out2[:, :, a])


def test_initial_weights_are_shared_within_a_seed_and_match_the_single_model():
    model = BatchedLateFusion(DIMS, SUBSETS, [0, 1], n_outputs=2, hidden=4)
    W = model.params["W.m1"]                                                   # (S, d, A_k, H)
    assert torch.equal(W[0, :, 0], W[0, :, -1])                                # same encoder init in every subset
    assert not torch.equal(W[0], W[1])                                         # another seed, other weights
    for a, sub in enumerate(SUBSETS):
        init = LateFusion.initialized(DIMS, sub, seed=1, n_outputs=2, hidden=4)
        for (k1, p1), (k2, p2) in zip(model.to_module(1, a).state_dict().items(), init.state_dict().items()):
            assert k1 == k2
            torch.testing.assert_close(p1, p2)


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown activation 'tanhh'"):
        LateFusion({"a": 2}, 1, activation="tanhh")
