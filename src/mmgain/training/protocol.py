"""The training protocol: every knob of how models are trained, in one named object."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Mapping

from ..models.components import ACTIVATIONS, ENCODERS, FUSIONS, HEADS, head_hidden
from ..errors import SpecError
from ..registry import Registry


PRECISIONS = ("float32", "bfloat16")
# Fields added since run folders were first written, at the value that does what those folders
# did (where it is not the new default): a folder that lacks one is read with this value.
ADDED_SINCE = {"probe_ftol": 0.0, "heldout_ftol": 0.0}


@dataclass(frozen=True)
class TrainingProtocol:
    """How each model h∘g_M is trained (Adam on minibatches, a fixed epoch budget).

    ``epochs`` counts passes over each model's own training sample, so a model
    trained on fewer rows takes fewer steps.  ``probe_epochs`` is the budget
    after which the encoder is frozen for the latent probe (the paper probes
    encoders trained "not to convergence"); ``None`` probes the final encoder.
    ``standardize`` z-scores every feature with the mean and std of the full
    training set (no test rows, no labels) before training.
    ``probe_ridge`` is the relative
    ridge of the least-squares probe (numerical stability only);
    ``probe_l2``/``probe_max_iter``/``probe_tol``/``probe_ftol`` set the logistic probe (L2 on
    standardized latents; stop when every gradient entry is below ``probe_tol``, or when the
    objective fell by at most ``probe_ftol`` nats over the last 10 iterations with every entry
    already below 10·``probe_tol``, which cuts the solver's slow tail; 0 turns that test off).
    ``probe_folds`` is the number of folds of the cross-fitted probe on the
    test rows that gives the corrected γ̂ (see :mod:`mmgain.analysis.estimates`);
    ``heldout_tol``/``heldout_max_iter``/``heldout_ftol`` its stopping rule, the paper probe's:
    the loosest gradient tolerance measured at which no γ̂, η̂ or deficit moves by a tenth of its
    own interval's half-width against a far tighter fit, and a decrease test that moves none of
    them further than that tolerance does (``scripts/probe_tolerance.py``; docs/benchmarks.md,
    "The probes' stopping rule", also for the share of fits the cap stops).
    ``solver`` is ``"adam"`` (minibatch Adam for ``epochs``), or ``"lstsq"``: exact empirical risk
    minimisation for linear encoders and squared loss (each model set to the least-squares fit,
    minimum norm, with an intercept; needs ``activation="none"`` and ``hidden`` ≥ every modality's
    width) — the ERM of the theory, for oracle studies whose closed forms assume least squares.
    The architecture: ``encoder``, ``fusion`` and ``head`` name registered parts
    (:mod:`mmgain.models.components`); ``hidden`` is every encoder's width, or a mapping
    modality → width; ``head_width`` and ``head_activation`` shape the ``mlp`` head's hidden layer.
    ``precision`` is the arithmetic of training: ``"float32"``, or ``"bfloat16"`` — the forward
    pass and loss under bfloat16 autocast (matmul inputs rounded to 8 significant bits, products
    accumulated in float32) with float32 weights, gradients and Adam state.  On CPUs with bfloat16
    matmul units (AMX, AVX512-BF16) and on GPUs it trains faster (docs/benchmarks.md); scoring,
    latents and probes always run in float32 on the trained weights (docs/design.md).
    """

    hidden: int | Mapping[str, int] = 128
    activation: str = "relu"
    encoder: str = "linear"
    fusion: str = "concat"
    head: str = "linear"
    head_width: int = 64
    head_activation: str = "relu"
    lr: float = 0.01
    batch_size: int = 2048
    epochs: int = 100
    probe_epochs: int | None = None
    standardize: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    probe_ridge: float = 1e-8
    probe_l2: float = 1e-3
    probe_max_iter: int = 500
    probe_tol: float = 1e-5
    probe_ftol: float = 1e-5
    probe_folds: int = 3
    heldout_tol: float = 1e-5
    heldout_max_iter: int = 500
    heldout_ftol: float = 1e-5
    solver: str = "adam"
    precision: str = "float32"

    def __post_init__(self) -> None:
        ACTIVATIONS.get(self.activation)  # a clear error for an unknown name
        if self.encoder.startswith("own-") and self.encoder not in ENCODERS:
            raise SpecError(f"encoder {self.encoder!r}: your own encoders, given to mmgain.analyze in another Python "
                            "process; give them again (mmgain.analyze(..., encoders=…)), or install them as an "
                            "entry point (docs/api.md)")
        ENCODERS.get(self.encoder)
        FUSIONS.get(self.fusion)
        HEADS.get(self.head)
        head_hidden(self.head, 1, 1)               # a head the batched trainer knows
        ACTIVATIONS.get(self.head_activation)
        if int(self.head_width) < 1:
            raise SpecError(f"protocol.head_width must be ≥ 1, got {self.head_width}")
        widths = self.hidden.values() if isinstance(self.hidden, Mapping) else [self.hidden]
        if any(int(w) < 1 for w in widths):
            raise SpecError(f"protocol.hidden must be ≥ 1, got {self.hidden}")
        for name in ("batch_size", "epochs", "probe_max_iter", "heldout_max_iter"):
            if int(getattr(self, name)) < 1:
                raise SpecError(f"protocol.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.probe_epochs is not None and not 1 <= self.probe_epochs <= self.epochs:
            raise SpecError(f"protocol.probe_epochs must lie in 1..epochs ({self.epochs}), got {self.probe_epochs}")
        if int(self.probe_folds) < 2:
            raise SpecError(f"protocol.probe_folds must be ≥ 2, got {self.probe_folds}")
        if self.solver not in ("adam", "lstsq"):
            raise SpecError(f"protocol.solver must be 'adam' or 'lstsq', got {self.solver!r}")
        if self.solver == "lstsq" and (self.activation, self.encoder, self.fusion, self.head) != \
                ("none", "linear", "concat", "linear"):
            raise SpecError("protocol.solver 'lstsq' fits linear models: it needs activation 'none', "
                            "encoder 'linear', fusion 'concat' and head 'linear'")
        if self.precision not in PRECISIONS:
            raise SpecError(f"protocol.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.solver == "lstsq" and self.precision != "float32":
            raise SpecError("protocol.solver 'lstsq' is exact least squares in float64; precision "
                            f"{self.precision!r} applies to the Adam solver only")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SpecError(f"protocol.lr must be a finite number > 0, got {self.lr}")
        for name in ("probe_ftol", "heldout_ftol"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise SpecError(f"protocol.{name} must be a finite number ≥ 0 (0: no decrease test), "
                                f"got {getattr(self, name)}")

    def with_(self, **changes) -> "TrainingProtocol":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = dict(self.hidden) if isinstance(self.hidden, Mapping) else self.hidden
        return d

    def architecture(self) -> dict:
        """The model's build arguments (:meth:`mmgain.models.LateFusion.initialized`)."""
        return {"hidden": self.hidden, "activation": self.activation, "encoder": self.encoder,
                "fusion": self.fusion, "head": self.head, "head_width": int(self.head_width),
                "head_activation": self.head_activation}

    def max_width(self) -> int:
        return max(self.hidden.values()) if isinstance(self.hidden, Mapping) else int(self.hidden)


PROTOCOLS: Registry[TrainingProtocol] = Registry("protocol")

# Huang et al. 2021, IEMOCAP: Linear(d_k,128)+ReLU per modality, concat, linear
# softmax head; Adam, lr 0.01, batch 2048, no validation set.  The epoch budget
# is not stated in the paper; see docs/guide/your-data.md ("Protocol huang2021").
PROTOCOLS.register("huang2021", TrainingProtocol(hidden=128, activation="relu", lr=0.01,
                                                 batch_size=2048, epochs=100, probe_epochs=10),
                   "the paper's IEMOCAP training: Linear+ReLU encoders of width 128, Adam, lr 0.01, batch 2048")

# Synthetic overlap study: the paper's IEMOCAP architecture with linear encoders
# (the data are linear-Gaussian); see docs/guide/reproducing.md for the choice and its effect.
PROTOCOLS.register("synthetic", TrainingProtocol(hidden=128, activation="none", lr=0.01,
                                                 batch_size=512, epochs=30, standardize=False),
                   "the synthetic study's training: linear encoders of width 128, Adam, 30 epochs")

# Oracle studies: exact least squares (the ERM whose expected risk has a closed form).
PROTOCOLS.register("ols", TrainingProtocol(hidden=128, activation="none", solver="lstsq", epochs=1,
                                           standardize=False),
                   "exact least squares (the ERM whose expected risk has a closed form)")

# The paper's linear case made non-trivial: a one-unit linear bottleneck per modality, trained
# by Adam for a fixed budget (long enough to fit noise on small samples; not least squares).
PROTOCOLS.register("linear-bottleneck", TrainingProtocol(hidden=1, activation="none", lr=0.05, batch_size=256,
                                                         epochs=100, standardize=False),
                   "one-unit linear bottleneck per modality, Adam for a fixed budget (the paper's linear case)")
