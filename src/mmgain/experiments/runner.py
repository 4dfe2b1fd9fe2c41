"""The one generic runner: spec → data groups → streams → batched training → probes → rows.

Every experiment (synthetic, real data, IEMOCAP) goes through :func:`run_experiment`;
what differs between them is the spec, never the code path.
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.dataset import DataError, MultimodalDataset
from ..data.sources import is_per_seed, load_source
from ..data.splits import nested_sample
from ..data.subsets import select_subsets, subset_name
from ..probes.latent import least_squares_probe, logistic_probe
from ..training.batched import BatchedTrainer, DeviceData, Streams, chunk_streams, resolve_device
from ..training.protocol import TrainingProtocol
from .references import REFERENCES
from .spec import ExperimentSpec
from .summary import summarize

try:  # progress bars are a nicety, not a requirement
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover
    tqdm = None


@dataclass
class DataGroup:
    variant: dict[str, Any]
    seed: int | None          # the seed the data were drawn with (per-seed sources), else None
    dataset: MultimodalDataset


@dataclass
class RunResult:
    spec: ExperimentSpec
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    datasets: list[DataGroup] = field(default_factory=list)


def load_groups(spec: ExperimentSpec, seeds: list[int]) -> list[DataGroup]:
    per_seed = is_per_seed(spec.data)
    groups = [DataGroup(v, s, load_source(spec.data, s if s is not None else 0, v, spec.data_args))
              for v in spec.variants for s in (seeds if per_seed else [None])]
    ref = groups[0].dataset
    for g in groups[1:]:
        ds = g.dataset
        if ds.dims != ref.dims or ds.task != ref.task or ds.n_outputs != ref.n_outputs:
            raise DataError(f"{ds.name}: data variants must share modalities, dims and task "
                            f"({ds.dims} vs {ref.dims})")
    if ref.split is None:
        raise DataError(f"{ref.name}: no train/test split (the loader should have made one)")
    sizes = {tuple(len(i) for i in g.dataset.train_test_indices()) for g in groups}
    if len(sizes) > 1:
        raise DataError(f"data variants have different train/test sizes: {sorted(sizes)}")
    return groups


def _stream_bytes(protocol: TrainingProtocol, dims: dict[str, int], subsets, n_outputs: int, batch: int) -> float:
    """Rough working set of one stream while training (activations, inputs, Adam state)."""
    H = protocol.hidden
    pairs = sum(len(s) for s in subsets)           # (subset, modality) encoders
    mean_d = np.mean(list(dims.values()))
    act = batch * pairs * H * 4 * 8
    params = pairs * (mean_d * H + H + H * n_outputs) * 4 * 4
    return act + params + batch * sum(dims.values()) * 4 * 2


def run_experiment(spec: ExperimentSpec, device: str = "auto", progress: bool = True,
                   memory_budget: float | None = None) -> RunResult:
    t0 = time.time()
    protocol = spec.resolved_protocol()
    dev = resolve_device(device)
    seeds = list(range(spec.seeds))
    groups = load_groups(spec, seeds)
    ref = groups[0].dataset
    subsets = select_subsets(spec.subsets, ref.names)
    task, n_out = ref.task, ref.n_outputs

    split = [g.dataset.train_test_indices() for g in groups]
    train = DeviceData.stack([(g.dataset.rows(tr), g.dataset.y[tr]) for g, (tr, _) in zip(groups, split)], dev)
    test = DeviceData.stack([(g.dataset.rows(te), g.dataset.y[te]) for g, (_, te) in zip(groups, split)], dev)

    # One stream per (data group, seed, ratio): what its subsets share.
    keys, g_idx, s_idx, rows = [], [], [], []
    for gi, g in enumerate(groups):
        for seed in ([g.seed] if g.seed is not None else seeds):
            for ratio in spec.ratios:
                keys.append((gi, seed, float(ratio)))
                g_idx.append(gi)
                s_idx.append(seed)
                rows.append(nested_sample(train.n, float(ratio), seed))
    streams = Streams(np.array(g_idx), np.array(s_idx), rows)

    if memory_budget is None:
        memory_budget = (0.5 * torch.cuda.mem_get_info(dev)[0]) if dev.type == "cuda" else 2e9
    per_stream = _stream_bytes(protocol, ref.dims, subsets, n_out, min(protocol.batch_size, train.n))
    chunks = chunk_streams(len(streams), per_stream, memory_budget)
    chunk_streams_ = [streams.subset(c) for c in chunks]
    total_steps = sum(BatchedTrainer.n_steps(protocol, cs) for cs in chunk_streams_)
    bar = None
    if progress and tqdm is not None:
        bar = tqdm(total=total_steps, desc=f"{spec.name}: training {len(streams) * len(subsets)} models",
                   unit="step", file=sys.stderr, dynamic_ncols=True)

    results: list[dict[str, Any]] = []
    for ci, (chunk, cs) in enumerate(zip(chunks, chunk_streams_)):
        trainer = BatchedTrainer(protocol, ref.dims, subsets, n_out, task, dev)
        trainer.fit(train, cs, on_step=bar.update if bar else None)
        test_metrics = trainer.score(test, cs.groups)
        for j, s in enumerate(chunk):
            gi, seed, ratio = keys[s]
            probe = _probe(trainer, j, train, test, gi, task, n_out, protocol)
            for a, sub in enumerate(subsets):
                row = {"experiment": spec.name, "subset": subset_name(sub), "n_modalities": len(sub),
                       **groups[gi].variant, "seed": seed, "ratio": ratio, "n_train": len(rows[s])}
                row.update({f"test_{m}": float(v[j, a]) for m, v in test_metrics.items()})
                row.update({f"probe_{m}": float(v[a]) for m, v in probe.items()})
                row["train_loss"] = float(trainer.train_loss_[j, a])
                results.append(row)
        if bar:
            bar.set_postfix_str(f"{ci + 1}/{len(chunks)} chunks done")
    if bar:
        bar.close()

    _add_eta(results, spec, task)
    summary = summarize(spec, results, subsets)
    reference = REFERENCES.get(spec.reference) if spec.reference else None
    if reference is not None:
        reference.annotate(summary)
    meta = {
        "spec": spec.to_dict(), "seeds": seeds, "device": _device_name(dev),
        "n_models": len(results), "n_streams": len(streams), "n_chunks": len(chunks),
        "wall_time_s": round(time.time() - t0, 2),
        "versions": _versions(), "data": {"modalities": ref.dims, "task": task,
                                           "n_train": train.n, "n_test": test.n,
                                           "classes": None if ref.classes is None else [str(c) for c in ref.classes]},
    }
    return RunResult(spec, results, summary, meta, groups)


def _probe(trainer: BatchedTrainer, j: int, train: DeviceData, test: DeviceData, group: int,
           task: str, n_out: int, protocol: TrainingProtocol) -> dict[str, np.ndarray]:
    """The latent probe for the A models of stream j, on the full training set of its group."""
    model = trainer.model_.select([j])
    g = torch.tensor([group], device=train.y.device)

    def latent(data: DeviceData):
        with torch.no_grad():
            r = torch.arange(data.n, device=data.y.device)[None]
            xs, y = data.gather(g, r)
            return model.latent(xs)[0], y[0]

    Z, y = latent(train)
    Zt, yt = latent(test)
    if task == "regression":
        out = least_squares_probe(Z, y, Zt, yt, ridge=protocol.probe_ridge)
    else:
        out = logistic_probe(Z, y, Zt, yt, n_out, l2=protocol.probe_l2, max_iter=protocol.probe_max_iter)
    return {k: v.cpu().numpy() for k, v in out.items()}


def _add_eta(rows: list[dict[str, Any]], spec: ExperimentSpec, task: str) -> None:
    """η̂ = probe risk − Bayes risk if known, else − the best subset's probe risk (same variant, seed, ratio)."""
    risk = "probe_mse" if task == "regression" else "probe_ce"
    if spec.bayes_risk is not None:
        for r in rows:
            r["eta"] = r[risk] - spec.bayes_risk
        return
    best: dict[tuple, float] = {}
    key = lambda r: tuple(r.get(k) for k in spec.variant_keys) + (r["seed"], r["ratio"])  # noqa: E731
    for r in rows:
        best[key(r)] = min(best.get(key(r), np.inf), r[risk])
    for r in rows:
        r["eta"] = r[risk] - best[key(r)]


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _versions() -> dict[str, str]:
    from .. import __version__
    return {"mmgain": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}
