"""bfloat16 training (``protocol.precision``) against float32 and float64 ground truth.

bfloat16 keeps 8 significant bits: rounding to nearest has unit roundoff u = 2⁻⁸.  Under autocast
each Linear layer rounds its inputs (x, W, b) to bfloat16, accumulates the products in float32 and
rounds its output, so its error is at most ≈ 3u·(|W||x| + |b|) plus what its inputs carried.  The
activations (relu, none) are 1-Lipschitz with |act(z)| ≤ |z|, so through L layers the error of the
outputs is at most ≈ 3u·L·M, where M is the same network run on |x| with |W|, |b| and no activation
(the "magnitude network" of forward error analysis).
"""
import copy
import itertools
import json
import warnings

import numpy as np
import pytest
import torch

from conftest import toy_modalities
from mmgain.cli import main
from mmgain.data import enumerate_subsets
from mmgain.errors import SpecError
from mmgain.models import ACTIVATIONS, ENCODERS, FUSIONS, BatchedLateFusion
from mmgain.models.components import Activation
from mmgain.training import BatchedTrainer, DeviceData, Streams, TrainingProtocol
from mmgain.training.batched import autocast, emulation_note
from reference import train_reference

U = 2.0 ** -8
DIMS = {"m1": 3, "m2": 4, "m3": 2}
SUBSETS = enumerate_subsets(list(DIMS))
CPU = torch.device("cpu")


def _magnitude(module, xs):
    """M: the model on |x| with |W|, |b| and every activation the identity, in float64."""
    m = copy.deepcopy(module).double()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    for part in m.modules():
        if isinstance(part, Activation):
            part.fn = lambda z: z
    with torch.no_grad():
        return m({k: v.double().abs() for k, v in xs.items()})


@pytest.mark.parametrize("encoder,fusion,activation",
                         list(itertools.product(ENCODERS.names(), FUSIONS.names(), ACTIVATIONS.names())))
def test_bfloat16_forward_is_within_the_rounding_bound(encoder, fusion, activation):
    """Every registered part: the batched forward under bfloat16 autocast lies within 3u·L·M of the
    exact (float64) outputs of each subset's model, and really is bfloat16 (it differs from float32
    by far more than float32 rounding)."""
    model = BatchedLateFusion(DIMS, SUBSETS, [0, 5], 3, hidden=8, activation=activation, encoder=encoder,
                              fusion=fusion)
    with torch.no_grad():
        for p in model.params.values():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    xs = {k: torch.from_numpy(v) for k, v in toy_modalities(n=64, dims=tuple(DIMS.values()), seed=3).items()}
    both = {k: torch.stack([v, v]) for k, v in xs.items()}
    with autocast(CPU, "bfloat16"), torch.no_grad():
        out = model.forward(both)
    assert out.dtype == torch.float32                        # summed over modalities in float32
    layers = sum(isinstance(m, torch.nn.Linear) for m in ENCODERS.get(encoder)(3, 8, activation)) + 1
    far = 0.0
    for s, (a, sub) in itertools.product(range(2), enumerate(SUBSETS)):
        single = model.to_module(s, a)
        only = {k: xs[k] for k in sub}
        with torch.no_grad():
            exact = copy.deepcopy(single).double()({k: v.double() for k, v in only.items()})
        err, M = (out[s, :, a].double() - exact).abs(), _magnitude(single, only)
        assert bool((err <= 3 * U * layers * M).all()), f"{sub} stream {s}: beyond the bfloat16 bound"
        far = max(far, float((err / M).max()))
    assert far > 2 ** -16, "no bfloat16 rounding seen: autocast did not reach the matmuls"


def _problem(n, seed):
    xs = toy_modalities(n=n, dims=tuple(DIMS.values()), seed=seed)
    z = xs["m1"][:, 0] + xs["m2"][:, 1] - xs["m3"][:, 0]
    return xs, np.digitize(z, [-0.5, 0.5]).astype(np.int64)


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_bfloat16_changes_results_less_than_the_seed_does(encoder):
    """The claim the README makes: trained in bfloat16, every subset's test loss (mean over 5 seeds)
    moves by less than the spread of the float32 losses across those seeds.  A broken bfloat16 path
    (e.g. an update lost to rounding) would move it by far more (the losses range 0.2–0.95)."""
    train, test = _problem(400, 11), _problem(2000, 12)
    streams = Streams(np.zeros(5, int), np.arange(5), [np.arange(400)] * 5)
    ce = {}
    for precision in ("float32", "bfloat16"):
        protocol = TrainingProtocol(hidden=8, lr=0.02, batch_size=32, epochs=20, encoder=encoder, precision=precision)
        trainer = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(DeviceData.stack([train], CPU),
                                                                                  streams)
        ce[precision] = trainer.task.metrics(trainer.test_rows(DeviceData.stack([test], CPU), streams.groups))["ce"]
    shift = np.abs((ce["bfloat16"] - ce["float32"]).mean(0))
    spread = ce["float32"].std(0)
    assert (shift < spread).all(), f"bfloat16 moved the test loss by {shift}, the seeds spread {spread}"
    assert (ce["bfloat16"] != ce["float32"]).any()


def test_bfloat16_batched_trainer_follows_the_standard_autocast_recipe():
    """The naive loop under ``torch.autocast`` (what a peer writes for mixed precision) against the
    batched trainer, 3 epochs: the same models up to rounding.  Both round the same operands, but
    in different groupings (the batched head rounds each modality's term), so they part by a few u
    of the output scale (measured ≈ 1 %); float32 training parts from each by as much."""
    xs, y = _problem(600, 11)
    protocol = TrainingProtocol(hidden=16, lr=0.01, batch_size=64, epochs=3, precision="bfloat16")
    streams = Streams(np.zeros(2, int), np.array([0, 1]), [np.arange(400), np.arange(100)])
    trainer = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(DeviceData.stack([(xs, y)], CPU),
                                                                              streams)
    both = {k: torch.from_numpy(v).expand(2, -1, -1) for k, v in xs.items()}
    with torch.no_grad():
        out = trainer.model_.forward(both)
    for s, (a, sub) in itertools.product(range(2), enumerate(SUBSETS)):
        model = train_reference(DIMS, sub, s, xs, y, streams.train_rows[s], protocol, "classification", 3)
        with torch.no_grad():
            ref = model({k: torch.from_numpy(xs[k]) for k in sub})
        rel = float((out[s, :, a] - ref).abs().max() / ref.abs().max())
        assert rel < 8 * U, f"{sub} stream {s}: {rel:.4f} of the output scale"


def test_bfloat16_same_seed_same_numbers():
    xs, y = _problem(200, 1)
    protocol = TrainingProtocol(hidden=5, lr=0.05, batch_size=16, epochs=2, precision="bfloat16")
    streams = Streams(np.array([0]), np.array([3]), [np.arange(200)])
    runs = [BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(DeviceData.stack([(xs, y)], CPU),
                                                                            streams) for _ in range(2)]
    for k in runs[0].model_.params:
        assert runs[0].model_.params[k].dtype == torch.float32          # weights stay float32
        assert torch.equal(runs[0].model_.params[k], runs[1].model_.params[k])


def test_precision_errors_are_clear():
    with pytest.raises(SpecError, match="precision must be one of float32, bfloat16"):
        TrainingProtocol(precision="float16")
    with pytest.raises(SpecError, match="lstsq.*Adam solver only"):
        TrainingProtocol(activation="none", solver="lstsq", precision="bfloat16")
    with pytest.raises(SpecError, match="runs on cpu or cuda, not mps"):
        autocast(torch.device("mps"), "bfloat16")
    assert emulation_note(CPU, "float32") is None


def test_bfloat16_from_the_cli_is_recorded_and_old_stores_still_resume(tmp_path, capsys):
    """``--precision`` reaches the protocol that run.json records; a store written before the field
    existed resumes (its absence means float32, the old arithmetic), and another precision is refused."""
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    y = rng.integers(0, 2, 200)
    np.savez(data, a=rng.standard_normal((200, 3)) + y[:, None], b=rng.standard_normal((200, 2)), y=y)
    base = ["run", "--cv", "0", "--data", str(data), "--ratios", "1", "--seeds", "2", "--epochs", "2", "--quiet"]
    assert main([*base, "--precision", "bfloat16", "--out", str(tmp_path / "bf")]) == 0
    run = json.loads((tmp_path / "bf" / "run.json").read_text())
    assert run["spec"]["resolved_protocol"]["precision"] == "bfloat16"
    assert "trained in bfloat16" in capsys.readouterr().out                   # said where the time is said
    assert "trained in bfloat16" in (tmp_path / "bf" / "report.html").read_text()
    out = tmp_path / "old"
    assert main([*base, "--out", str(out)]) == 0
    assert "trained in" not in capsys.readouterr().out and "trained in" not in (out / "report.html").read_text()
    manifest = out / "store" / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["spec"]["resolved_protocol"]["precision"]             # as a store from before the field
    manifest.write_text(json.dumps(m))
    capsys.readouterr()
    assert main([*base, "--resume", str(out)]) == 0
    assert main([*base, "--precision", "bfloat16", "--resume", str(out)]) == 2
    assert "precision" in capsys.readouterr().err


def test_bench_runs_both_sides_in_bfloat16(capsys):
    assert main(["bench", "--quick", "--precision", "bfloat16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["precision"] == "bfloat16"
    assert result["max_test_acc_diff"] <= 2.0      # the same models up to bfloat16 rounding (float32: ≤ 0.5)


def test_emulated_bfloat16_is_said_and_recorded(tmp_path, capsys, monkeypatch):
    """Where the hardware has no bfloat16 matmul units the run still works, and says it will be slow."""
    monkeypatch.setattr("mmgain.training.batched.native_bfloat16", lambda device: False)
    rng = np.random.default_rng(1)
    data = tmp_path / "d.npz"
    y = rng.integers(0, 2, 120)
    np.savez(data, a=rng.standard_normal((120, 3)) + y[:, None], b=rng.standard_normal((120, 2)), y=y)
    out = tmp_path / "run"
    assert main(["run", "--cv", "0", "--data", str(data), "--ratios", "1", "--seeds", "2", "--epochs", "2", "--quiet",
                 "--precision", "bfloat16", "--out", str(out)]) == 0
    assert "emulated and likely slower than float32" in capsys.readouterr().err
    assert any("emulated" in w for w in json.loads((out / "run.json").read_text())["warnings"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["collect", str(out)]) == 0            # collect trains nothing: nothing to say
    assert not any("emulated" in str(w.message) for w in caught)
    assert "emulated" not in capsys.readouterr().err
