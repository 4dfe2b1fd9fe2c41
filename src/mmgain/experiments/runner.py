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
from ..probes.latent import Latent, least_squares_probe, logistic_probe
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


def _bytes_per_row(protocol: TrainingProtocol, dims: dict[str, int], subsets) -> float:
    """Rough training working set per minibatch row of one stream (activations and inputs)."""
    pairs = sum(len(s) for s in subsets)           # (subset, modality) encoders
    return pairs * protocol.hidden * 4 * 8 + sum(dims.values()) * 4 * 2


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
    if protocol.standardize:
        moments = train.moments()
        train, test = train.standardized(moments), test.standardized(moments)

    # One stream per (data group, seed, ratio): what its subsets share.
    keys = [(gi, seed, float(ratio)) for gi, g in enumerate(groups)
            for seed in ([g.seed] if g.seed is not None else seeds) for ratio in spec.ratios]
    rows = [nested_sample(train.n, ratio, seed) for _, seed, ratio in keys]
    streams = Streams(np.array([k[0] for k in keys]), np.array([k[1] for k in keys]), rows)

    if memory_budget is None:
        memory_budget = (0.5 * torch.cuda.mem_get_info(dev)[0]) if dev.type == "cuda" else 2e9
    chunks = chunk_streams([min(protocol.batch_size, len(r)) for r in rows],
                           _bytes_per_row(protocol, ref.dims, subsets), memory_budget)
    chunk_data = [streams.subset(c) for c in chunks]
    total_steps = sum(BatchedTrainer.n_steps(protocol, cs) for cs in chunk_data)
    bar = None
    if progress and tqdm is not None:
        bar = tqdm(total=total_steps, desc=f"{spec.name}: training {len(streams) * len(subsets)} models",
                   unit="step", file=sys.stderr, dynamic_ncols=True)

    results: list[tuple[int, int, dict[str, Any]]] = []   # (stream, subset, row)
    for ci, (chunk, cs) in enumerate(zip(chunks, chunk_data)):
        trainer = BatchedTrainer(protocol, ref.dims, subsets, n_out, task, dev)
        if bar:
            bar.set_postfix_str(f"chunk {ci + 1}/{len(chunks)}: training {len(chunk)} stream(s)")
        trainer.fit(train, cs, on_step=bar.update if bar else None)
        test_metrics = trainer.score(test, cs.groups)
        probe = _probe_chunk(trainer, cs.groups, train, test, task, n_out, protocol, memory_budget,
                             lambda done: bar.set_postfix_str(f"chunk {ci + 1}/{len(chunks)}: probed {done}/"
                                                              f"{len(chunk)} stream(s)") if bar else None)
        for j, s in enumerate(chunk):
            gi, seed, ratio = keys[s]
            for a, sub in enumerate(subsets):
                row = {"experiment": spec.name, "subset": subset_name(sub), "n_modalities": len(sub),
                       **groups[gi].variant, "seed": seed, "ratio": ratio, "n_train": len(rows[s])}
                row.update({f"test_{m}": float(v[j, a]) for m, v in test_metrics.items()})
                row.update({f"probe_{m}": float(v[j, a]) for m, v in probe.items()})
                row["train_loss"] = float(trainer.train_loss_[j, a])
                results.append((s, a, row))
    if bar:
        bar.close()

    rows_out = [row for _, _, row in sorted(results, key=lambda t: t[:2])]   # spec order, whatever the chunking
    _add_eta(rows_out, spec, task)
    summary = summarize(spec, rows_out, subsets)
    reference = REFERENCES.get(spec.reference) if spec.reference else None
    if reference is not None:
        reference.annotate(summary)
    meta = {
        "spec": spec.to_dict(), "seeds": seeds, "device": _device_name(dev),
        "n_models": len(rows_out), "n_streams": len(streams), "n_chunks": len(chunks),
        "wall_time_s": round(time.time() - t0, 2),
        "versions": _versions(), "data": {"modalities": ref.dims, "task": task,
                                           "n_train": train.n, "n_test": test.n, "source": ref.source or ref.name, **ref.notes,
                                           "classes": None if ref.classes is None else [str(c) for c in ref.classes]},
    }
    return RunResult(spec, rows_out, summary, meta, groups)


def _probe_chunk(trainer: BatchedTrainer, groups: np.ndarray, train: DeviceData, test: DeviceData, task: str,
                 n_out: int, protocol: TrainingProtocol, memory_budget: float, report) -> dict[str, np.ndarray]:
    """The latent probe of every model of a trained chunk, each on the full training set of its
    group: returns ``{metric: (S, A)}``.

    Logistic probes of several streams run as one batched L-BFGS (as many as fit the memory
    budget); least-squares probes, whose Gram matrices are large, one stream at a time.
    """
    model = trainer.probe_model_
    S, A = model.n_streams, len(model.subsets)
    per_stream = train.n * sum(len(m) for m in model.members.values()) * model.hidden * 4 * 4
    size = 1 if task == "regression" else max(1, int(memory_budget // max(per_stream, 1)))
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, S, size):
        js = list(range(start, min(start + size, S)))
        part = model.select(js)
        g = torch.as_tensor(groups[js], device=train.y.device)
        Z, y = _stacked_latent(part, train, g)
        Zt, yt = _stacked_latent(part, test, g)
        if task == "regression":
            res = least_squares_probe(Z, y, Zt, yt, ridge=protocol.probe_ridge)
        else:
            res = logistic_probe(Z, y, Zt, yt, n_out, l2=protocol.probe_l2, max_iter=protocol.probe_max_iter,
                                 tol=protocol.probe_tol)
        for k, v in res.items():
            out.setdefault(k, []).append(v.reshape(len(js), A).cpu().numpy())
        if report:
            report(js[-1] + 1)
    return {k: np.concatenate(v) for k, v in out.items()}


def _stacked_latent(model, data: DeviceData, groups: torch.Tensor) -> tuple[Latent, torch.Tensor]:
    """Latents of S streams × A subsets as one Latent of S·A models (stream-major), and y (n, S·A)."""
    S, A = model.n_streams, len(model.subsets)
    with torch.no_grad():
        r = torch.arange(data.n, device=data.y.device)[None].expand(S, -1)
        xs, y = data.gather(groups, r)                                  # (S, n, d_k), (S, n)
        blocks = {k: v.permute(1, 0, 2, 3).reshape(data.n, -1, v.shape[-1])   # (n, S·A_k, H)
                  for k, v in model.latent_blocks(xs).items()}
    members = {k: [s * A + a for s in range(S) for a in model.members[k]] for k in blocks}
    return Latent(blocks, members, model.names, S * A), y.T[:, :, None].expand(-1, S, A).reshape(data.n, S * A)


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
