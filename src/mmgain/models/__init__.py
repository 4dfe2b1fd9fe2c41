"""Models: late fusion h∘g_M, single and batched, from registered parts."""
from .components import ACTIVATIONS, ENCODERS, FUSIONS, HEADS, Activation, OwnEncoders
from .late_fusion import BatchedLateFusion, LateFusion

__all__ = ["ACTIVATIONS", "Activation", "BatchedLateFusion", "ENCODERS", "FUSIONS", "HEADS", "LateFusion", "OwnEncoders"]
