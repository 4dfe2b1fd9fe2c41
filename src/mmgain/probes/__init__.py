"""Probes: the latent-quality measurement η̂ on frozen encoders."""
from .kinds import PROBES, ProbeKind
from .latent import least_squares_probe, logistic_probe

__all__ = ["PROBES", "ProbeKind", "least_squares_probe", "logistic_probe"]
