"""``mmgain bench``: the batched trainer and probe against the naive loop, on the same device.

The workload is the paper's Table-2 protocol on IEMOCAP-shaped data (generated: 5810 / 1623
rows; text 100-d, audio 100-d, video 512-d; 6 classes with some class signal per modality):
7 subsets × 5 ratios × 5 seeds = 175 models, ``huang2021`` (hidden 128, Adam 0.01, batch
2048, 100 epochs), then one probe per model (the paper's: the best head on the frozen
encoder).  The naive side trains one ``nn.Module`` per model with ``torch.optim.Adam``
(:mod:`mmgain.training.naive`) and probes with scikit-learn's ``LogisticRegression``.
"""
from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..data.splits import nested_sample
from ..data.subsets import enumerate_subsets
from ..errors import SpecError
from ..tasks import get_task
from ..training.flops import training_flops
from ..training.batched import BatchedTrainer, DeviceData, Streams, emulation_note, resolve_device
from ..training.naive import train_naive
from ..training.protocol import PROTOCOLS
from .budget import matmul_peak_gflops, work_record

RATIOS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class Workload:
    dims: dict[str, int]
    n_train: int
    n_test: int
    n_classes: int
    seeds: int
    ratios: tuple[float, ...]
    epochs: int


def workload(quick: bool = False, k: int | None = None, seeds: int | None = None) -> Workload:
    if k is not None:
        if not 2 <= k <= 12:
            raise SpecError(f"--k must lie in 2..12 (2^K − 1 subsets), got {k}")
        return Workload({f"m{i + 1}": 16 for i in range(k)}, 2000, 500, 4, seeds or (2 if quick else 5),
                        (1.0,), 3 if quick else 20)
    if quick:
        return Workload({"text": 20, "audio": 20, "video": 64}, 600, 200, 6, seeds or 2, (0.1, 1.0), 3)
    return Workload({"text": 100, "audio": 100, "video": 512}, 5810, 1623, 6, seeds or 5, RATIOS, 100)


def _data(w: Workload, seed: int = 0):
    """Class-conditional Gaussians; each modality carries a different share of the signal."""
    rng = np.random.default_rng(seed)
    n = w.n_train + w.n_test
    y = rng.integers(0, w.n_classes, n)
    xs = {}
    for i, (k, d) in enumerate(w.dims.items()):
        means = rng.normal(size=(w.n_classes, d)) * (0.6 / (1 + i)) / np.sqrt(d) * 4
        xs[k] = (means[y] + rng.normal(size=(n, d))).astype(np.float32)
    return {k: v[:w.n_train] for k, v in xs.items()}, y[:w.n_train], {k: v[w.n_train:] for k, v in xs.items()}, \
        y[w.n_train:]


def _device_label(dev: torch.device) -> str:
    return str(dev) if dev.type != "cuda" else f"cuda ({torch.cuda.get_device_name(dev)})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_run_training(device: torch.device, peak_gflops: float) -> dict:
    """The default ``mmgain run`` (embedded mfeat, every subset × 5 ratios × 5 folds) as planned on
    this device: its models, training's counted FLOPs and their floor at ``peak_gflops``.  Its
    probes' FLOPs are counted as they run (each run.json's ``work.floor_s``), so the bench gives the
    training part of that floor, with no run."""
    import contextlib
    import io

    from ..catalog import EXPERIMENTS
    from .runner import plan_run

    with contextlib.redirect_stderr(io.StringIO()):       # the plan's own estimate line
        plan = plan_run(EXPERIMENTS.get("run"), str(device), progress=False, allow_large=True)
    flops = plan.estimate.train_flops                     # counted as run.json's work counts them
    return {"models": len(plan.subsets) * len(plan.streams), "train_flops": float(f"{flops:.4g}"),
            "train_floor_s": float(f"{flops / (peak_gflops * 1e9):.3g}")}


def run_bench(quick: bool = False, device: str = "auto", naive_epochs: int | None = None, k: int | None = None,
              seeds: int | None = None, progress=print, naive: bool = True, encoder: str | None = None,
              fusion: str | None = None, precision: str | None = None) -> dict:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise SpecError("mmgain bench compares with scikit-learn's probe: pip install 'mmgain[bench]'") from None
    dev = resolve_device(device)
    w = workload(quick, k, seeds)
    protocol = PROTOCOLS.get("huang2021").with_(epochs=w.epochs, probe_epochs=w.epochs, encoder=encoder, fusion=fusion,
                                                precision=precision)
    if note := emulation_note(dev, protocol.precision):
        progress(f"note: {note}")
    task = get_task("classification")
    xtr, ytr, xte, yte = _data(w)
    names = list(w.dims)
    subsets = enumerate_subsets(names)
    stream_keys = [(s, r) for s in range(w.seeds) for r in w.ratios]
    samples = [nested_sample(w.n_train, r, s) for s, r in stream_keys]
    train = DeviceData.stack([(xtr, ytr)], dev)
    test = DeviceData.stack([(xte, yte)], dev)
    streams = Streams(np.zeros(len(stream_keys), dtype=int), np.array([s for s, _ in stream_keys]), samples)
    n_models = len(stream_keys) * len(subsets)
    progress(f"mmgain bench: {n_models} models ({len(subsets)} subsets × {len(w.ratios)} ratios × {w.seeds} seeds), "
             f"{w.epochs} epochs, encoder {protocol.encoder!r}, fusion {protocol.fusion!r}, "
             f"{protocol.precision}, on {dev}")

    # ---- batched: one program for every model, then one batched probe
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    _sync(dev)
    from ..probes.latent import fit_probe
    from .chunk import _stacked_latent
    from .runner import default_memory_budget, plan_chunks
    chunks = plan_chunks(protocol, w.dims, subsets, samples, default_memory_budget(dev))   # as the runner chunks
    t_train = t_probe = probe_flops = probe_evals = probe_rounds = 0.0
    probe_acc, test_acc = np.zeros((len(stream_keys), len(subsets))), np.zeros((len(stream_keys), len(subsets)))
    for chunk in chunks:
        cs = streams.subset(chunk)
        t0 = time.perf_counter()
        trainer = BatchedTrainer(protocol, w.dims, subsets, w.n_classes, task, dev).fit(train, cs)
        _sync(dev)
        t_train += time.perf_counter() - t0
        g = torch.zeros(len(chunk), dtype=torch.long, device=dev)
        t0 = time.perf_counter()
        Z, y = _stacked_latent(trainer.model_, train, g)
        Zt, yt = _stacked_latent(trainer.model_, test, g)
        probe = fit_probe(task, Z, y, Zt, yt, w.n_classes, protocol, by_width=dev.type == "cpu")   # as a chunk
        _sync(dev)
        t_probe += time.perf_counter() - t0
        probe_flops += float(probe["flops"].sum())
        probe_evals += float(probe["evaluations"].sum())
        probe_rounds += float(probe["rounds"].sum())
        probe_acc[chunk] = 100 * probe["test"]["correct"].float().mean(1).cpu().numpy().reshape(len(chunk), -1)
        test_acc[chunk] = task.metrics(trainer.test_rows(test, cs.groups))["acc"]
    progress(f"  batched ({len(chunks)} chunk(s)): training {t_train:.1f} s, probes {t_probe:.1f} s"
             + ("; now the naive loop, model by model" if naive else ""))
    batched_probe_acc, batched_test = probe_acc.ravel(), test_acc.ravel()
    sizes = [len(r) for r in samples]
    flops = training_flops(protocol, w.dims, subsets, w.n_classes, sizes, real=False)
    real = training_flops(protocol, w.dims, subsets, w.n_classes, sizes)
    peak = matmul_peak_gflops(dev, protocol.precision)
    rec = work_record({"train_s": t_train, "probe_s": t_probe, "train_flops": real, "probe_flops": probe_flops},
                      dev, protocol.precision, t_train + t_probe)          # as run.json's work, one formula
    work = {"probe_evals": int(probe_evals), "probe_rounds": int(round(probe_rounds)), "probe_gflops": round(probe_flops / t_probe / 1e9, 2),
            "probe_frac_peak": rec["probe_frac_peak"], "floor_s": rec["floor_s"],
            "batched_over_floor": rec["wall_over_floor"],
            "default_run": default_run_training(dev, matmul_peak_gflops(dev, "float32"))}
    if not naive:                   # --batched-only: the scaling study (time per model against K)
        out = {"device": _device_label(dev), "precision": protocol.precision, "k": len(names),
               "subsets": len(subsets), "models": n_models,
               "batched_s": round(t_train + t_probe, 3), "train_s": round(t_train, 3), "probe_s": round(t_probe, 3),
               "ms_per_model": round(1000 * (t_train + t_probe) / n_models, 2),
               "useful_gflops": round(flops / t_train / 1e9, 2), "real_gflops": round(real / t_train / 1e9, 2),
               "peak_gflops": round(peak, 1), "train_frac_peak": round(real / t_train / 1e9 / peak, 3), **work}
        progress(json.dumps(out))
        return out

    # ---- naive: one module and one optimiser per model, scikit-learn probes
    n_ep = naive_epochs or w.epochs
    naive_protocol = protocol.with_(epochs=n_ep, probe_epochs=n_ep)
    scale = w.epochs / n_ep
    # All training first, then all probes: a model trained right after a scikit-learn fit ran
    # markedly slower (likely its BLAS threads still spinning on the cores; docs/benchmarks.md),
    # and --naive-epochs scaled that.  The first model pays torch's one-time start-up: time it
    # apart, so that --naive-epochs scales the training and not the start-up.
    t0 = time.perf_counter()
    train_naive(w.dims, subsets[-1], 0, xtr, ytr, samples[-1], naive_protocol.with_(epochs=1, probe_epochs=1),
                "classification", w.n_classes, dev)
    _sync(dev)
    t_start = time.perf_counter() - t0
    t_ntrain = t_nprobe = 0.0
    naive_models = []
    for (seed, _), rows in zip(stream_keys, samples):
        for s in subsets:
            t0 = time.perf_counter()
            naive_models.append((s, train_naive(w.dims, s, seed, xtr, ytr, rows, naive_protocol, "classification",
                                                w.n_classes, dev)))
            _sync(dev)
            t_ntrain += time.perf_counter() - t0
            if len(naive_models) % 25 == 0 or len(naive_models) == n_models:
                progress(f"  naive training: {len(naive_models)}/{n_models} models ({t_ntrain:.0f} s)")
    naive_test, naive_probe_acc = [], []
    for s, model in naive_models:
        with torch.no_grad():
            Xtr = {k: torch.as_tensor(xtr[k], device=dev) for k in s}
            Xte = {k: torch.as_tensor(xte[k], device=dev) for k in s}
            naive_test.append(100 * float((model(Xte).argmax(1).cpu().numpy() == yte).mean()))
            t0 = time.perf_counter()
            ztr, zte = model.encode(Xtr).cpu().numpy(), model.encode(Xte).cpu().numpy()
        mu, sd = ztr.mean(0), ztr.std(0)
        sd[sd < 1e-8] = 1.0
        clf = LogisticRegression(C=1.0 / (protocol.probe_l2 * len(ztr)), max_iter=protocol.probe_max_iter,
                                 tol=protocol.probe_tol)
        clf.fit((ztr - mu) / sd, ytr)
        naive_probe_acc.append(100 * clf.score((zte - mu) / sd, yte))
        t_nprobe += time.perf_counter() - t0
        if len(naive_probe_acc) % 25 == 0 or len(naive_probe_acc) == n_models:
            progress(f"  naive probes: {len(naive_probe_acc)}/{n_models} models ({t_nprobe:.0f} s)")
    t_ntrain = t_ntrain * scale + t_start
    peak_mem = (torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    batched_s, naive_s = t_train + t_probe, t_ntrain + t_nprobe
    out = {"device": _device_label(dev), "precision": protocol.precision,
           "batched_s": round(batched_s, 3), "naive_s": round(naive_s, 3), "speedup": round(naive_s / batched_s, 2),
           "train_speedup": round(t_ntrain / t_train, 2), "probe_speedup": round(t_nprobe / t_probe, 2),
           "useful_gflops": round(flops / t_train / 1e9, 2), "real_gflops": round(real / t_train / 1e9, 2),
           "peak_gflops": round(peak, 1), "peak_mem_mb": round(peak_mem, 1), **work}
    out["train_frac_peak"] = round(out["real_gflops"] / out["peak_gflops"], 3)
    out["naive_train_frac_peak"] = round(real / t_ntrain / 1e9 / out["peak_gflops"], 3)
    if n_ep == w.epochs:   # same epochs on both sides: their models must agree
        out["max_test_acc_diff"] = round(float(np.max(np.abs(np.array(naive_test) - batched_test))), 3)
    out["mean_probe_acc_diff"] = round(float(np.mean(np.array(naive_probe_acc) - batched_probe_acc)), 3)
    lines = [f"{'':<10}{'train s':>10}{'probe s':>10}{'total s':>10}",
             f"{'batched':<10}{t_train:>10.2f}{t_probe:>10.2f}{batched_s:>10.2f}",
             f"{'naive':<10}{t_ntrain:>10.2f}{t_nprobe:>10.2f}{naive_s:>10.2f}"
             + (f"   (naive training ran {n_ep} of {w.epochs} epochs, scaled ×{scale:g})" if n_ep != w.epochs else ""),
             f"speedup ×{out['speedup']} (training ×{out['train_speedup']}, probes ×{out['probe_speedup']}); "
             f"training: {out['real_gflops']} GFLOP/s of real work ({out['useful_gflops']} by the older 3×-forward "
             f"count) against a same-run {out['peak_gflops']} GFLOP/s matmul: {100 * out['train_frac_peak']:.0f} % of "
             f"peak (the naive loop: {100 * out['naive_train_frac_peak']:.0f} %); peak memory {out['peak_mem_mb']} MB",
             f"probes: {out['probe_evals']} problem-evaluations, {out['probe_gflops']} GFLOP/s of counted work "
             f"({100 * out['probe_frac_peak']:.0f} % of the float32 peak); the batched side took "
             f"{out['batched_over_floor']}× its floor ({out['floor_s']} s: its counted FLOPs at the peak)",
             f"the default `mmgain run` here: {out['default_run']['models']} models, training floor "
             f"{out['default_run']['train_floor_s']} s ({out['default_run']['train_flops']:.3g} FLOPs at the float32 "
             "peak; with its probes' counted work, run.json's work.floor_s)",
             "agreement: " + (f"test accuracy of the same model, largest difference {out['max_test_acc_diff']} points; "
                              if "max_test_acc_diff" in out else "")
             + f"probe accuracy, mean difference naive − batched {out['mean_probe_acc_diff']:+} points"]
    for line in lines:
        progress(line)
    progress(json.dumps(out))
    return out
