"""⊥-equivalence: a subset model inside the batched program is exactly the model
built without the other modalities, for every registered encoder, fusion and activation."""
import functools
import itertools

import numpy as np
import pytest
import torch
from torch import nn

from conftest import toy_modalities
from mmgain.data import enumerate_subsets
from mmgain.errors import SpecError
from mmgain.models import ACTIVATIONS, ENCODERS, FUSIONS, BatchedLateFusion, LateFusion
from mmgain.models.late_fusion import _encoder_runner, vmapped_encoder

DIMS = {"m1": 3, "m2": 4, "m3": 2}
SUBSETS = enumerate_subsets(list(DIMS))
ARCHS = list(itertools.product(ENCODERS.names(), FUSIONS.names(), ACTIVATIONS.names()))


def _batched(activation="relu", encoder="linear", fusion="concat", seeds=(0, 5), hidden=8):
    model = BatchedLateFusion(DIMS, SUBSETS, seeds, n_outputs=3, hidden=hidden, activation=activation,
                              encoder=encoder, fusion=fusion)
    with torch.no_grad():  # move away from the initial weights so the test is not about init alone
        for p in model.params.values():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model


def _inputs(n=7):
    xs = toy_modalities(n=n, dims=tuple(DIMS.values()), seed=3)
    return {k: torch.from_numpy(v) for k, v in xs.items()}


@pytest.mark.parametrize("encoder,fusion,activation", ARCHS)
def test_subset_model_equals_model_without_other_modalities(encoder, fusion, activation):
    model = _batched(activation, encoder, fusion)
    xs = _inputs()
    both = {k: torch.stack([v, v]) for k, v in xs.items()}
    out, lat, enc = model.forward(both), model.latent(both), model.encoder_blocks(both)    # (S, B, A, ·)
    for s in range(2):
        for a, sub in enumerate(SUBSETS):
            single = model.to_module(s, a)
            assert list(single.encoders) == list(sub)                          # built without the others
            only = {k: xs[k] for k in sub}
            torch.testing.assert_close(out[s, :, a], single(only), rtol=1e-5, atol=1e-6)
            for k in sub:
                torch.testing.assert_close(enc[k][s, :, model.members[k].index(a)], single.encoders[k](xs[k]),
                                           rtol=1e-5, atol=1e-6)
            if fusion == "concat":
                blocks = [lat[s, :, a, i * 8:(i + 1) * 8] for i, k in enumerate(DIMS) if k in sub]
                torch.testing.assert_close(torch.cat(blocks, -1), single.encode(only), rtol=1e-5, atol=1e-6)
                for i, k in enumerate(DIMS):
                    if k not in sub:
                        assert torch.all(lat[s, :, a, i * 8:(i + 1) * 8] == 0)
            else:
                torch.testing.assert_close(lat[s, :, a], single.encode(only), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoder,fusion,activation", ARCHS)
def test_outputs_ignore_modalities_outside_the_subset(encoder, fusion, activation):
    model = _batched(activation, encoder, fusion)
    xs = {k: torch.stack([v, v]) for k, v in _inputs().items()}
    noisy = dict(xs, m3=xs["m3"] + 100.0)
    out, out2 = model.forward(xs), model.forward(noisy)
    for a, sub in enumerate(SUBSETS):
        if "m3" not in sub:
            assert torch.equal(out[:, :, a], out2[:, :, a])
        else:
            assert not torch.allclose(out[:, :, a], out2[:, :, a])


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_fast_path_equals_the_vmapped_functional_call(encoder):
    """The built-in encoders run as one matmul per layer; the generic path (vmap of
    functional_call over streams and subsets) must give the same outputs and gradients."""
    model = _batched(encoder=encoder)
    x = torch.stack([_inputs()["m2"], _inputs()["m2"] * 2])
    tmpl = model.templates["m2"]
    fast, generic = _encoder_runner(tmpl), vmapped_encoder(tmpl)
    assert isinstance(fast, functools.partial)                       # the fast path was picked
    p = {k: v.detach().clone().requires_grad_() for k, v in model.encoder_params("m2").items()}
    q = {k: v.detach().clone().requires_grad_() for k, v in model.encoder_params("m2").items()}
    a, b = fast(p, x), generic(q, x).permute(0, 2, 3, 1)          # the runners' layout: rows last
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    (a ** 2).sum().backward()
    (b ** 2).sum().backward()
    for k in p:
        torch.testing.assert_close(p[k].grad, q[k].grad, rtol=1e-4, atol=1e-5)


class _Normed(nn.Module):
    """An encoder mmgain does not know: Linear, LayerNorm, tanh (runs through vmap)."""

    def __init__(self, d, width, activation):
        super().__init__()
        self.lin, self.norm = nn.Linear(d, width), nn.LayerNorm(width)

    def forward(self, x):
        return torch.tanh(self.norm(self.lin(x)))


@pytest.fixture
def normed_encoder():
    ENCODERS.register("test-normed", _Normed)
    yield "test-normed"
    ENCODERS._items.pop("test-normed")


def test_any_module_is_an_encoder(normed_encoder):
    model = _batched(encoder=normed_encoder)
    assert not isinstance(model._runners["m1"], functools.partial)             # the generic vmap path
    xs = _inputs()
    out = model.forward({k: torch.stack([v, v]) for k, v in xs.items()})
    for s, a in itertools.product(range(2), range(len(SUBSETS))):
        torch.testing.assert_close(out[s, :, a], model.to_module(s, a)({k: xs[k] for k in SUBSETS[a]}),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoder,fusion", list(itertools.product(ENCODERS.names(), FUSIONS.names())))
def test_initial_weights_are_shared_within_a_seed_and_match_the_single_model(encoder, fusion):
    model = BatchedLateFusion(DIMS, SUBSETS, [0, 1], n_outputs=2, hidden=4, encoder=encoder, fusion=fusion)
    W = model.encoder_params("m1")["0.weight"]                                # (S, A_k, H, d)
    assert torch.equal(W[0, 0], W[0, -1])                                      # same encoder init in every subset
    assert not torch.equal(W[0], W[1])                                         # another seed, other weights
    for a, sub in enumerate(SUBSETS):
        init = LateFusion.initialized(DIMS, sub, seed=1, n_outputs=2, hidden=4, encoder=encoder, fusion=fusion)
        got, want = model.to_module(1, a).state_dict(), init.state_dict()
        assert list(got) == list(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k])


def test_linear_encoder_initial_weights_follow_the_documented_rule():
    """U(±1/√d) from a generator keyed by (seed, modality, role) — the rule the README's numbers
    were produced with (a change here changes every result)."""
    from mmgain.models.components import _uniform
    m = LateFusion.initialized(DIMS, ("m1", "m2"), seed=3, n_outputs=2, hidden=4)
    w = _uniform(3, 1, 0, (4, 4)) / 2.0                                          # m2: d = 4, modality index 1
    torch.testing.assert_close(m.encoders["m2"][0].weight, torch.tensor(w.T, dtype=torch.float32))
    V = _uniform(3, 0, 2, (4, 2)) / np.sqrt(8)
    torch.testing.assert_close(m.head.weight[:, :4], torch.tensor(V.T, dtype=torch.float32))


def test_per_modality_widths():
    hidden = {"m1": 2, "m2": 5, "m3": 3}
    model = _batched(hidden=hidden, seeds=(0,))
    xs = _inputs()
    lat = model.latent({k: v[None] for k, v in xs.items()})
    assert lat.shape[-1] == 10
    full = model.to_module(0, len(SUBSETS) - 1)
    assert [e[0].out_features for e in full.encoders.values()] == [2, 5, 3]
    torch.testing.assert_close(lat[0, :, -1], full.encode(xs), rtol=1e-5, atol=1e-6)
    with pytest.raises(SpecError, match="same width"):
        BatchedLateFusion(DIMS, SUBSETS, [0], 2, hidden=hidden, fusion="sum")
    with pytest.raises(SpecError, match="no width for m3"):
        BatchedLateFusion(DIMS, SUBSETS, [0], 2, hidden={"m1": 2, "m2": 5})


def test_unknown_parts_are_clear_errors():
    with pytest.raises(KeyError, match="unknown activation 'tanhh'"):
        LateFusion.build({"a": 2}, 1, activation="tanhh")
    with pytest.raises(KeyError, match="unknown encoder 'cnn'; choose from: linear, mlp2"):
        LateFusion.build({"a": 2}, 1, encoder="cnn")
    with pytest.raises(KeyError, match="unknown fusion 'attention'"):
        LateFusion.build({"a": 2}, 1, fusion="attention")


def test_an_encoder_with_buffers_is_refused_clearly():
    ENCODERS.register("test-bn", lambda d, w, act: nn.Sequential(nn.Linear(d, w), nn.BatchNorm1d(w)))
    try:
        with pytest.raises(SpecError, match="has buffers"):
            BatchedLateFusion(DIMS, SUBSETS, [0], 2, hidden=4, encoder="test-bn")
    finally:
        ENCODERS._items.pop("test-bn")


@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize("rows", [33, 600])
def test_first_layer_with_fused_bias_and_relu_equals_the_plain_layer(streams, rows):
    """The first layer's bias inside the matmul and its ReLU as a oneDNN post-op (``models.fused``,
    on minibatches of 600 rows here; 33 take the plain path): the same outputs and gradients as
    W·x + b and a separate ReLU."""
    from mmgain.models import fused

    gen = torch.Generator().manual_seed(3)
    W = torch.randn(streams, 5, 8, 7, generator=gen, requires_grad=True)      # (S, A_k, H, d)
    b = torch.randn(streams, 5, 8, generator=gen, requires_grad=True)
    x = torch.randn(streams, rows, 7, generator=gen)                           # (S, B, d)
    assert fused._fusable(W, x) == (rows == 600)
    got = fused.first_layer_rows_last(W, b, x, relu=True)
    want = torch.relu(torch.baddbmm(b.reshape(streams, 40, 1), W.reshape(streams, 40, 7), x.transpose(1, 2)))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    g = torch.randn(got.shape, generator=gen)
    got_grads = torch.autograd.grad((got * g).sum(), (W, b))
    want_grads = torch.autograd.grad((want * g).sum(), (W, b))
    for a, e in zip(got_grads, want_grads):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
    assert bool((got == 0).any()) and bool((got > 0).any())     # the ReLU cut somewhere, not everywhere
    plain = fused.first_layer_rows_last(W, b, x, relu=False)     # no ReLU to fuse: the plain layer
    assert torch.equal(plain, torch.baddbmm(b.reshape(streams, 40, 1), W.reshape(streams, 40, 7), x.transpose(1, 2)))


def test_the_onednn_kernel_is_used_where_it_agrees_and_refused_where_it_does_not(monkeypatch):
    """torch's CPU build has the fused kernel (so training uses it); a kernel that is missing or
    gives other numbers is not used — the plain matmul and ReLU run instead."""
    from types import SimpleNamespace

    from mmgain.models import fused

    assert fused.onednn_relu_available()               # the pinned CPU build of torch has it
    check = fused.onednn_relu_available.__wrapped__
    wrong = SimpleNamespace(mkldnn=SimpleNamespace(_linear_pointwise=lambda a, x, *_: (a @ x.T).abs()))
    monkeypatch.setattr(fused.torch, "ops", wrong)
    assert not check()
    monkeypatch.setattr(fused.torch, "ops", SimpleNamespace())
    assert not check()
