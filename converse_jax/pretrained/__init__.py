"""Pretrained weights: safe reading of official PyTorch checkpoints, PyTorch <-> Flax mapping,
the project's variable store and a one-call loader."""

from converse_jax.pretrained.convert import check_variables, from_torch, infer_arch, to_torch, torch_names
from converse_jax.pretrained.load import load
from converse_jax.pretrained.pth import UnsafeCheckpointError, read_pth
from converse_jax.pretrained.store import load_variables, save_variables

__all__ = [
    "UnsafeCheckpointError",
    "check_variables",
    "from_torch",
    "infer_arch",
    "load",
    "load_variables",
    "read_pth",
    "save_variables",
    "to_torch",
    "torch_names",
]
