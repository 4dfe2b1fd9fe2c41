"""Command line: ``mmgain run``, ``mmgain reproduce synthetic|iemocap``, ``mmgain list``.

Every command builds an :class:`ExperimentSpec` and hands it to the one runner;
this module only parses arguments, manages the run folder and prints.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

from .data.sources import SOURCES
from .errors import DataError, DataWarning, SpecError, UserError
from .experiments import EXPERIMENTS, ExperimentSpec, run_experiment
from .models.late_fusion import ACTIVATIONS
from .report.layouts import LAYOUTS
from .report.outputs import prepare_out_dir, write_csv, write_json, write_outcomes
from .training.batched import DEVICE_FORMS, resolve_device, set_threads
from .training.protocol import PROTOCOLS


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, help="number of seeds (0..N-1); default: the spec's (5)")
    p.add_argument("--out", type=Path, help="run folder (default: a new folder under runs/)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    p.add_argument("--device", default="auto", help=f"{DEVICE_FORMS} (default: auto)")
    p.add_argument("--subsets", help="comma-separated subsets such as 'm1,m1+m2', or 'all'")
    p.add_argument("--protocol", choices=PROTOCOLS.names(), help="training protocol preset")
    g = p.add_argument_group("protocol overrides")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--hidden", type=int)
    g.add_argument("--activation", choices=ACTIVATIONS.names())
    p.add_argument("--quiet", action="store_true", help="no progress bar, tables only")
    p.add_argument("--threads", type=int,
                   help="compute threads (default: the CPUs this process may use). Running several jobs "
                        "at once? Give each a share, e.g. --threads 1 for two jobs on 2 cores")
    p.add_argument("--yes", action="store_true",
                   help="run even when the up-front estimate exceeds the limits (models, hours, memory)")


def _add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ratios", type=float, nargs="+", help="sample-size ratios in (0, 1] (default 1e-4 1e-3 1e-2 1e-1 1)")
    p.add_argument("--probe-epochs", type=int, help="epochs after which the encoder is frozen for the probe")
    p.add_argument("--max-load-gb", type=float,
                   help="memory cap for loading a pickled feature file (default 4 GB)")
    p.add_argument("--margin", type=float,
                   help="equivalence margin for a 'no effect' verdict, in accuracy points (classification, "
                        "default 1) or MSE units (regression, default 1%% of the target variance)")
    p.add_argument("--null-control", action="store_true",
                   help="also train N + perm(k) for every pair (N+k, N): a row-permuted copy of k that "
                        "carries no information (one extra model per pair and stream)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmgain", description="Does adding a modality help, from how much data on, and why? "
                                   "(Huang et al., NeurIPS 2021)")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="reproduce one of the paper's experiments")
    rsub = rep.add_subparsers(dest="experiment", required=True)
    syn = rsub.add_parser("synthetic", help="the overlap study (paper Table 4, Fig. 2b)")
    _add_common(syn)
    syn.add_argument("--overlaps", type=float, nargs="+", help="overlap values ρ (default 1.0 0.8 0.5 0.2 0.0)")
    syn.add_argument("--n-train", type=int, help="training samples per seed (default 7000)")
    syn.add_argument("--n-test", type=int, help="test samples per seed (default 3000)")
    syn.set_defaults(build=_synthetic_spec)

    iem = rsub.add_parser("iemocap", help="the IEMOCAP study (paper Tables 1–3, Fig. 2a) on your feature file")
    iem.add_argument("--data", required=True, help="path to IEMOCAP_features_raw.pkl (bc-LSTM features)")
    _add_common(iem)
    _add_sweep(iem)
    iem.set_defaults(build=_iemocap_spec)

    run = sub.add_parser("run", help="every subset × sample size × seed on a dataset (default: embedded mfeat)")
    run.add_argument("--data", default="mfeat",
                     help="a registered dataset (mfeat) or a path: .npz, IEMOCAP .pkl, or a folder (see README)")
    run.add_argument("--task", choices=["classification", "regression"],
                     help="task of a .npz or folder dataset (default classification)")
    run.add_argument("--split-seed", type=int, help="seed of the split made for data without one (default 0)")
    run.add_argument("--test-fraction", type=float, help="test share of that split (default 0.2)")
    _add_common(run)
    _add_sweep(run)
    run.set_defaults(build=_run_spec)

    lst = sub.add_parser("list", help="list experiments, protocols, data sources, activations")
    lst.set_defaults(build=None)
    return parser


def _apply_common(spec: ExperimentSpec, args) -> ExperimentSpec:
    overrides = dict(spec.protocol_overrides)
    overrides.update({k: v for k, v in {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                                        "hidden": args.hidden, "activation": args.activation}.items()
                      if v is not None})
    return spec.with_(seeds=args.seeds, subsets=args.subsets, protocol=args.protocol,
                      protocol_overrides=overrides)


def _synthetic_spec(args) -> ExperimentSpec:
    spec = EXPERIMENTS.get("synthetic")
    data_args = dict(spec.data_args)
    if args.n_train is not None:
        data_args["n_train"] = args.n_train
    if args.n_test is not None:
        data_args["n_test"] = args.n_test
    variants = tuple({"overlap": r} for r in args.overlaps) if args.overlaps else None
    return _apply_common(spec.with_(data_args=data_args, variants=variants), args)


def _sweep_overrides(spec: ExperimentSpec, args) -> ExperimentSpec:
    overrides = dict(spec.protocol_overrides)
    if args.probe_epochs is not None:
        overrides["probe_epochs"] = args.probe_epochs
    elif args.epochs is not None:
        preset = PROTOCOLS.get(args.protocol or spec.protocol).probe_epochs
        if preset is not None and preset > args.epochs:
            print(f"mmgain: --epochs {args.epochs} is below the preset's probe budget ({preset}); "
                  f"probing after {args.epochs} epochs", file=sys.stderr)
            overrides["probe_epochs"] = args.epochs
    return spec.with_(ratios=tuple(args.ratios) if args.ratios else None, protocol_overrides=overrides,
                      margin=args.margin, null_control=args.null_control or None)


def _run_spec(args) -> ExperimentSpec:
    data_args = {k: v for k, v in {"task": args.task, "split_seed": args.split_seed,
                                   "test_fraction": args.test_fraction, "max_load_gb": args.max_load_gb}.items()
                 if v is not None}
    spec = EXPERIMENTS.get("run").with_(data=args.data, data_args=data_args)
    return _sweep_overrides(_apply_common(spec, args), args)


def _iemocap_spec(args) -> ExperimentSpec:
    if Path(args.data).suffix not in (".pkl", ".pickle"):
        raise SpecError(f"reproduce iemocap compares with the paper's IEMOCAP numbers and needs the bc-LSTM "
                        f"feature file IEMOCAP_features_raw.pkl, not {args.data}; use 'mmgain run --data "
                        f"{args.data}' for other data")
    spec = EXPERIMENTS.get("iemocap").with_(data=args.data, data_args={"max_load_gb": args.max_load_gb}
                                            if args.max_load_gb is not None else None)
    return _sweep_overrides(_apply_common(spec, args), args)


def execute(spec: ExperimentSpec, args) -> int:
    """Run a spec into a run folder; run.json says 'running', then 'complete', 'diverged',
    'failed' or 'interrupted'.  A command that fails on the user's input before anything was
    trained leaves no folder behind."""
    if spec.data not in SOURCES and not Path(spec.data).exists():   # a typo makes no run folder
        raise DataError(f"{spec.data}: no such file or folder, and no registered dataset of that name "
                        f"({', '.join(SOURCES.names())})")
    resolve_device(args.device)      # a bad --device is answered before any folder is made
    threads = set_threads(args.threads)
    out, created = prepare_out_dir(args.out, spec.name, overwrite=args.overwrite,
                                   data=None if spec.data in SOURCES else spec.data)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    status = {"status": "running", "started": started, "command": sys.argv, "spec": spec.to_dict(),
              "threads": threads}
    write_json(out / "run.json", status)
    print(f"mmgain: run folder {out}", file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            result = run_experiment(spec, device=args.device, progress=not args.quiet, allow_large=args.yes)
        except UserError:
            if created:              # nothing was trained: leave nothing behind
                shutil.rmtree(out, ignore_errors=True)
            else:
                write_json(out / "run.json", {**status, "status": "failed"})
            raise
        except BaseException as exc:
            write_json(out / "run.json", {**status, "status": "failed" if not isinstance(exc, KeyboardInterrupt)
                                          else "interrupted", "error": f"{type(exc).__name__}: {exc}"})
            raise
    notes = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for w in caught:
        if not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for note in notes:
        print(f"mmgain: warning: {note}", file=sys.stderr)
    write_csv(out / "results.csv", result.table())
    write_outcomes(out / "outcomes.npz", result)
    extra = ["outcomes.npz"]
    ds = result.groups[0].dataset
    if "split" in ds.notes:  # a split we made: record which row went where
        write_csv(out / "split.csv", [{"row": i, "part": p, **({"group": g} if ds.groups is not None else {})}
                                      for i, (p, g) in enumerate(zip(ds.split, ds.groups if ds.groups is not None
                                                                     else ds.split))])
        extra.append("split.csv")
    write_json(out / "summary.json", result.summary)
    all_diverged = bool((result.metrics["diverged"] > 0).all())
    layout = LAYOUTS.get(spec.layout)
    figs = [] if all_diverged else layout.figures(result, out)
    write_json(out / "run.json", {**status, "status": "diverged" if all_diverged else "complete", **result.meta,
                                  "warnings": notes, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                  "files": ["results.csv", "summary.json"] + extra + [f.name for f in figs]})
    if all_diverged:
        print(f"mmgain: error: every one of the {result.meta['n_models']} models diverged (non-finite loss); "
              f"nothing to compare. Lower --lr (now {spec.resolved_protocol().lr:g}). Outputs are in {out}/",
              file=sys.stderr)
        return 3
    print(layout.text(result))
    print(f"\n{result.meta['n_models']} models, {result.meta['wall_time_s']:.1f} s on {result.meta['device']}; "
          f"wrote {out}/ (results.csv, summary.json, run.json{''.join(', ' + f for f in extra + [g.name for g in figs])})")
    return 0


def _list() -> int:
    for title, reg in (("experiments", EXPERIMENTS), ("protocols", PROTOCOLS), ("data sources", SOURCES),
                       ("activations", ACTIVATIONS), ("layouts", LAYOUTS)):
        print(f"{title}: {', '.join(reg.names())}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        return execute(args.build(args), args)
    except UserError as exc:          # the user can fix it: the message, no traceback
        print(f"mmgain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmmgain: interrupted; the run folder's run.json says so", file=sys.stderr)
        return 130
