"""mmgain: does adding a modality help, from how much data on, and why?

The framework of Huang et al., "What Makes Multimodal Learning Better than
Single (Provably)", NeurIPS 2021, as software: late-fusion models over every
modality subset, trained as one batched program, and the latent-quality probe
η̂ that explains when more modalities win.
"""
__version__ = "0.1.0"
