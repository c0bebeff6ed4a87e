"""Pretrained weights: safe reading of official PyTorch checkpoints, PyTorch <-> Flax mapping,
the official checkpoints by name (download cache), the project's variable store, training runs'
checkpoints and a one-call loader for all of them (:func:`load`)."""

from converse_jax.pretrained.convert import check_variables, from_torch, infer_arch, to_torch, torch_names
from converse_jax.pretrained.hub import WeightsDownloadError, fetch
from converse_jax.pretrained.load import load
from converse_jax.pretrained.pth import UnsafeCheckpointError, read_pth
from converse_jax.pretrained.store import load_variables, save_variables

__all__ = [
    "UnsafeCheckpointError",
    "WeightsDownloadError",
    "check_variables",
    "fetch",
    "from_torch",
    "infer_arch",
    "load",
    "load_variables",
    "read_pth",
    "save_variables",
    "to_torch",
    "torch_names",
]
