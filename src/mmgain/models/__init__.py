"""Models: late fusion h∘g_M, single and batched."""
from .late_fusion import ACTIVATIONS, BatchedLateFusion, LateFusion

__all__ = ["ACTIVATIONS", "BatchedLateFusion", "LateFusion"]
