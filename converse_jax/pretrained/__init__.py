"""Pretrained weights: safe reading of official PyTorch checkpoints and the project's variable store."""

from converse_jax.pretrained.pth import UnsafeCheckpointError, read_pth
from converse_jax.pretrained.store import load_variables, save_variables

__all__ = ["UnsafeCheckpointError", "load_variables", "read_pth", "save_variables"]
