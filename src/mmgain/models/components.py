"""The parts of a late-fusion model, registered by name (timm style): encoders φ_k, fusions, heads.

* ``ENCODERS[name](d_in, width, activation) -> nn.Module`` maps (B, d_in) to (B, width).  Any buffer-free
  module works in the batched trainer: it is stacked with ``torch.func.stack_module_state``
  and run with ``functional_call`` + ``vmap`` (the model-ensembling recipe).  Stacks of
  ``nn.Linear`` and :class:`Activation` (both built-ins) take a faster path with the same
  arithmetic: one matmul per layer over every subset of a stream.
* ``FUSIONS[name]()`` joins the per-modality latents ``{k: (..., width_k)}`` into one.  The
  batched trainer, the probes and the missing-modality study need the head to be additive
  over modalities (out = c + Σ_k z_k V_k), which both built-ins are: ``concat`` (a head
  block per modality) and ``sum`` (one head shared by all modalities; equal widths).
* ``HEADS[name](in_width, n_outputs, width, activation)``: the task head on the fused latent:
  ``linear`` (the paper's) or ``mlp`` (one hidden layer: it can represent interactions between
  modalities).  The head's first layer is additive over modalities either way; η is defined with
  the best *linear* head on the latent, whatever head trained it.

Initial weights follow one rule, :func:`initial_state`, keyed by (seed, modality): within a
seed every subset starts from the same encoder weights, which makes comparisons between subsets
paired.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import SpecError
from ..registry import Registry

ACTIVATIONS: Registry[Callable[[Tensor], Tensor]] = Registry("activation")
ACTIVATIONS.register("relu", torch.relu, "max(0, x), the paper's")
ACTIVATIONS.register("none", lambda x: x, "identity: linear encoders")


class Activation(nn.Module):
    """A registered activation as a module (elementwise; no parameters)."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.fn = name, ACTIVATIONS.get(name)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


ENCODERS: Registry[Callable[[int, int, str], nn.Module]] = Registry("encoder")


@ENCODERS.register("linear")
def linear_encoder(d_in: int, width: int, activation: str) -> nn.Module:
    """The paper's encoder: Linear(d_k, width) + activation."""
    return nn.Sequential(nn.Linear(d_in, width), Activation(activation))


@ENCODERS.register("mlp2")
def mlp2_encoder(d_in: int, width: int, activation: str) -> nn.Module:
    """Two layers: Linear(d_k, width) + activation + Linear(width, width) + activation."""
    return nn.Sequential(nn.Linear(d_in, width), Activation(activation), nn.Linear(width, width),
                         Activation(activation))


def make_encoder(name: str, d_in: int, width: int, activation: str, modality: str | None = None) -> nn.Module:
    """Modality ``modality``'s encoder from the registered part ``name`` (a part made for named
    modalities, :class:`OwnEncoders`, is told which one)."""
    make = ENCODERS.get(name)
    if getattr(make, "per_modality", False):
        return make(d_in, width, activation, modality=modality)
    return make(d_in, width, activation)


class OwnEncoders:
    """A user's encoders for some modalities (modules, possibly pretrained, or factories
    ``(d_in, width, activation) -> nn.Module``); the other modalities get the registered part
    ``default``.  ``init="keep"`` starts every seed from the modules' own weights (a pretrained
    encoder), ``"reset"`` draws them by the one rule of :func:`initial_state`; modalities in
    ``frozen`` keep their encoder fixed (only the head and the other encoders train).  Buffer-free
    modules only: the batched trainer stacks parameters, and BatchNorm's running statistics would
    be shared across the models it trains."""

    per_modality = True

    def __init__(self, modules: Mapping[str, nn.Module | Callable[[int, int, str], nn.Module]],
                 default: str = "linear", init: str = "reset", frozen: Sequence[str] = ()):
        if init not in ("keep", "reset"):
            raise SpecError(f"init must be 'keep' (the modules' own weights) or 'reset', got {init!r}")
        unknown = sorted(set(frozen) - set(modules))
        if unknown:
            raise SpecError(f"frozen names modalities without an encoder of yours: {', '.join(unknown)}")
        self.modules, self.default, self.init, self.frozen = dict(modules), default, init, set(frozen)

    def __call__(self, d_in: int, width: int, activation: str, modality: str | None = None) -> nn.Module:
        given = self.modules.get(modality)
        if given is None:
            return make_encoder(self.default, d_in, width, activation)
        module = copy.deepcopy(given) if isinstance(given, nn.Module) else given(d_in, width, activation)
        out = self.out_width(module, d_in, modality)
        if out != width:
            raise SpecError(f"your encoder for {modality!r} outputs {out} features, but its latent width (hidden) is "
                            f"{width}: give hidden={{{modality!r}: {out}, …}} (mmgain.analyze sets it for you)")
        module.mmgain_keep_weights = self.init == "keep"
        module.mmgain_frozen = modality in self.frozen
        return module


    @staticmethod
    def out_width(module: nn.Module, d_in: int, modality: str | None = None) -> int:
        """The width of a module's output on rows of ``d_in`` features (one trial forward pass)."""
        if any(True for _ in module.buffers()):
            raise SpecError(f"your encoder for {modality!r} has buffers (e.g. BatchNorm running statistics): the "
                            "batched trainer stacks and trains parameters only; use a buffer-free module "
                            "(LayerNorm works)")
        try:
            with torch.no_grad():
                out = module(torch.zeros(2, d_in))
        except Exception as exc:
            raise SpecError(f"your encoder for {modality!r} does not take rows of {d_in} features "
                            f"({type(exc).__name__}: {str(exc)[:200]})") from None
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
            raise SpecError(f"your encoder for {modality!r} must map (rows, {d_in}) to (rows, width), got "
                            f"{getattr(out, 'shape', type(out).__name__)}")
        return int(out.shape[1])


class ConcatFusion(nn.Module):
    """z = [z_k]_k, in the order of the encoders; the head has one block per modality."""

    shared_head = False

    @staticmethod
    def out_width(widths: Sequence[int]) -> int:
        return int(sum(widths))

    def forward(self, zs: Mapping[str, Tensor]) -> Tensor:
        return torch.cat(list(zs.values()), dim=-1)


class SumFusion(nn.Module):
    """z = Σ_k z_k: every modality's latent in one space, one head shared by all."""

    shared_head = True

    @staticmethod
    def out_width(widths: Sequence[int]) -> int:
        if len(set(widths)) > 1:
            raise SpecError(f"fusion 'sum' adds the modalities' latents: every encoder needs the same width, "
                            f"got {sorted(set(widths))}")
        return int(widths[0])

    def forward(self, zs: Mapping[str, Tensor]) -> Tensor:
        return torch.stack(list(zs.values())).sum(0)


def load_entry_points(group: str = "mmgain.encoders") -> list[str]:
    """Register the encoders that installed packages declare under the entry-point group
    ``mmgain.encoders`` (name → a factory ``(d_in, width, activation) -> nn.Module``), so that the
    CLI's ``--encoder`` can select them.  Returns the names registered."""
    from importlib.metadata import entry_points

    added = []
    for ep in entry_points(group=group):
        if ep.name in ENCODERS:
            continue
        try:
            ENCODERS.register(ep.name, ep.load())
            added.append(ep.name)
        except Exception as exc:       # a broken plug-in must not break mmgain: say so, go on
            warnings.warn(f"mmgain: the encoder entry point {ep.name!r} ({ep.value}) could not be loaded: "
                          f"{type(exc).__name__}: {exc}")
    return added


load_entry_points()

FUSIONS: Registry[Callable[[], nn.Module]] = Registry("fusion")
FUSIONS.register("concat", ConcatFusion)
FUSIONS.register("sum", SumFusion)

HEADS: Registry[Callable[..., nn.Module]] = Registry("head")


@HEADS.register("linear")
def linear_head(in_width: int, n_outputs: int, width: int = 64, activation: str = "relu") -> nn.Module:
    """An affine map from the fused latent to the outputs (the paper's head): with an additive
    fusion the model is a sum of per-modality functions, so it cannot show synergy."""
    return nn.Linear(in_width, n_outputs)


@HEADS.register("mlp")
def mlp_head(in_width: int, n_outputs: int, width: int = 64, activation: str = "relu") -> nn.Module:
    """One hidden layer on the fused latent: Linear(in, width) + activation + Linear(width, out).
    It can represent interactions between modalities (e.g. an XOR of two)."""
    return nn.Sequential(nn.Linear(in_width, width), Activation(activation), nn.Linear(width, n_outputs))


def head_hidden(head: str, width: int, n_outputs: int) -> int:
    """Width of the head's first layer: the outputs (linear) or the hidden layer (mlp).  The batched
    trainer knows these two heads; another registered head is refused by name."""
    if head not in ("linear", "mlp"):
        raise SpecError(f"head {head!r}: the batched trainer knows the heads 'linear' and 'mlp'")
    return n_outputs if head == "linear" else int(width)


def resolve_widths(hidden: int | Mapping[str, int], names: Sequence[str]) -> dict[str, int]:
    """Each modality's latent width: one ``hidden`` for all, or one per modality (a mapping that
    names every modality)."""
    if not isinstance(hidden, Mapping):
        return {k: int(hidden) for k in names}
    unknown, missing = sorted(set(hidden) - set(names)), [k for k in names if k not in hidden]
    if unknown or missing:
        raise SpecError("hidden widths per modality must name each modality once: "
                        + "; ".join(([f"no modality {', '.join(unknown)} in the data"] if unknown else [])
                                    + ([f"no width for {', '.join(missing)}"] if missing else [])))
    return {k: int(hidden[k]) for k in names}


# ------------------------------------------------------------------ initial weights

_HEAD = -1      # pseudo modality index of the head's own draws


def _uniform(seed: int, modality: int, role: int, shape) -> np.ndarray:
    return np.random.default_rng([int(seed), modality + 1, role]).uniform(-1.0, 1.0, shape)


def _linear_roles(j: int) -> tuple[int, int]:
    """Draw roles of the j-th Linear layer of an encoder (2 and 3 belong to the head)."""
    return (0, 1) if j == 0 else (2 * j + 2, 2 * j + 3)


def initial_state(module: nn.Module, seed: int, modality: int) -> dict[str, Tensor]:
    """The initial parameters and buffers of encoder ``module`` for (seed, modality).

    Every ``nn.Linear`` is drawn like torch's default, U(±1/√fan_in), from a generator keyed by
    (seed, modality, layer); any other parameter comes from the module's own initialisation
    under a torch seed keyed the same way.  The result does not depend on the subset.  A module
    marked to keep its weights (:class:`OwnEncoders` with ``init="keep"``) starts from them.
    """
    if getattr(module, "mmgain_keep_weights", False):        # a pretrained encoder: its own weights, every seed
        return {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                for k, v in module.state_dict().items()}
    module = copy.deepcopy(module)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(np.random.default_rng([int(seed), modality + 1, 77]).integers(2 ** 62)))
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    linears = [(name, sub) for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
    for j, (name, lin) in enumerate(linears):
        rw, rb = _linear_roles(j)
        bound = 1.0 / np.sqrt(lin.in_features)
        prefix = f"{name}." if name else ""
        state[prefix + "weight"] = torch.from_numpy(bound * _uniform(seed, modality, rw, (lin.in_features,
                                                                                    lin.out_features)).T.copy())
        if lin.bias is not None:
            state[prefix + "bias"] = torch.from_numpy(bound * _uniform(seed, modality, rb, (lin.out_features,)))
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def initial_head(seed: int, modality: int | None, width: int, n_outputs: int) -> np.ndarray:
    """A head weight block, (width, n_outputs), unscaled in U(±1): modality k's block of a
    per-modality head, or (``modality=None``) the shared head of a sum fusion.  The model scales
    it by 1/√(fan-in)."""
    return _uniform(seed, modality, 2, (width, n_outputs)) if modality is not None \
        else _uniform(seed, _HEAD, 4, (width, n_outputs))


def initial_head_bias(seed: int, n_outputs: int) -> np.ndarray:
    return _uniform(seed, _HEAD, 3, (n_outputs,))


def initial_head_out(seed: int, width: int, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """The mlp head's second layer, weight (width, n_outputs) and bias (n_outputs,), unscaled in
    U(±1); the model scales both by 1/√width."""
    return _uniform(seed, _HEAD, 5, (width, n_outputs)), _uniform(seed, _HEAD, 6, (n_outputs,))
