"""The encoders' first layer with its bias and ReLU inside the matmul.

A first layer W·x + b followed by a ReLU is, unfused, three passes over the largest tensor
of a training step (the bias broadcast into the output, the GEMM, the ReLU) and one more in
the backward pass (the bias gradient, a sum over the rows).  Appending a row of ones to the
input and the bias as a column to W puts the bias inside the GEMM (forward and gradient);
on a CPU, oneDNN's matmul applies the ReLU as it writes the output (a post-op), so the
hidden tensor is written once.  The backward pass masks the gradient with the saved output
(the ReLU's own backward, one pass) and takes the bias gradient from the weight gradient's
matmul, with no sum over the rows.

The oneDNN kernel is torch's ``mkldnn._linear_pointwise`` operator (the one torch.compile
uses for the same fusion).  It is checked once against a plain matmul before it is used;
where it is missing or disagrees, on other devices, under autocast, and on small minibatches,
the layer runs as a batched matmul with the bias added into it, then a ReLU.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor


def with_ones(x: Tensor) -> Tensor:
    """x (S, B, d) → (S, B, d + 1), a column of ones appended: the bias's input."""
    return torch.cat([x, x.new_ones(*x.shape[:-1], 1)], -1)


def with_bias(W: Tensor, b: Tensor) -> Tensor:
    """W (..., H, d) and b (..., H) → (..., H, d + 1): the bias as W's last column."""
    return torch.cat([W, b[..., None]], -1)


@functools.lru_cache(maxsize=None)
def onednn_relu_available() -> bool:
    """Whether this torch build has oneDNN's matmul with a ReLU post-op, and it agrees with a
    plain matmul on a small problem (checked once per process)."""
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)
    a, x = torch.randn(37, 19, generator=gen), torch.randn(23, 19, generator=gen)
    try:
        out = op(a, x, None, "relu", [None], "")
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    return out.shape == (37, 23) and bool(torch.allclose(out, (a @ x.T).clamp_min(0), rtol=1e-5, atol=1e-5))


class _OneDNNLinearReLU(torch.autograd.Function):
    """relu(Wa · xaᵀ) per stream, rows last: Wa (S, N, K), xa (S, B, K) → (S, N, B)."""

    @staticmethod
    def forward(ctx, Wa: Tensor, xa: Tensor) -> Tensor:
        op = torch.ops.mkldnn._linear_pointwise
        parts = [op(Wa[s], xa[s], None, "relu", [None], "") for s in range(Wa.shape[0])]
        out = parts[0][None] if len(parts) == 1 else torch.stack(parts)
        ctx.save_for_backward(out, Wa, xa)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        out, Wa, xa = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(grad, out, 0)
        gW = torch.bmm(g, xa) if ctx.needs_input_grad[0] else None
        gx = torch.bmm(g.transpose(1, 2), Wa) if ctx.needs_input_grad[1] else None
        return gW, gx


# When the fused kernel runs (benchmarks/2026-12-04-fused-first-layer.md): it is called once per
# stream, and on small minibatches those calls, and appending the bias to W (a copy of W each
# step), cost more than the passes they save.
FUSED_MIN_ROWS = 512
FUSED_MIN_ROWS_PER_INPUT = 4


def _fusable(W: Tensor, x: Tensor) -> bool:
    B, d = x.shape[1], W.shape[-1]
    return (W.device.type == "cpu" and W.dtype == x.dtype == torch.float32 and B >= FUSED_MIN_ROWS
            and B >= FUSED_MIN_ROWS_PER_INPUT * (d + 1) and not torch.is_autocast_enabled("cpu")
            and onednn_relu_available())


def first_layer_rows_last(W: Tensor, b: Tensor | None, x: Tensor, relu: bool) -> Tensor:
    """The first layer over every subset at once, rows last: W (S, A_k, H, d), b (S, A_k, H) or
    None, x (S, B, d) → W·x + b (S, A_k·H, B), then a ReLU if ``relu``.  With a bias and a ReLU
    on a CPU, for minibatches large enough, the bias runs inside the matmul and the ReLU as
    oneDNN's post-op; otherwise a batched matmul with the bias added into it."""
    S, A, H, d = W.shape
    if relu and b is not None and _fusable(W, x):
        return _OneDNNLinearReLU.apply(with_bias(W, b).reshape(S, A * H, d + 1), with_ones(x))
    W2, z = W.reshape(S, A * H, d), x.transpose(1, 2)
    out = torch.bmm(W2, z) if b is None else torch.baddbmm(b.reshape(S, A * H, 1), W2, z)
    return torch.relu(out) if relu else out
