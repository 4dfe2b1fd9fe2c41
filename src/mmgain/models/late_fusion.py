"""Late-fusion models h∘g_M: per-modality encoders φ_k, a fusion, a linear head.

Two views of the same model:

* :class:`LateFusion` — one ``nn.Module`` for one subset M, with encoders keyed
  by modality name and parts injected (TorchMultimodal style).  It is the readable
  reference and what a user gets back from a batched run
  (:meth:`BatchedLateFusion.to_module`).
* :class:`BatchedLateFusion` — S "streams" (a seed, a training sample) × A
  subsets of such models held as stacked tensors, so that hundreds of small
  models train as one program of batched matmuls.

The parts are registered by name in :mod:`mmgain.models.components`.  Modalities
outside M are ⊥: the batched forward never computes them for that subset (each
modality's parameters exist only for the subsets that contain it), so a subset
model is exactly the model built without those modalities.
"""
from __future__ import annotations

import copy
import functools
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..errors import SpecError
from .components import (ACTIVATIONS, Activation, FUSIONS, HEADS, head_hidden, initial_head, initial_head_bias,
                         initial_head_out, initial_state, make_encoder, resolve_widths)
from .fused import first_layer_rows_last


def dense_latent(blocks: Mapping[str, Tensor], members: Mapping[str, Sequence[int]], names: Sequence[str],
                 n_models: int) -> Tensor:
    """Latent blocks (..., A_k, H_k) → one (..., A, Σ_k H_k) tensor in the order of ``names``,
    zeros where k ∉ M (a name without a block takes no columns)."""
    some = next(iter(blocks.values()))
    lead = some.shape[:-2]
    widths = [blocks[k].shape[-1] if k in blocks else 0 for k in names]
    z = torch.zeros(*lead, n_models, sum(widths), dtype=some.dtype, device=some.device)
    offset = 0
    for k, w in zip(names, widths):
        if k in blocks:
            z[..., list(members[k]), offset:offset + w] = blocks[k]
        offset += w
    return z


class LateFusion(nn.Module):
    """h∘g_M for one subset: ``head(fusion({k: encoders[k](x[k])}))``.

    Encoders are keyed by modality name and the fusion takes a dict, so any K and any
    registered (or hand-made) parts can be injected; :meth:`build` makes one from names.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: nn.Module, head: nn.Module):
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion, self.head = fusion, head

    def encode(self, x: Mapping[str, Tensor]) -> Tensor:
        """g_M(x): the fused latent."""
        return self.fusion({k: enc(x[k]) for k, enc in self.encoders.items()})

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.head(self.encode(x))

    @classmethod
    def build(cls, dims: Mapping[str, int], n_outputs: int, hidden: int | Mapping[str, int] = 128,
              activation: str = "relu", encoder: str = "linear", fusion: str = "concat",
              head: str = "linear", head_width: int = 64, head_activation: str = "relu") -> "LateFusion":
        """The model over the modalities of ``dims`` from registered parts, by name."""
        widths = resolve_widths(hidden, list(dims))
        fuse = FUSIONS.get(fusion)()
        return cls({k: make_encoder(encoder, d, widths[k], activation, k) for k, d in dims.items()}, fuse,
                   HEADS.get(head)(fuse.out_width(list(widths.values())), n_outputs, head_width, head_activation))

    @classmethod
    def initialized(cls, dims: Mapping[str, int], subset: Sequence[str], seed: int, n_outputs: int,
                    hidden: int | Mapping[str, int] = 128, activation: str = "relu", encoder: str = "linear",
                    fusion: str = "concat", head: str = "linear", head_width: int = 64,
                    head_activation: str = "relu") -> "LateFusion":
        """The model for ``subset`` (of the modalities in ``dims``) with the seed's initial weights."""
        names = list(dims)
        widths = resolve_widths(hidden, names)
        used = [k for k in names if k in subset]
        model = cls.build({k: dims[k] for k in used}, n_outputs, {k: widths[k] for k in used}, activation,
                          encoder, fusion, head, head_width, head_activation)
        first = model.head if head == "linear" else model.head[0]
        fan_in, out1 = first.in_features, head_hidden(head, head_width, n_outputs)
        with torch.no_grad():
            for k, enc in model.encoders.items():
                enc.load_state_dict(initial_state(enc, seed, names.index(k)))
            if model.fusion.shared_head:
                V = initial_head(seed, None, fan_in, out1)
            else:
                V = np.concatenate([initial_head(seed, names.index(k), widths[k], out1) for k in used])
            first.weight.copy_(torch.from_numpy(V.T * (1.0 / np.sqrt(fan_in))))
            first.bias.copy_(torch.from_numpy(initial_head_bias(seed, out1) * (1.0 / np.sqrt(fan_in))))
            if head != "linear":
                U, c2 = initial_head_out(seed, out1, n_outputs)
                model.head[2].weight.copy_(torch.from_numpy(U.T * (1.0 / np.sqrt(out1))))
                model.head[2].bias.copy_(torch.from_numpy(c2 * (1.0 / np.sqrt(out1))))
        return model


class BatchedLateFusion:
    """S streams × A subsets of :class:`LateFusion` models as stacked tensors.

    Parameters per modality k live only for the subsets that contain k: the encoder's,
    stacked as ``enc.<k>.<name>`` (S, A_k, *shape) (``torch.func.stack_module_state`` layout),
    and the head's first layer: ``V.<k>`` (S, A_k, H_k, O₁) per modality (concat), or one ``V``
    (S, A, H, O₁) shared by the modalities (sum), and its bias ``c`` (S, A, O₁).  With the linear
    head O₁ = O, the outputs; with the mlp head O₁ is its hidden width, and ``U`` (S, A, O₁, O) and
    ``c2`` (S, A, O) map the activated hidden layer to the outputs.  Stream s starts from seed
    ``seeds[s]``.
    """

    def __init__(self, dims: Mapping[str, int], subsets: Sequence[Sequence[str]], seeds: Sequence[int],
                 n_outputs: int, hidden: int | Mapping[str, int] = 128, activation: str = "relu",
                 device: torch.device | str = "cpu", encoder: str = "linear", fusion: str = "concat",
                 head: str = "linear", head_width: int = 64, head_activation: str = "relu"):
        self.dims = dict(dims)
        self.head, self.head_width, self.head_activation = head, int(head_width), head_activation
        self.head_hidden = head_hidden(head, head_width, n_outputs)
        self._head_act = ACTIVATIONS.get(head_activation)
        self.names = list(dims)
        self.subsets = [tuple(s) for s in subsets]
        self.seeds = [int(s) for s in seeds]
        self.n_outputs, self.activation = n_outputs, activation
        self.encoder, self.fusion = encoder, fusion
        self.widths = resolve_widths(hidden, self.names)
        self.device = torch.device(device)
        self.members = {k: [a for a, s in enumerate(self.subsets) if k in s] for k in self.names}
        self.used = [k for k in self.names if self.members[k]]
        self._members_t = {k: torch.tensor(self.members[k], device=self.device) for k in self.used}
        self.templates = {k: make_encoder(encoder, self.dims[k], self.widths[k], activation, k) for k in self.used}
        for k, t in self.templates.items():
            if any(True for _ in t.buffers()):
                raise SpecError(f"encoder {encoder!r} ({k}) has buffers (e.g. BatchNorm running statistics): the "
                                "batched trainer stacks and trains parameters only; use a buffer-free module "
                                "(LayerNorm works)")
        self._fuse = FUSIONS.get(fusion)()
        self.latent_width = self._fuse.out_width([self.widths[k] for k in self.used] or [1])
        self._runners = {k: _encoder_runner(t) for k, t in self.templates.items()}
        self.params = self._init_params()
        self._enc_names = {k: [(n[len(f"enc.{k}."):], n) for n in self.params if n.startswith(f"enc.{k}.")]
                           for k in self.used}       # (template name, stacked name): looked up every step

    # ---------------------------------------------------------------- set-up
    def _init_params(self) -> dict[str, Tensor]:
        O = self.head_hidden
        fan_in = np.array([self._fuse.out_width([self.widths[k] for k in s]) if s else 1 for s in self.subsets],
                          dtype=np.float64)
        scale = 1.0 / np.sqrt(fan_in)                                       # head fan-in per subset
        params: dict[str, Tensor] = {}
        for k in self.used:
            ki, a_k = self.names.index(k), self.members[k]
            states = [initial_state(self.templates[k], seed, ki) for seed in self.seeds]
            for name in states[0]:
                one = torch.stack([st[name] for st in states])                # (S, *shape)
                params[f"enc.{k}.{name}"] = one[:, None].expand(-1, len(a_k), *one.shape[1:]).clone()
            if not self._fuse.shared_head:
                draws = [initial_head(seed, ki, self.widths[k], O) for seed in self.seeds]
                params[f"V.{k}"] = torch.tensor(np.stack([w[None] * scale[a_k, None, None] for w in draws]),
                                                dtype=torch.float32)
        if self._fuse.shared_head:
            draws = [initial_head(seed, None, self.latent_width, O) for seed in self.seeds]
            params["V"] = torch.tensor(np.stack([w[None] * scale[:, None, None] for w in draws]), dtype=torch.float32)
        params["c"] = torch.tensor(np.stack([initial_head_bias(seed, O)[None, :] * scale[:, None]
                                             for seed in self.seeds]), dtype=torch.float32)
        if self.head != "linear":
            A, s2 = len(self.subsets), 1.0 / np.sqrt(O)
            outs = [initial_head_out(seed, O, self.n_outputs) for seed in self.seeds]
            params["U"] = torch.tensor(np.stack([np.broadcast_to(u * s2, (A, *u.shape)) for u, _ in outs]),
                                       dtype=torch.float32)
            params["c2"] = torch.tensor(np.stack([np.broadcast_to(b * s2, (A, *b.shape)) for _, b in outs]),
                                        dtype=torch.float32)
        frozen = tuple(f"enc.{k}." for k, t in self.templates.items() if getattr(t, "mmgain_frozen", False))
        return {name: p.to(self.device).requires_grad_(not name.startswith(frozen) if frozen else True)
                for name, p in params.items()}

    def with_params(self, params: Mapping[str, Tensor], seeds: Sequence[int] | None = None) -> "BatchedLateFusion":
        """The same architecture holding other (detached) parameters, e.g. a snapshot."""
        view = object.__new__(BatchedLateFusion)
        view.__dict__.update(self.__dict__)
        view.seeds = list(self.seeds if seeds is None else seeds)
        view.params = {k: v.detach() for k, v in params.items()}
        return view

    def select(self, streams: Sequence[int]) -> "BatchedLateFusion":
        """A detached copy of some streams, e.g. to probe one stream at a time."""
        idx = torch.as_tensor(list(streams), device=self.device)
        return self.with_params({k: v.index_select(0, idx) for k, v in self.params.items()},
                                [self.seeds[s] for s in streams])

    @property
    def n_streams(self) -> int:
        return len(self.seeds)

    def encoder_params(self, k: str) -> dict[str, Tensor]:
        """Modality k's stacked encoder parameters and buffers, by the template's names: (S, A_k, *shape)."""
        return {short: self.params[full] for short, full in self._enc_names[k]}

    def head_block(self, k: str) -> Tensor:
        """Modality k's head weights, (S, A_k, H_k, O): its own block (concat) or the shared head (sum)."""
        return self.params["V"][:, self._members_t[k]] if self._fuse.shared_head else self.params[f"V.{k}"]

    def linear_encoder(self, k: str) -> tuple[Tensor, Tensor]:
        """For one-Linear encoders (``encoder="linear"``): W (S, A_k, d_k, H) and b (S, A_k, H)."""
        if self.encoder != "linear":
            raise ValueError(f"encoder {self.encoder!r} is not one Linear layer")
        p = self.encoder_params(k)
        return p["0.weight"].transpose(-1, -2), p["0.bias"]

    # --------------------------------------------------------------- compute
    def _hidden_t(self, k: str, x: Tensor) -> Tensor:
        """φ_k(x) for every subset containing k, rows last: x (S, B, d_k) → (S, A_k, H_k, B).

        Rows last is the layout in which the whole chain is plain batched matmuls on
        contiguous operands: the first layer over all subsets at once, the head per
        (stream, subset); the large activations are never permuted or copied (with many
        subsets it trains faster than rows first: docs/benchmarks.md)."""
        return self._runners[k](self.encoder_params(k), x)

    def _hidden(self, k: str, x: Tensor) -> Tensor:
        """φ_k(x) for every subset containing k: x (S, B, d_k) → (S, B, A_k, H_k) (a view)."""
        return self._hidden_t(k, x).permute(0, 3, 1, 2)

    def forward(self, xs: Mapping[str, Tensor]) -> Tensor:
        """Outputs of every model: xs[k] (S, B, d_k) → (S, B, A, O) (a view of rows-last outputs)."""
        S, B = next(iter(xs.values())).shape[:2]
        out = self.params["c"][..., None].expand(-1, -1, -1, B)                     # (S, A, O₁, B)
        for k, contrib in self._contributions_t(xs).items():     # bfloat16 under autocast: summed in float32
            out = out.index_add(1, self._members_t[k], contrib.to(out.dtype))
        return self._finish_t(out).permute(0, 3, 1, 2)

    def _finish_t(self, pre: Tensor) -> Tensor:
        """The head after its first layer, rows last: (S, A, O₁, B) → (S, A, O, B); the identity for
        the linear head."""
        if self.head == "linear":
            return pre
        S, A, W, B = pre.shape
        U = self.params["U"].transpose(2, 3).reshape(S * A, self.n_outputs, W)
        h = self._head_act(pre).reshape(S * A, W, B)
        return torch.baddbmm(self.params["c2"].reshape(S * A, -1, 1).to(h.dtype), U.to(h.dtype), h).view(S, A, -1, B)

    def finish(self, pre: Tensor) -> Tensor:
        """Outputs from the head's first layer, ``c + Σ_k contributions[k]`` (S, B, A, O₁) →
        (S, B, A, O): how a model with some modalities dropped is scored whatever the head."""
        return pre if self.head == "linear" else self._finish_t(pre.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def _contributions_t(self, xs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for k in self.used:
            z = self._hidden_t(k, xs[k])                                          # (S, A_k, H, B)
            S, A, H, B = z.shape
            V = self.head_block(k).transpose(2, 3).reshape(S * A, -1, H)           # (S·A_k, O, H)
            out[k] = torch.bmm(V, z.reshape(S * A, H, B)).view(S, A, -1, B)
        return out

    def contributions(self, xs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's additive term in the head's first layer: ``{k: (S, B, A_k, O₁)}`` over the
        subsets that contain k, so that ``forward = finish(c + Σ_k contributions[k])`` (both fusions
        are additive there).  Dropping a term is the model with modality k missing (its latent zero)."""
        return {k: v.permute(0, 3, 1, 2) for k, v in self._contributions_t(xs).items()}

    def encoder_blocks(self, xs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's encoder output, ``{k: (S, B, A_k, H_k)}`` over the subsets that contain k."""
        return {k: self._hidden(k, xs[k]) for k in self.used}

    def latent_blocks(self, xs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """ĝ_M(x), the latent the head reads, as blocks keyed by :meth:`latent_members`:
        per modality for concat (a modality outside a subset has no block at all), one
        ``"fused"`` block (S, B, A, H) for sum."""
        blocks = self.encoder_blocks(xs)
        if not self._fuse.shared_head:
            return blocks
        some = next(iter(blocks.values()))
        z = torch.zeros(*some.shape[:2], len(self.subsets), some.shape[-1], dtype=some.dtype, device=some.device)
        for k, blk in blocks.items():
            z = z.index_add(2, self._members_t[k], blk)
        return {"fused": z}

    def latent_members(self) -> dict[str, list[int]]:
        """Which models each latent block belongs to (see :meth:`latent_blocks`)."""
        return dict(self.members) if not self._fuse.shared_head else {"fused": list(range(len(self.subsets)))}

    def latent(self, xs: Mapping[str, Tensor]) -> Tensor:
        """ĝ_M(x) of every model, (S, B, A, width); blocks of modalities ∉ M are zero (concat)."""
        members = self.latent_members()
        return dense_latent(self.latent_blocks(xs), members, list(members), len(self.subsets))

    # ---------------------------------------------------------------- export
    def to_module(self, stream: int, subset: int) -> LateFusion:
        """The trained model (stream, subset) as a standalone :class:`LateFusion` on the CPU."""
        sub = self.subsets[subset]
        used = [k for k in self.names if k in sub]
        model = LateFusion.build({k: self.dims[k] for k in used}, self.n_outputs, {k: self.widths[k] for k in used},
                                 self.activation, self.encoder, self.fusion, self.head, self.head_width,
                                 self.head_activation)
        first = model.head if self.head == "linear" else model.head[0]
        with torch.no_grad():
            for k, enc in model.encoders.items():
                pos = self.members[k].index(subset)
                enc.load_state_dict({n: v[stream, pos].cpu() for n, v in self.encoder_params(k).items()})
            V = self.params["V"][stream, subset] if self._fuse.shared_head else \
                torch.cat([self.params[f"V.{k}"][stream, self.members[k].index(subset)] for k in model.encoders])
            first.weight.copy_(V.T)
            first.bias.copy_(self.params["c"][stream, subset])
            if self.head != "linear":
                model.head[2].weight.copy_(self.params["U"][stream, subset].T)
                model.head[2].bias.copy_(self.params["c2"][stream, subset])
        return model


def _encoder_runner(template: nn.Module) -> Callable[[dict[str, Tensor], Tensor], Tensor]:
    """How to run a stacked encoder: ``run(params, x)`` with params (S, A_k, *shape) and
    x (S, B, d) → (S, A_k, H, B), rows last (see :meth:`BatchedLateFusion._hidden_t`).  A stack
    of Linear layers and activations runs as one matmul per layer (the first over every subset
    at once: x is shared); any other module through ``vmap`` over streams and subsets of
    ``functional_call``."""
    layers = list(template) if isinstance(template, nn.Sequential) else None
    if layers and all(isinstance(m, (nn.Linear, Activation)) for m in layers) and isinstance(layers[0], nn.Linear):
        return functools.partial(_run_linear_stack, [(str(i), m) for i, m in enumerate(layers)])
    generic = vmapped_encoder(template)
    return lambda params, x: generic(params, x).permute(0, 2, 3, 1)


def vmapped_encoder(template: nn.Module) -> Callable[[dict[str, Tensor], Tensor], Tensor]:
    """The generic stacked encoder: ``vmap`` over streams (x batched) of ``vmap`` over subsets
    (x shared) of ``functional_call(template, params, x)``; x (S, B, d) → (S, B, A_k, H)."""
    base = copy.deepcopy(template).to("meta")

    def one(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(base, p, (x,))

    return vmap(vmap(one, in_dims=(0, None), out_dims=1), in_dims=(0, 0))


def _run_linear_stack(layers, params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Linear layers (weights (S, A_k, H, d) as stored) and activations, rows last, so no
    activation is ever permuted.  The first layer runs over every subset at once (x is shared),
    its bias inside the matmul and a ReLU after it fused where the device can
    (:mod:`mmgain.models.fused`); a later layer is W·z + b per (stream, subset)."""
    S, B = x.shape[:2]
    z, first, skip = x, True, False
    for i, (name, m) in enumerate(layers):
        if isinstance(m, Activation):
            z = z if skip else m.fn(z)
            skip = False
            continue
        W, b = params[f"{name}.weight"], params.get(f"{name}.bias")          # (S, A_k, H, d), (S, A_k, H)
        A, H, d = W.shape[1:]
        if first:         # one matmul over all subsets: (S, A_k·H, d) @ (S, d, B)
            nxt = layers[i + 1][1] if i + 1 < len(layers) else None
            skip = isinstance(nxt, Activation) and nxt.name == "relu"
            z = first_layer_rows_last(W, b, x, relu=skip).view(S, A, H, B)
        else:             # one matmul per (stream, subset): (S·A_k, H, d) @ (S·A_k, d, B)
            W2, b2, z = W.reshape(S * A, H, d), None if b is None else b.reshape(S * A, H, 1), z.reshape(S * A, d, B)
            z = (torch.bmm(W2, z) if b2 is None else torch.baddbmm(b2, W2, z)).view(S, A, H, B)
        first = False
    return z
