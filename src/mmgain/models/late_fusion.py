"""Late-fusion models h∘g_M: per-modality encoders φ_k, concatenation, a linear head.

Two views of the same model:

* :class:`LateFusion` — one ``nn.Module`` for one subset M, with encoders keyed
  by modality name (TorchMultimodal style).  It is the readable reference and
  what a user gets back from a batched run (:meth:`BatchedLateFusion.to_module`).
* :class:`BatchedLateFusion` — S "streams" (a seed, a training sample) × A
  subsets of such models held as stacked tensors, so that hundreds of small
  models train as one program of batched matmuls.

Modalities outside M are ⊥: the batched forward never computes them for that
subset (each modality's parameters exist only for the subsets that contain it),
so a subset model is exactly the model built without those modalities.

Initial weights follow one rule, :func:`initial_weights`, keyed by (seed,
modality): within a seed every subset starts from the same encoder weights,
which makes comparisons between subsets paired.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..registry import Registry

ACTIVATIONS: Registry[Callable[[Tensor], Tensor]] = Registry("activation")
ACTIVATIONS.register("relu", torch.relu)
ACTIVATIONS.register("none", lambda x: x)

_HEAD_BIAS = -1  # pseudo modality index for the head bias draw


def _uniform(seed: int, modality: int, role: int, shape) -> np.ndarray:
    return np.random.default_rng([int(seed), modality + 1, role]).uniform(-1.0, 1.0, shape)


def initial_weights(seed: int, modality: int, d_in: int, hidden: int, n_outputs: int) -> dict[str, np.ndarray]:
    """Initial weights of modality ``modality``'s encoder and head block.

    Like ``nn.Linear``'s default: U(±1/√fan_in).  The head block is returned
    unscaled in U(±1); the model scales it by 1/√(|M|·hidden), its fan-in.
    """
    bound = 1.0 / np.sqrt(d_in)
    return {
        "W": bound * _uniform(seed, modality, 0, (d_in, hidden)),
        "b": bound * _uniform(seed, modality, 1, (hidden,)),
        "V": _uniform(seed, modality, 2, (hidden, n_outputs)),
    }


def initial_head_bias(seed: int, n_outputs: int) -> np.ndarray:
    return _uniform(seed, _HEAD_BIAS, 3, (n_outputs,))


def dense_latent(blocks: Mapping[str, Tensor], members: Mapping[str, Sequence[int]], names: Sequence[str],
                 n_models: int, hidden: int) -> Tensor:
    """Per-modality latent blocks (..., A_k, H) → one (..., A, K·H) tensor, zeros where k ∉ M."""
    lead = next(iter(blocks.values())).shape[:-2]
    some = next(iter(blocks.values()))
    z = torch.zeros(*lead, n_models, len(names) * hidden, dtype=some.dtype, device=some.device)
    for k, blk in blocks.items():
        i = list(names).index(k)
        z[..., list(members[k]), i * hidden:(i + 1) * hidden] = blk
    return z


class LateFusion(nn.Module):
    """h∘g_M for one subset: ``encoders[k] = Linear(d_k, hidden)`` + activation, concat, linear head."""

    def __init__(self, dims: Mapping[str, int], n_outputs: int, hidden: int = 128, activation: str = "relu"):
        super().__init__()
        self.activation = activation
        self._act = ACTIVATIONS.get(activation)
        self.encoders = nn.ModuleDict({k: nn.Linear(d, hidden) for k, d in dims.items()})
        self.head = nn.Linear(hidden * len(dims), n_outputs)

    def encode(self, x: Mapping[str, Tensor]) -> Tensor:
        """g_M(x): the latent, concatenated in the order of ``self.encoders``."""
        return torch.cat([self._act(enc(x[k])) for k, enc in self.encoders.items()], dim=-1)

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        return self.head(self.encode(x))

    @classmethod
    def initialized(cls, dims: Mapping[str, int], subset: Sequence[str], seed: int, n_outputs: int,
                    hidden: int = 128, activation: str = "relu") -> "LateFusion":
        """The model for ``subset`` (of the modalities in ``dims``) with the seed's initial weights."""
        names = list(dims)
        model = cls({k: dims[k] for k in names if k in subset}, n_outputs, hidden, activation)
        scale = 1.0 / np.sqrt(len(model.encoders) * hidden)
        head_w = []
        with torch.no_grad():
            for k, enc in model.encoders.items():
                w = initial_weights(seed, names.index(k), dims[k], hidden, n_outputs)
                enc.weight.copy_(torch.from_numpy(w["W"].T))
                enc.bias.copy_(torch.from_numpy(w["b"]))
                head_w.append(torch.from_numpy(w["V"].T * scale))
            model.head.weight.copy_(torch.cat(head_w, dim=1))
            model.head.bias.copy_(torch.from_numpy(initial_head_bias(seed, n_outputs) * scale))
        return model


class BatchedLateFusion:
    """S streams × A subsets of :class:`LateFusion` models as stacked tensors.

    Parameters per modality k live only for the subsets that contain k:
    ``W[k]`` (S, d_k, A_k, H), ``b[k]`` (S, A_k, H), ``V[k]`` (S, A_k, H, O);
    the head bias ``c`` is (S, A, O).  Stream s starts from seed ``seeds[s]``.
    """

    def __init__(self, dims: Mapping[str, int], subsets: Sequence[Sequence[str]], seeds: Sequence[int],
                 n_outputs: int, hidden: int = 128, activation: str = "relu",
                 device: torch.device | str = "cpu"):
        self.dims = dict(dims)
        self.names = list(dims)
        self.subsets = [tuple(s) for s in subsets]
        self.seeds = [int(s) for s in seeds]
        self.n_outputs, self.hidden, self.activation = n_outputs, hidden, activation
        self._act = ACTIVATIONS.get(activation)
        self.device = torch.device(device)
        self.members = {k: [a for a, s in enumerate(self.subsets) if k in s] for k in self.names}
        self.used = [k for k in self.names if self.members[k]]
        self._members_t = {k: torch.tensor(self.members[k], device=self.device) for k in self.used}
        self.params = self._init_params()

    # ---------------------------------------------------------------- set-up
    def _init_params(self) -> dict[str, Tensor]:
        H, O = self.hidden, self.n_outputs
        scale = np.array([1.0 / np.sqrt(len(s) * H) for s in self.subsets])  # head fan-in per subset
        params: dict[str, np.ndarray] = {}
        for k in self.used:
            ki, a_k = self.names.index(k), self.members[k]
            draws = [initial_weights(seed, ki, self.dims[k], H, O) for seed in self.seeds]
            params[f"W.{k}"] = np.stack([np.repeat(w["W"][:, None, :], len(a_k), axis=1) for w in draws])
            params[f"b.{k}"] = np.stack([np.repeat(w["b"][None, :], len(a_k), axis=0) for w in draws])
            params[f"V.{k}"] = np.stack([w["V"][None] * scale[a_k, None, None] for w in draws])
        params["c"] = np.stack([initial_head_bias(seed, O)[None, :] * scale[:, None] for seed in self.seeds])
        return {name: torch.tensor(p, dtype=torch.float32, device=self.device).requires_grad_()
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

    # --------------------------------------------------------------- compute
    def _hidden(self, k: str, x: Tensor) -> Tensor:
        """act(φ_k(x)) for every subset containing k: x (S, B, d_k) → (S, B, A_k, H)."""
        W = self.params[f"W.{k}"]
        S, d, A_k, H = W.shape
        z = torch.bmm(x, W.reshape(S, d, A_k * H)).reshape(S, -1, A_k, H)
        return self._act(z + self.params[f"b.{k}"][:, None])

    def forward(self, xs: Mapping[str, Tensor]) -> Tensor:
        """Outputs of every model: xs[k] (S, B, d_k) → (S, B, A, O)."""
        S, B = next(iter(xs.values())).shape[:2]
        out = self.params["c"][:, None].expand(S, B, -1, -1)
        for k, contrib in self.contributions(xs).items():
            out = out.index_add(2, self._members_t[k], contrib)
        return out

    def contributions(self, xs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Each modality's additive term in the outputs: ``{k: (S, B, A_k, O)}`` over the subsets
        that contain k, so that ``forward = c + Σ_k contributions[k]`` (late fusion is additive in
        the head).  Dropping a term is the model with modality k missing."""
        return {k: torch.einsum("sbah,saho->sbao", self._hidden(k, xs[k]), self.params[f"V.{k}"])
                for k in self.used}

    def latent_blocks(self, xs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """ĝ_M(x) per modality: ``{k: (S, B, A_k, H)}`` over the subsets that contain k
        (``self.members[k]``); modalities outside a subset have no block at all."""
        return {k: self._hidden(k, xs[k]) for k in self.used}

    def latent(self, xs: Mapping[str, Tensor]) -> Tensor:
        """ĝ_M(x) of every model, (S, B, A, len(names)·H); blocks of modalities ∉ M are zero."""
        return dense_latent(self.latent_blocks(xs), self.members, self.names, len(self.subsets), self.hidden)

    # ---------------------------------------------------------------- export
    def to_module(self, stream: int, subset: int) -> LateFusion:
        """The trained model (stream, subset) as a standalone :class:`LateFusion` on the CPU."""
        sub = self.subsets[subset]
        model = LateFusion({k: self.dims[k] for k in self.names if k in sub}, self.n_outputs,
                           self.hidden, self.activation)
        with torch.no_grad():
            head = []
            for k, enc in model.encoders.items():
                pos = self.members[k].index(subset)
                enc.weight.copy_(self.params[f"W.{k}"][stream, :, pos].T)
                enc.bias.copy_(self.params[f"b.{k}"][stream, pos])
                head.append(self.params[f"V.{k}"][stream, pos].T)
            model.head.weight.copy_(torch.cat(head, dim=1))
            model.head.bias.copy_(self.params["c"][stream, subset])
        return model
