"""Your own encoders: pretrained weights kept, frozen encoders fixed, clear refusals, plug-ins."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import mmgain
from mmgain.errors import SpecError
from mmgain.models import ENCODERS, BatchedLateFusion, LateFusion, OwnEncoders
from mmgain.models import components
from mmgain.tasks import get_task
from mmgain.training import BatchedTrainer, DeviceData, Streams, TrainingProtocol

DIMS = {"a": 5, "b": 3}


def _pretrained(seed=7):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh())


def _register(part) -> str:
    name = f"test-own-{id(part)}"
    ENCODERS.register(name, part)
    return name


def test_kept_weights_are_every_seeds_start():
    module = _pretrained()
    name = _register(OwnEncoders({"a": module}, init="keep"))
    model = BatchedLateFusion(DIMS, [("a",), ("a", "b")], [0, 1, 2], 3, hidden={"a": 6, "b": 4}, encoder=name)
    W = model.params["enc.a.0.weight"]                               # (S, A_a, 6, 5)
    assert torch.equal(W, module[0].weight.detach().expand_as(W))    # every seed and subset: the module's weights
    ref = LateFusion.initialized(DIMS, ("a", "b"), 1, 3, hidden={"a": 6, "b": 4}, encoder=name)
    assert torch.equal(ref.encoders["a"][0].weight, module[0].weight)
    reset = _register(OwnEncoders({"a": module}, init="reset"))
    redrawn = BatchedLateFusion(DIMS, [("a",)], [0], 3, hidden={"a": 6, "b": 4}, encoder=reset)
    assert not torch.equal(redrawn.params["enc.a.0.weight"][0, 0], module[0].weight)


def _toy(n=120, seed=0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, n)
    return {"a": r.normal(size=(n, 5)).astype(np.float32) + y[:, None], "b": r.normal(size=(n, 3)).astype(np.float32)}, y


def test_a_frozen_encoder_does_not_change_and_the_rest_trains():
    module = _pretrained()
    name = _register(OwnEncoders({"a": module}, init="keep", frozen=["a"]))
    xs, y = _toy()
    data = DeviceData.stack([(xs, y)], "cpu")
    proto = TrainingProtocol(hidden={"a": 6, "b": 4}, epochs=3, batch_size=32, encoder=name, probe_epochs=None)
    tr = BatchedTrainer(proto, DIMS, [("a",), ("a", "b")], 3, get_task("classification"), "cpu")
    start = {k: v.detach().clone() for k, v in BatchedLateFusion(DIMS, [("a",), ("a", "b")], [0], 3,
                                                                  hidden={"a": 6, "b": 4}, encoder=name).params.items()}
    tr.fit(data, Streams(np.array([0]), np.array([0]), [np.arange(120)]))
    after = tr.model_.params
    assert torch.equal(after["enc.a.0.weight"].detach(), start["enc.a.0.weight"])
    assert torch.equal(after["enc.a.0.bias"].detach(), start["enc.a.0.bias"])
    assert not torch.equal(after["enc.b.0.weight"].detach(), start["enc.b.0.weight"])     # b's encoder trains
    assert not torch.equal(after["V.a"].detach(), start["V.a"])                             # and so does the head


def test_analyze_with_a_pretrained_frozen_encoder():
    xs, y = _toy(300)
    module = _pretrained()
    before = module[0].weight.detach().clone()
    s = mmgain.analyze(xs, y=y, encoders={"a": module}, init="keep", frozen=True, epochs=3, seeds=1,
                       ratios=[1.0], cv=0, progress=False)
    assert len(s.verdicts) > 0 and s.meta["spec"]["resolved_protocol"]["hidden"]["a"] == 6
    assert torch.equal(module[0].weight, before)                      # the user's module itself is untouched


def test_unsuitable_encoders_are_refused_by_name():
    xs, y = _toy(60)
    kw = dict(epochs=2, seeds=1, ratios=[1.0], cv=0, progress=False)
    with pytest.raises(SpecError, match="'a' has buffers"):
        mmgain.analyze(xs, y=y, encoders={"a": nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))}, **kw)
    with pytest.raises(SpecError, match="does not take rows of 5 features"):
        mmgain.analyze(xs, y=y, encoders={"a": nn.Linear(7, 4)}, **kw)
    with pytest.raises(SpecError, match="do not have: c"):
        mmgain.analyze(xs, y=y, encoders={"c": nn.Linear(5, 4)}, **kw)
    with pytest.raises(SpecError, match="init="):
        mmgain.analyze(xs, y=y, init="keep", **kw)
    with pytest.raises(SpecError, match="frozen names modalities"):
        OwnEncoders({"a": nn.Linear(5, 4)}, frozen=["b"])
    with pytest.raises(SpecError, match="in another Python process"):      # a run.json read elsewhere
        TrainingProtocol(encoder="own-999")


def test_installed_encoders_are_registered_from_entry_points(monkeypatch):
    def factory(d_in, width, activation):
        return nn.Linear(d_in, width)

    ep = SimpleNamespace(name="plugin-linear", value="plugin:factory", load=lambda: factory)
    broken = SimpleNamespace(name="plugin-broken", value="broken:f", load=lambda: 1 / 0)
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: [ep, broken] if group == "mmgain.encoders" else [])
    with pytest.warns(UserWarning, match="plugin-broken"):
        assert components.load_entry_points() == ["plugin-linear"]
    assert ENCODERS.get("plugin-linear") is factory
