"""cfpair: counterfactual safety pairs for training safer driving VLA models."""

__version__ = "0.1.0"

__all__ = ["__version__"]
