"""An autograder for PyTorch course notebooks."""

__version__ = "0.1.0"
