"""Training's counted FLOPs: the work the models asked for need, whatever runs them.

Counted from the models themselves (every ``nn.Linear`` of :meth:`LateFusion.build`
for each subset), over the rows each stream's sample feeds it (epochs × sample size): 2 FLOPs
per weight per row forward, and backward 2 more for the weight gradient and 2 for the input
gradient — except each encoder's first layer, whose input needs no gradient.  No padding,
no masked work, no elementwise passes: what a perfect program would still have to multiply.
The bench (:mod:`mmgain.run.bench`) and run.json (``work``) divide it by the time taken and
by the same-run matmul peak.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..models.components import resolve_widths
from ..models.late_fusion import LateFusion


def per_row_flops(protocol, dims: Mapping[str, int], subset: Sequence[str], n_outputs: int,
                  real: bool = True) -> float:
    """Forward + backward FLOPs of one training row through the model of ``subset``.
    ``real=False``: the older count, 3 × forward for every layer (first layers included)."""
    arch = protocol.architecture()
    widths = resolve_widths(arch.pop("hidden"), list(dims))
    used = [k for k in dims if k in subset]
    model = LateFusion.build({k: dims[k] for k in used}, n_outputs, {k: widths[k] for k in used}, **arch)
    total = 0.0
    for part in [*model.encoders.values(), model.head]:
        linears = [m for m in part.modules() if isinstance(m, torch.nn.Linear)]
        for i, layer in enumerate(linears):
            first_encoder_layer = i == 0 and part is not model.head
            total += 2 * layer.weight.numel() * (2 if real and first_encoder_layer else 3)
    return total


def training_flops(protocol, dims: Mapping[str, int], subsets: Sequence[Sequence[str]], n_outputs: int,
                   sample_sizes: Sequence[int], real: bool = True) -> float:
    """Counted FLOPs of training every subset on every stream (one sample size per stream)."""
    rows = protocol.epochs * float(sum(sample_sizes))
    return rows * sum(per_row_flops(protocol, dims, s, n_outputs, real) for s in subsets)
