"""Command line: ``mmgain run``, ``mmgain reproduce synthetic|iemocap``, ``mmgain list``.

Every command builds an :class:`ExperimentSpec` and hands it to the one runner;
this module only parses arguments, manages the run folder and prints.
"""
from __future__ import annotations

import argparse
import errno
import math
import signal
import sys
from pathlib import Path

from .data.sources import SOURCES
from .errors import SpecError, Terminated, UserError
from .catalog import EXPERIMENTS
from .spec import ExperimentSpec
from .run.backends import BACKENDS
from . import api
from .api import Execution, configure, read_run
from .models import ACTIVATIONS, ENCODERS, FUSIONS, HEADS
from .probes import PROBES
from .report.html import build_report
from .report.layouts import LAYOUTS
from .training.batched import DEVICE_FORMS, set_threads
from .training.protocol import PRECISIONS, PROTOCOLS

PRECISION_HELP = ("arithmetic of training: float32 (default), or bfloat16 (autocast; faster training on CPUs with "
                  "AMX/AVX512-BF16 and on GPUs; probes stay float32)")


def _int_in(lo: int, hi: int):
    """An argparse type: a whole number in [lo, hi] (a clear exit-2 message otherwise)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must lie in {lo}..{hi:,}, got {v:,}")
        return v
    return parse


def _float_in(lo: float, hi: float, low_open: bool = True):
    """An argparse type: a finite number in (lo, hi] (or [lo, hi] with ``low_open=False``)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(v) and (v > lo if low_open else v >= lo) and v <= hi):
            raise argparse.ArgumentTypeError(f"must be a finite number in {'(' if low_open else '['}{lo:g}, {hi:g}], "
                                             f"got {text}")
        return v
    return parse


SEEDS, EPOCHS, BIG = _int_in(1, 10_000), _int_in(1, 100_000), _int_in(1, 10 ** 7)
GB = _float_in(0, 1e6)


def _groups(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The option groups of a training command, in the order ``--help`` shows them."""
    return {"data": p.add_argument_group("data"),
            "design": p.add_argument_group("design", "what is trained and compared"),
            "answer": p.add_argument_group("answer (what to forecast and choose; analysis only, no extra training)"),
            "protocol": p.add_argument_group("protocol", "how each model is trained (overrides of the preset)"),
            "outputs": p.add_argument_group("outputs"),
            "execution": p.add_argument_group("execution")}


def _add_common(p: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The options every training command has; returns the groups for the command's own."""
    g = _groups(p)
    d = g["design"]
    d.add_argument("--subsets", help="comma-separated subsets such as 'm1,m1+m2'; or 'all' (2^K − 1), "
                                     "'singles+pairs+full', 'leave-one-out' (the full set and K sets without "
                                     "one modality), 'forward' (greedy: add the best modality one at a time, "
                                     "chosen on held-out training rows), 'sampled:N' (prefixes of N random "
                                     "orderings); default: all up to 8 modalities, sampled:32 above")
    d.add_argument("--seeds", type=SEEDS, help="number of seeds (0..N-1); default: the spec's (run: 1 with "
                                             "cross-fitting, 5 on a fixed split)")
    d.add_argument("--theory", action="store_true",
                   help="measure the terms of the paper's Theorems 1 and 2 for every pair and sample size "
                        "(bounded loss, Rademacher brackets, label-flip fits: about twice the training); "
                        "adds theory.csv and a section of the report")
    t = g["protocol"]
    t.add_argument("--protocol", choices=PROTOCOLS.names(), help="training protocol preset")
    t.add_argument("--epochs", type=EPOCHS)
    t.add_argument("--lr", type=_float_in(0, 1e30))
    t.add_argument("--batch-size", type=BIG)
    t.add_argument("--hidden", type=_widths, metavar="H|k=H,…",
                   help="encoder width: one for all modalities, or per modality, e.g. 'text=64,audio=32,video=128'")
    t.add_argument("--activation", choices=ACTIVATIONS.names())
    t.add_argument("--encoder", choices=ENCODERS.names(), help="each modality's encoder (default: the protocol's)")
    t.add_argument("--fusion", choices=FUSIONS.names(), help="how the encoders' latents are joined")
    t.add_argument("--head", choices=HEADS.names(),
                   help="the task head on the fused latent: linear (the paper's; additive in the modalities, so "
                        "it cannot show synergy) or mlp (one hidden layer: can represent interactions)")
    t.add_argument("--head-width", type=_int_in(1, 1_000_000), help="width of the mlp head's hidden layer (default 64)")
    t.add_argument("--head-activation", choices=ACTIVATIONS.names(), help="activation of the mlp head (default relu)")
    t.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    o = g["outputs"]
    o.add_argument("--out", type=Path, help="run folder (default: a new folder under runs/)")
    o.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    o.add_argument("--quiet", action="store_true", help="no progress display, tables only")
    e = g["execution"]
    e.add_argument("--device", default="auto", help=f"{DEVICE_FORMS} (default: auto)")
    e.add_argument("--threads", type=_int_in(1, 4096),
                   help="compute threads (default: the CPUs this process may use). Running several jobs "
                        "at once? Give each a share, e.g. --threads 1 for two jobs on 2 cores")
    e.add_argument("--yes", action="store_true",
                   help="run even when the up-front estimate exceeds the limits (models, hours, memory)")
    _add_engine(e)
    e.add_argument("--memory-gb", type=GB,
                   help="memory for one chunk of streams trained together (default: half the free GPU "
                        "memory, 2 GB on CPU); smaller means more, smaller chunks")
    e.add_argument("--resume", type=Path, metavar="DIR",
                   help="continue the interrupted run in DIR (same data, spec and protocol; checked)")
    return g


def _add_engine(p) -> None:
    """What runs the chunks; also what ``mmgain resume`` may change."""
    p.add_argument("--backend", default="local", choices=BACKENDS.names(),
                   help="local: this process (default); ray: chunks as Ray tasks (pip install 'mmgain[ray]')")
    p.add_argument("--address", help="with --backend ray: an existing cluster (e.g. ray://head:10001 or auto); "
                                     "default: a new local instance")


def _add_sweep(g: dict[str, argparse._ArgumentGroup]) -> None:
    """The options of a sweep (every subset × sample size): ``run``, ``reproduce iemocap`` …"""
    d = g["design"]
    d.add_argument("--ratios", type=float, nargs="+", help="sample-size ratios in (0, 1] (default 1e-4 1e-3 1e-2 1e-1 1)")
    d.add_argument("--grid", choices=["paper", "dense"],
                   help="paper: the ratios above (default); dense: ~12 geometric sample sizes from 5 rows per "
                        "class to the full training set, for learning curves and the crossover m*")
    d.add_argument("--cv", type=_int_in(0, 1000), metavar="K",
                   help="cross-fit over K folds: every row is scored once, by models that did not train on it "
                        "(stratified; grouped when the data have groups). Default: 5 for data without a split of "
                        "their own, else their split; --cv 0 keeps one fixed split")
    d.add_argument("--primary", metavar="M:N,…",
                   help="the confirmatory questions, e.g. 'text+audio:text,text+video:text' (at the largest sample "
                        "size; default: each modality added to all the others). Their intervals are simultaneous; "
                        "every other pair is exploratory")
    d.add_argument("--margin", type=_float_in(0, 1e12),
                   help="equivalence margin for a 'no effect' verdict, in accuracy points (classification, "
                        "default 1) or MSE units (regression, default 1%% of the target variance)")
    d.add_argument("--null-control", action="store_true",
                   help="also train N + perm(k) for every pair (N+k, N): a row-permuted copy of k that "
                        "carries no information (one extra model per pair and stream)")
    d.add_argument("--probes", metavar="NAME,…",
                   help="registered probes to fit beside the paper's on every latent, compared in one run "
                        f"(their columns: <name>_acc …); registered: {', '.join(n for n in PROBES.names() if n != 'paper') or 'none besides paper'}")
    a = g["answer"]
    a.add_argument("--target-n", type=_int_in(1, 10 ** 12), metavar="N",
                   help="rows at which to forecast each modality's gain (default: 2× the largest sample "
                        "measured; beyond it the forecast is flagged extrapolated)")
    a.add_argument("--costs", metavar="k=C,…",
                   help="what each modality costs, e.g. 'text=1,audio=3,video=10' (default 1 each), for the "
                        "best subset under --budget")
    a.add_argument("--budget", type=_float_in(0, 1e300, low_open=False), metavar="B",
                   help="the most a subset may cost: the best affordable subset, at the largest sample and at "
                        "--target-n (with unit costs: the best B of K modalities)")
    g["protocol"].add_argument("--probe-epochs", type=EPOCHS,
                               help="epochs after which the encoder is frozen for the probe")
    g["data"].add_argument("--max-load-gb", type=GB,
                           help="memory cap for loading a pickled feature file (default 4 GB)")


RUN_EXAMPLES = """examples:
  mmgain run --quick                     a first answer on the embedded mfeat digits
  mmgain run --data my.npz --cv 5        every subset of your modalities, cross-fitted over 5 folds
  mmgain run --data feats/ --primary 'image+text:image' --grid dense
                                         one confirmatory question, with learning curves and m*

data formats: docs/guide/your-data.md; the run folder: docs/guide/run-folder.md"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmgain", description="Does adding a modality help, from how much data on, and why? "
                                   "(Huang et al., NeurIPS 2021)")
    from ._version import __version__
    parser.add_argument("--version", action="version", version=f"mmgain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="reproduce one of the paper's experiments")
    rsub = rep.add_subparsers(dest="experiment", required=True)
    syn = rsub.add_parser("synthetic", help="the overlap study (paper Table 4, Fig. 2b)")
    g = _add_common(syn)
    g["data"].add_argument("--overlaps", type=float, nargs="+", help="overlap values ρ (default 1.0 0.8 0.5 0.2 0.0)")
    g["data"].add_argument("--n-train", type=BIG, help="training samples per seed (default 7000)")
    g["data"].add_argument("--n-test", type=BIG, help="test samples per seed (default 3000)")
    syn.set_defaults(build=_synthetic_spec)

    iem = rsub.add_parser("iemocap", help="the IEMOCAP study (paper Tables 1–3, Fig. 2a) on your feature file")
    g = _add_common(iem)
    g["data"].add_argument("--data", required=True, help="path to IEMOCAP_features_raw.pkl (bc-LSTM features)")
    _add_sweep(g)
    iem.set_defaults(build=_iemocap_spec)

    for name in EXPERIMENTS.names():            # every registered experiment can be reproduced by name
        if name not in ("synthetic", "iemocap"):
            gen = rsub.add_parser(name, help=f"the registered experiment {name!r} with its own data and settings")
            _add_sweep(_add_common(gen))
            gen.set_defaults(build=lambda args, name=name: _options(EXPERIMENTS.get(name), args))

    run = sub.add_parser("run", help="every subset × sample size × seed on a dataset (default: embedded mfeat)",
                         usage="%(prog)s [--data PATH] [--quick] [options]",
                         description="Does adding each modality help, from how much data on, and why? Trains\n"
                                     "every modality subset × sample size × seed, probes the latents and writes\n"
                                     "the verdicts, tables and report.html to a run folder.",
                         epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = _add_common(run)
    g["data"].add_argument("--data", default="mfeat",
                           help="a registered dataset (mfeat) or a path: .npz, IEMOCAP .pkl, or a folder")
    g["data"].add_argument("--task", choices=["classification", "regression"],
                           help="task of a .npz or folder dataset (default classification)")
    g["data"].add_argument("--split-seed", type=_int_in(0, 2 ** 32 - 1),
                           help="seed of the split made for data without one (default 0)")
    g["data"].add_argument("--test-fraction", type=_float_in(0, 0.95), help="test share of that split (default 0.2)")
    g["design"].add_argument("--quick", action="store_true",
                             help="a first answer: the full set and each set without one modality "
                                  "(leave-one-out), at ratios 0.1 and 1; --subsets / --ratios given win")
    _add_sweep(g)
    run.set_defaults(build=_run_spec)

    res = sub.add_parser("resume", help="continue an interrupted run in its folder (what is done is kept)")
    res.add_argument("dir", type=Path, help="the run folder")
    res.add_argument("--device", default="auto", help=f"{DEVICE_FORMS} (default: auto)")
    res.add_argument("--threads", type=_int_in(1, 4096), help="compute threads (default: the CPUs this process may use)")
    res.add_argument("--quiet", action="store_true", help="no progress bar, tables only")
    res.add_argument("--yes", action="store_true", help="run even when the estimate exceeds the limits")
    _add_engine(res)
    res.set_defaults(build=_resume_spec)

    rpt = sub.add_parser("report", help="(re)build report.html of a run folder from its files alone")
    rpt.add_argument("dir", type=Path, help="the run folder (summary.json and run.json are needed)")
    rpt.set_defaults(build=None)

    col = sub.add_parser("collect", help="write results.csv and summary.json of a run folder from its store, "
                                         "also of an unfinished run (nothing is trained)")
    col.add_argument("dir", type=Path, help="the run folder")
    col.set_defaults(build=None)

    ben = sub.add_parser("bench", help="time the batched trainer and probe against the naive per-model loop")
    ben.add_argument("--quick", action="store_true", help="a reduced workload that runs in seconds (CI smoke test)")
    ben.add_argument("--device", default="auto", help=f"{DEVICE_FORMS} (default: auto)")
    ben.add_argument("--naive-epochs", type=int, help="run the naive side for fewer epochs and scale its training "
                                                      "time linearly (said in the output)")
    ben.add_argument("--k", type=int, help="a synthetic lattice of K modalities (all 2^K − 1 subsets) instead")
    ben.add_argument("--seeds", type=SEEDS, help="seeds (default 5; --quick 2)")
    ben.add_argument("--batched-only", action="store_true",
                     help="time mmgain's side only (with --k: the scaling study, time per model against K)")
    ben.add_argument("--threads", type=_int_in(1, 4096), help="compute threads (default: the CPUs this process may use)")
    ben.add_argument("--encoder", choices=ENCODERS.names(), help="encoder of every model (default: linear)")
    ben.add_argument("--fusion", choices=FUSIONS.names(), help="fusion of every model (default: concat)")
    ben.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP + "; both sides train in it")
    ben.set_defaults(build=None)

    lst = sub.add_parser("list", help="list experiments, protocols, data sources and model parts")
    lst.set_defaults(build=None)
    return parser


def _widths(text: str):
    """``--hidden``: ``128`` or ``text=64,audio=32``."""
    if "=" not in text:
        return int(text)
    out = {}
    for part in text.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip() or not v.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{part!r} is not modality=width (e.g. 'text=64,audio=32')")
        out[k.strip()] = int(v)
    return out


def _options(spec: ExperimentSpec, args, data_args: dict | None = None) -> ExperimentSpec:
    """``spec`` with the command's flags (:func:`mmgain.api.configure`: the API's keywords are the same)."""
    sweep = {k: getattr(args, k, None) for k in ("ratios", "grid", "margin", "null_control", "cv", "primary",
                                                  "probe_epochs", "probes", "costs", "budget", "target_n")}
    return configure(spec, seeds=args.seeds, subsets=args.subsets, protocol=args.protocol, theory=args.theory,
                     data_args=data_args, quick=getattr(args, "quick", False), quiet=False, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                     hidden=args.hidden, activation=args.activation, encoder=args.encoder, fusion=args.fusion,
                     head=args.head, head_width=args.head_width, head_activation=args.head_activation,
                     precision=args.precision, **sweep)


def _synthetic_spec(args) -> ExperimentSpec:
    spec = EXPERIMENTS.get("synthetic")
    data_args = dict(spec.data_args)
    if args.n_train is not None:
        data_args["n_train"] = args.n_train
    if args.n_test is not None:
        data_args["n_test"] = args.n_test
    variants = tuple({"overlap": r} for r in args.overlaps) if args.overlaps else None
    return _options(spec.with_(data_args=data_args, variants=variants), args)


def _run_spec(args) -> ExperimentSpec:
    return _options(EXPERIMENTS.get("run").with_(data=args.data), args,
                    {"task": args.task, "split_seed": args.split_seed, "test_fraction": args.test_fraction,
                     "max_load_gb": args.max_load_gb})


def _iemocap_spec(args) -> ExperimentSpec:
    if Path(args.data).suffix not in (".pkl", ".pickle"):
        raise SpecError(f"reproduce iemocap compares with the paper's IEMOCAP numbers and needs the bc-LSTM "
                        f"feature file IEMOCAP_features_raw.pkl, not {args.data}; use 'mmgain run --data "
                        f"{args.data}' for other data")
    return _options(EXPERIMENTS.get("iemocap").with_(data=args.data), args, {"max_load_gb": args.max_load_gb})


def _resume_spec(args) -> ExperimentSpec:
    args.resume = args.dir
    return ExperimentSpec.from_dict(read_run(args.dir)["spec"], source=str(args.dir / "run.json"))


def execute(spec: ExperimentSpec, args) -> int:
    """Run ``spec`` into a run folder (:func:`mmgain.api.execute`) with the command's flags."""
    how = Execution(device=args.device, threads=args.threads, backend=args.backend, address=args.address,
                    memory_gb=getattr(args, "memory_gb", None), allow_large=args.yes, progress=not args.quiet,
                    out=getattr(args, "out", None), overwrite=getattr(args, "overwrite", False),
                    resume=getattr(args, "resume", None))
    return api.execute(spec, how)[0]


def _list() -> int:
    for title, reg in (("experiments", EXPERIMENTS), ("protocols", PROTOCOLS), ("data sources", SOURCES),
                       ("activations", ACTIVATIONS), ("encoders", ENCODERS),
                       ("fusions", FUSIONS), ("heads", HEADS), ("probes", PROBES), ("layouts", LAYOUTS)):
        print(f"{title}:")
        width = max(map(len, reg.names()), default=0)
        for name in reg.names():
            print(f"  {name:<{width}}  {reg.describe(name)}".rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:          # usage errors (argparse printed them), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "list":
            return _list()
        if args.command == "collect":
            return api.collect(args.dir)
        if args.command == "bench":
            from .run.bench import run_bench
            set_threads(args.threads)
            run_bench(args.quick, args.device, args.naive_epochs, args.k, args.seeds, naive=not args.batched_only,
                      encoder=args.encoder, fusion=args.fusion, precision=args.precision)
            return 0
        if args.command == "report":
            print(f"report: {build_report(args.dir)}")
            return 0
        return execute(args.build(args), args)
    except UserError as exc:          # the user can fix it: the message, no traceback
        print(f"mmgain: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"mmgain: error: the disk is full{where} ({exc.strerror}). Chunks already committed to a run "
              "folder's store/ are kept whole; free some space, then continue with: mmgain resume DIR "
              "(or mmgain collect DIR)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("\nmmgain: interrupted; the run folder's run.json says so", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    """SIGTERM ends a run like Ctrl-C: cleanly, with what finished kept."""
    raise Terminated()
