"""The task kinds: one home for the loss, the metrics, the probe and the η̂ risk.

A :class:`Task` (sklearn's ClassifierMixin/RegressorMixin are the precedent)
owns everything that differs between classification and regression, so the
trainer, runner, statistics and report ask the task instead of testing a
string.  Per-row outcomes are the currency: a metric is always the mean of a
per-row value, so paired differences and test-row uncertainty come for free.

The tensor methods use tensor methods only, so this module imports no torch and the
analysis (numpy only) can hold a task.  The probe that fits the best head for a task is
named by ``probe_kind`` and lives in :mod:`mmgain.probes.latent`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .registry import Registry

Tensor = "torch.Tensor"     # annotations only: this module never imports torch (the analysis uses it)


class Task:
    name: str
    metric: str              # the primary test metric: per-row values averaged
    metric_label: str
    higher_is_better: bool
    risk: str                # the loss in which η̂ and γ̂ are measured (the probe's risk)
    risk_label: str
    margin_help: str
    stratified: bool         # folds and splits keep the class proportions
    stacked_probes: bool     # probes of several streams fit in memory together (not so for Gram matrices)
    probe_kind: str          # the best head on a frozen latent (:func:`mmgain.probes.latent.fit_probe`)

    def n_outputs(self, n_classes: int) -> int:
        raise NotImplementedError

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """out (..., O), y (...) → the training loss per row (...)."""
        raise NotImplementedError

    def row_outcomes(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Per-row outcomes (...): ``loss`` and, for classification, ``correct`` (1/0)."""
        raise NotImplementedError

    def metrics(self, rows: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, np.ndarray]:
        """Metrics as the mean of per-row outcomes over the last axis."""
        raise NotImplementedError

    def metric_rows(self, rows: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-row values whose mean is the primary metric."""
        raise NotImplementedError

    def default_margin(self, y_train: np.ndarray) -> float:
        raise NotImplementedError

    # The theorems of Huang et al. need a loss bounded by C = 1 and L-Lipschitz in the outputs.
    def loss_scale(self, y_train: Tensor) -> float:
        """The scale of the bounded loss, from a group's full training targets (1 if unused)."""
        return 1.0

    def bounded_loss(self, loss, scale: float = 1.0):
        """The bounded loss from the training loss per row (tensor or array), in [0, 1]."""
        raise NotImplementedError

    def bounded_lipschitz(self, scale: float = 1.0) -> float:
        """L: the bounded loss's Lipschitz constant in the outputs (ℓ₂ norm of the output vector)."""
        raise NotImplementedError

    def better(self, diff: float) -> bool:
        """Whether a difference M − N of the primary metric favours M."""
        return diff > 0 if self.higher_is_better else diff < 0


class Classification(Task):
    name, metric, metric_label, higher_is_better = "classification", "acc", "accuracy %", True
    risk, risk_label = "ce", "cross-entropy (nats)"
    margin_help = "accuracy points"
    stratified, stacked_probes, probe_kind = True, True, "logistic"

    def n_outputs(self, n_classes: int) -> int:
        return n_classes

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        # = F.cross_entropy(reduction="none"), bit for bit (also under bfloat16 autocast: in float32)
        return -out.float().log_softmax(-1).gather(-1, y[..., None])[..., 0]

    def row_outcomes(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {"loss": self.loss(out, y), "correct": (out.argmax(-1) == y).float()}

    def metrics(self, rows, prefix=""):
        return {f"{prefix}acc": 100.0 * np.asarray(rows["correct"], np.float64).mean(-1),
                f"{prefix}ce": np.asarray(rows["loss"], np.float64).mean(-1)}

    def metric_rows(self, rows):
        return 100.0 * np.asarray(rows["correct"], np.float64)

    def default_margin(self, y_train):
        return 1.0      # one accuracy point: the paper's Table 3 effects are 0.2–3.6 points

    def bounded_loss(self, loss, scale=1.0):
        """min(1, CE/ln 2): ≥ the 0-1 loss (a wrong argmax has p_y ≤ ½, CE ≥ ln 2)."""
        return (loss / np.log(2.0)).clip(max=1.0)

    def bounded_lipschitz(self, scale=1.0):
        return float(np.sqrt(2.0) / np.log(2.0))    # ‖∂CE/∂logits‖ = ‖softmax − e_y‖ ≤ √2


class Regression(Task):
    name, metric, metric_label, higher_is_better = "regression", "mse", "MSE", False
    risk, risk_label = "mse", "MSE"
    margin_help = "MSE units"
    stratified, stacked_probes, probe_kind = False, False, "least_squares"

    def n_outputs(self, n_classes: int) -> int:
        return 1

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return (out[..., 0] - y) ** 2

    def row_outcomes(self, out: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {"loss": self.loss(out, y)}

    def metrics(self, rows, prefix=""):
        return {f"{prefix}mse": np.asarray(rows["loss"], np.float64).mean(-1)}

    def metric_rows(self, rows):
        return np.asarray(rows["loss"], np.float64)

    def default_margin(self, y_train):
        return 0.01 * float(np.var(y_train))   # 1 % of the target's variance

    def loss_scale(self, y_train):
        """τ = Var(y) of the training set: the squared error is truncated at τ."""
        v = float(y_train.double().var(unbiased=False))
        return v if v > 0 else 1.0

    def bounded_loss(self, loss, scale=1.0):
        """min(1, (f − y)²/τ): the squared error in units of the target's variance, truncated."""
        return (loss / scale).clip(max=1.0)

    def bounded_lipschitz(self, scale=1.0):
        return float(2.0 / np.sqrt(scale))          # |∂/∂f| = 2|f − y|/τ ≤ 2/√τ where not truncated


TASKS: Registry[Task] = Registry("task")
TASKS.register("classification", Classification())
TASKS.register("regression", Regression())


def get_task(name: str | Task) -> Task:
    return name if isinstance(name, Task) else TASKS.get(name)


def as_numpy_rows(rows: Mapping[str, Tensor]) -> dict[str, np.ndarray]:
    """Per-row outcomes to compact numpy: ``correct`` as uint8, losses as float32."""
    return {k: (v.byte() if k == "correct" else v.float()).cpu().numpy() for k, v in rows.items()}
