"""The batched trainer against the per-model reference trainer (tests/reference.py)."""
import itertools

import numpy as np
import pytest
import torch

from conftest import DEVICES, toy_modalities
from mmgain.data import enumerate_subsets
from mmgain.data.splits import nested_sample
from mmgain.models import ACTIVATIONS, ENCODERS, FUSIONS
from mmgain.training import BatchedAdam, BatchedTrainer, DeviceData, Streams, TrainingProtocol
from mmgain.training.schedule import BatchSchedule
from reference import train_reference

DIMS = {"m1": 3, "m2": 4, "m3": 2}
SUBSETS = enumerate_subsets(list(DIMS))


def _problem(task, n=50):
    xs = toy_modalities(n=n, dims=tuple(DIMS.values()), seed=11)
    z = xs["m1"][:, 0] + xs["m2"][:, 1] - xs["m3"][:, 0]
    y = z.astype(np.float32) if task == "regression" else np.digitize(z, [-0.5, 0.5]).astype(np.int64)
    return xs, y


def _assert_matches_reference(trainer, streams, xs, y, protocol, task="classification", n_out=3):
    """Every (stream, subset) model of ``trainer`` equals the reference trainer's."""
    for s in range(len(streams)):
        for a, sub in enumerate(SUBSETS):
            ref = train_reference(DIMS, sub, int(streams.seeds[s]), xs, y, streams.train_rows[s], protocol, task,
                                  n_out)
            got = trainer.model_.to_module(s, a).state_dict()
            assert list(got) == list(ref.state_dict())
            for name, p in ref.state_dict().items():
                torch.testing.assert_close(got[name], p, rtol=1e-4, atol=1e-5, msg=f"{sub} stream {s} {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("encoder,fusion", list(itertools.product(ENCODERS.names(), FUSIONS.names())))
def test_batched_equals_reference(task, activation, encoder, fusion, device):
    """Every registered part (timm style): the batched program trains the same weights as one
    ``nn.Module`` and ``torch.optim.Adam`` per model."""
    xs, y = _problem(task)
    n_out = 1 if task == "regression" else 3
    protocol = TrainingProtocol(hidden=6, activation=activation, lr=0.02, batch_size=16, epochs=4,
                                encoder=encoder, fusion=fusion)
    # Streams with different seeds and sample sizes, so step counts differ (3, 2 and 1 steps per epoch).
    streams = Streams(np.array([0, 0, 0]), np.array([0, 1, 1]),
                      [nested_sample(50, 1.0, 0), nested_sample(50, 0.5, 1), nested_sample(50, 0.1, 1)])
    train = DeviceData.stack([(xs, y)], device)
    trainer = BatchedTrainer(protocol, DIMS, SUBSETS, n_out, task, device).fit(train, streams)
    _assert_matches_reference(trainer, streams, xs, y, protocol, task, n_out)


def test_batched_equals_reference_with_per_modality_widths():
    xs, y = _problem("classification")
    protocol = TrainingProtocol(hidden={"m1": 3, "m2": 7, "m3": 2}, encoder="mlp2", lr=0.02, batch_size=16, epochs=3)
    streams = Streams(np.array([0, 0]), np.array([2, 3]), [nested_sample(50, 1.0, 2), nested_sample(50, 0.4, 3)])
    trainer = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(DeviceData.stack([(xs, y)], "cpu"),
                                                                              streams)
    _assert_matches_reference(trainer, streams, xs, y, protocol)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_adam_all_streams_active_matches_torch_adam(device):
    torch.manual_seed(1)
    p = torch.randn(3, 4, 5, device=device, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    ours, ref = BatchedAdam([p], n_streams=3, lr=0.05), torch.optim.Adam([q], lr=0.05)
    for _ in range(4):
        g = torch.randn(3, 4, 5, device=device)
        p.grad, q.grad = g.clone(), g.clone()
        ours.step(torch.ones(3, dtype=torch.bool, device=device))
        ref.step()
    torch.testing.assert_close(p.detach(), q.detach())


def test_batched_adam_matches_torch_adam_and_freezes_inactive_streams():
    torch.manual_seed(0)
    p = torch.randn(3, 4, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    ours = BatchedAdam([p], n_streams=3, lr=0.1)
    ref = torch.optim.Adam([q], lr=0.1)
    frozen = p.detach()[2].clone()
    for step in range(5):
        g = torch.randn(3, 4)
        p.grad = g.clone()
        ours.step(torch.tensor([True, True, False]))
        q.grad = g.clone()
        ref.step()
    torch.testing.assert_close(p.detach()[:2], q.detach()[:2])
    assert torch.equal(p.detach()[2], frozen)
    assert ours.t.tolist() == [5, 5, 0]


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_numbers(device):
    xs, y = _problem("classification")
    protocol = TrainingProtocol(hidden=5, lr=0.05, batch_size=8, epochs=2)
    streams = Streams(np.array([0]), np.array([3]), [np.arange(50)])
    train = DeviceData.stack([(xs, y)], device)
    runs = [BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification", device).fit(train, streams)
            for _ in range(2)]
    for k in runs[0].model_.params:
        assert torch.equal(runs[0].model_.params[k], runs[1].model_.params[k])


def test_schedule_is_keyed_by_seed_and_size():
    a = list(BatchSchedule(0, 10, 4, 2))
    assert [len(b) for b in a] == [4, 4, 2] * 2
    assert sorted(np.concatenate(a[:3])) == list(range(10))
    assert all(np.array_equal(x, y) for x, y in zip(a, BatchSchedule(0, 10, 4, 2)))
    assert not all(np.array_equal(x, y) for x, y in zip(a, BatchSchedule(1, 10, 4, 2)))


def test_nested_samples():
    small, big = nested_sample(1000, 0.01, 4), nested_sample(1000, 0.1, 4)
    assert len(small) == 10 and len(big) == 100 and set(small) <= set(big)
    assert len(nested_sample(1000, 1e-4, 4)) == 1
    with pytest.raises(ValueError, match="outside"):
        nested_sample(1000, 1.5, 0)


def test_probe_snapshot_is_the_encoder_after_probe_epochs():
    xs, y = _problem("classification")
    streams = Streams(np.array([0, 0]), np.array([0, 1]), [np.arange(50), nested_sample(50, 0.3, 1)])
    train = DeviceData.stack([(xs, y)], "cpu")
    long = BatchedTrainer(TrainingProtocol(hidden=4, batch_size=16, epochs=5, probe_epochs=2), DIMS, SUBSETS, 3,
                          "classification").fit(train, streams)
    short = BatchedTrainer(TrainingProtocol(hidden=4, batch_size=16, epochs=2), DIMS, SUBSETS, 3,
                           "classification").fit(train, streams)
    for k, v in short.model_.params.items():
        torch.testing.assert_close(long.probe_model_.params[k], v.detach())
        assert not torch.equal(long.model_.params[k], v)


def test_small_samples_never_share_a_chunk_with_large_ones():
    from mmgain.training.batched import chunk_streams
    sizes = [2048, 581, 2048, 58, 6, 1, 1, 1200]
    chunks = chunk_streams(sizes, bytes_per_row=1.0, budget_bytes=1e12)
    assert chunks == [[0, 2, 7], [1], [3], [4], [5, 6]]
    assert chunk_streams(sizes, bytes_per_row=1.0, budget_bytes=2048 * 2) [0] == [0, 2]   # memory still splits


@pytest.mark.parametrize("before", [False, True])
def test_training_flushes_subnormals_and_restores_the_mode(before):
    """Subnormal floats slow CPU matmuls several-fold late in training; the trainer flushes them
    while it trains and leaves the process's mode as it found it."""
    def flushing() -> bool:
        return float(torch.tensor(1e-40)) == 0.0

    xs, y = _problem("classification")
    seen = []
    torch.set_flush_denormal(before)
    try:
        assert flushing() == before
        streams = Streams(np.array([0]), np.array([0]), [nested_sample(50, 1.0, 0)])
        BatchedTrainer(TrainingProtocol(hidden=4, epochs=2, batch_size=25), DIMS, SUBSETS, 3, "classification") \
            .fit(DeviceData.stack([(xs, y)], "cpu"), streams, on_step=lambda: seen.append(flushing()))
        assert seen and all(seen)
        assert flushing() == before
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("fusion", FUSIONS.names())
def test_batched_equals_reference_with_the_mlp_head(task, fusion):
    """The mlp head (one hidden layer on the fused latent) trains the same weights batched as one
    ``nn.Module`` per model, and every registered head has an initial state the two agree on."""
    xs, y = _problem(task)
    n_out = 1 if task == "regression" else 3
    protocol = TrainingProtocol(hidden=6, lr=0.02, batch_size=16, epochs=4, fusion=fusion, head="mlp", head_width=5,
                                head_activation="relu")
    streams = Streams(np.array([0, 0]), np.array([0, 1]), [nested_sample(50, 1.0, 0), nested_sample(50, 0.5, 1)])
    trainer = BatchedTrainer(protocol, DIMS, SUBSETS, n_out, task).fit(DeviceData.stack([(xs, y)], "cpu"), streams)
    for s in range(len(streams)):
        for a, sub in enumerate(SUBSETS):
            ref = train_reference(DIMS, sub, int(streams.seeds[s]), xs, y, streams.train_rows[s], protocol, task, n_out)
            got = trainer.model_.to_module(s, a).state_dict()
            assert list(got) == list(ref.state_dict()) and "head.2.weight" in got
            for name, p in ref.state_dict().items():
                torch.testing.assert_close(got[name], p, rtol=1e-4, atol=1e-5, msg=f"{sub} stream {s} {name}")


def test_batched_equals_reference_where_the_first_layer_is_fused(monkeypatch):
    """Minibatches large enough for the fused first layer (bias in the matmul, oneDNN's ReLU
    post-op): still the same weights as one module and torch's Adam per model."""
    from mmgain.models import fused

    calls = []
    real = fused._OneDNNLinearReLU.apply
    monkeypatch.setattr(fused._OneDNNLinearReLU, "apply", lambda *a: calls.append(1) or real(*a))
    xs = toy_modalities(n=700, dims=tuple(DIMS.values()), seed=5)
    y = np.digitize(xs["m1"][:, 0] - xs["m3"][:, 1], [-0.5, 0.5]).astype(np.int64)
    protocol = TrainingProtocol(hidden=6, activation="relu", lr=0.02, batch_size=600, epochs=3)
    streams = Streams(np.array([0, 0]), np.array([0, 1]), [nested_sample(700, 1.0, 0), nested_sample(700, 0.9, 1)])
    trainer = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(DeviceData.stack([(xs, y)], "cpu"),
                                                                                streams)
    assert calls                                               # the fused kernel ran
    _assert_matches_reference(trainer, streams, xs, y, protocol)
    again = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(DeviceData.stack([(xs, y)], "cpu"),
                                                                              streams)
    for name, p in trainer.model_.params.items():               # the same seed, the same numbers
        assert torch.equal(p, again.model_.params[name]), name


def test_batched_equals_reference_in_row_tiles(monkeypatch):
    """Narrow inputs: a step runs its minibatch in row tiles (gradients summed over them) and
    trains the same weights as one module per model, the same on a second fit."""
    from mmgain.training import batched

    monkeypatch.setattr(batched, "TILE_BYTES", 4096)      # tiles of 32 rows at these toy shapes
    tiles = []
    rule = batched.row_tile
    monkeypatch.setattr(batched, "row_tile", lambda *a: tiles.append(rule(*a)) or tiles[-1])
    xs = toy_modalities(n=200, dims=tuple(DIMS.values()), seed=7)
    y = np.digitize(xs["m1"][:, 0] + xs["m2"][:, 2], [-0.5, 0.5]).astype(np.int64)
    protocol = TrainingProtocol(hidden=6, lr=0.02, batch_size=100, epochs=3)
    streams = Streams(np.array([0, 0, 0]), np.array([0, 1, 2]),
                      [nested_sample(200, 1.0, 0), nested_sample(200, 0.45, 1), nested_sample(200, 0.1, 2)])
    data = DeviceData.stack([(xs, y)], "cpu")
    trainer = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(data, streams)
    assert tiles == [32]                                   # 100 rows: tiles of 32, 32, 32 and 4
    _assert_matches_reference(trainer, streams, xs, y, protocol)
    again = BatchedTrainer(protocol, DIMS, SUBSETS, 3, "classification").fit(data, streams)
    for name, p in trainer.model_.params.items():
        assert torch.equal(p, again.model_.params[name]), name


def test_row_tiles_only_where_the_first_layer_is_memory_bound():
    """The rule is a function of shapes alone: narrow inputs in a large step get power-of-two tiles
    whose hidden tensor fits the cache budget; wide inputs, small steps and GPUs keep the step whole."""
    from mmgain.models.late_fusion import BatchedLateFusion
    from mmgain.training.batched import TILE_BYTES, TILE_MAX_DIM, row_tile

    def model(d, k=6):
        dims = {f"m{i}": d for i in range(k)}
        return BatchedLateFusion(dims, enumerate_subsets(list(dims)), [0], 4, 128)

    narrow = model(16)
    tile = row_tile(narrow, 5, 2048, torch.device("cpu"))
    per_row = 4 * 5 * 32 * 128                             # 5 streams × 32 subsets hold each modality × 128 units
    assert tile & (tile - 1) == 0 and 32 <= tile < 2048 and tile * per_row <= TILE_BYTES < 2 * tile * per_row
    assert row_tile(narrow, 1, 2048, torch.device("cpu")) == 4 * tile        # a fifth of the bytes: 4× the rows
    assert row_tile(narrow, 1, 64, torch.device("cpu")) == 64                # the whole step fits
    assert row_tile(model(TILE_MAX_DIM + 1), 5, 2048, torch.device("cpu")) == 2048
    assert row_tile(narrow, 5, 2048, torch.device("cuda")) == 2048
    assert row_tile(model(16, k=10), 1, 2048, torch.device("cpu")) == 32     # never below 32 rows
