"""Theory: closed forms that the measurements are checked against."""
from .closed_form import eta_finite, eta_star

__all__ = ["eta_finite", "eta_star"]
