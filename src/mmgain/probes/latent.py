"""The latent-quality probe η̂(ĝ_M): the best head on a frozen encoder.

η(g) = inf_h r(h∘g) − r(h*∘g*).  We freeze the trained encoder, fit the best
head on its latent over the full training set, and measure that head's test
risk.  Subtracting the Bayes risk (when known) or the smallest probe risk of
the subsets studied gives η̂; γ̂_S(M, N) = η̂(ĝ_M) − η̂(ĝ_N).

Each probe here fits the A models of one stream at once: latents ``Z`` are
(n, A, P), with zero blocks for modalities outside a model's subset; those
blocks get zero coefficients, so the probe of a subset equals the probe of the
model built without them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def least_squares_probe(Z: Tensor, y: Tensor, Z_test: Tensor, y_test: Tensor, ridge: float = 1e-8) -> dict[str, Tensor]:
    """Least squares with intercept on the frozen latent (closed form, float64).

    ``ridge`` is relative to the mean feature variance and is there only to make
    collinear latents solvable.  Returns test ``mse`` per model, shape (A,).
    """
    Z, Z_test = Z.double(), Z_test.double()
    y, y_test = y.double(), y_test.double()
    mu = Z.mean(0)                                        # (A, P)
    Zc = Z - mu
    yc = y - y.mean()
    G = torch.einsum("nap,naq->apq", Zc, Zc)              # (A, P, P)
    rhs = torch.einsum("nap,n->ap", Zc, yc)
    lam = ridge * G.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12)
    G = G + lam[:, None, None] * torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    beta = torch.linalg.solve(G, rhs)                     # (A, P)
    pred = torch.einsum("nap,ap->na", Z_test - mu, beta) + y.mean()
    return {"mse": ((pred - y_test[:, None]) ** 2).mean(0)}


def logistic_probe(Z: Tensor, y: Tensor, Z_test: Tensor, y_test: Tensor, n_classes: int,
                   l2: float = 1e-4, max_iter: int = 500) -> dict[str, Tensor]:
    """Multinomial logistic regression on the frozen latent, full-batch L-BFGS.

    Features are standardized on the training rows (constant columns, such as
    the zero blocks of absent modalities, stay zero); a small L2 term keeps the
    problem strictly convex when classes are separable.  The A independent
    objectives are summed and minimized together, which has the same minimizer.
    Returns test ``acc`` (%) and ``ce`` per model, shape (A,).
    """
    mu = Z.mean(0)
    sd = Z.std(0, unbiased=False)
    sd = torch.where(sd > 1e-8, sd, torch.ones_like(sd))
    X, X_test = (Z - mu) / sd, (Z_test - mu) / sd
    n, A, P = X.shape
    W = torch.zeros(A, P, n_classes, device=Z.device, requires_grad=True)
    b = torch.zeros(A, n_classes, device=Z.device, requires_grad=True)
    yy = y[:, None].expand(n, A).reshape(-1)

    def objective() -> Tensor:
        logits = torch.einsum("nap,apc->nac", X, W) + b
        ce = F.cross_entropy(logits.reshape(-1, n_classes), yy, reduction="sum") / n
        return ce + 0.5 * l2 * (W ** 2).sum()

    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        logits = torch.einsum("nap,apc->nac", X_test, W) + b
        yt = y_test[:, None].expand(-1, A)
        ce = F.cross_entropy(logits.permute(0, 2, 1), yt, reduction="none").mean(0)
        acc = (logits.argmax(-1) == yt).float().mean(0) * 100.0
    return {"acc": acc.double(), "ce": ce.double()}
