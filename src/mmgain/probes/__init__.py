"""Probes: the latent-quality measurement η̂ on frozen encoders."""
from .latent import least_squares_probe, logistic_probe

__all__ = ["least_squares_probe", "logistic_probe"]
