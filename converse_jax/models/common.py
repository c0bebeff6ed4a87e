"""Pieces shared by the model families: block lists (optionally rematerialised), 1×1 convolutions
and input checks. Internal to the network modules of :mod:`converse_jax.models`.

A 1×1 convolution on NHWC data is a dense layer over the channel axis: Flax ``nn.Dense`` with
kernel ``(C_in, C_out)`` (a PyTorch ``(C_out, C_in, 1, 1)`` weight, squeezed and transposed).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.nn.baselines import torch_bias_init, torch_kernel_init
from converse_jax.nn.converse import dense_init
from converse_jax.nn.pointwise import pointwise_dot_general


def make_blocks(block_cls: type[nn.Module], num_blocks: int, remat: bool, **kwargs: Any) -> list[nn.Module]:
    """``num_blocks`` instances of ``block_cls(**kwargs)`` for a module's ``setup``.

    With ``remat`` each block is wrapped in ``nn.remat`` (``jax.checkpoint``): its activations
    are recomputed in the backward pass instead of stored. Values, gradients and parameter
    names are unchanged.
    """
    if not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"num_blocks must be a positive int, got {num_blocks!r}")
    cls = nn.remat(block_cls) if remat else block_cls
    return [cls(**kwargs) for _ in range(num_blocks)]


def conv1x1(
    features: int,
    *,
    use_bias: bool = True,
    torch_init: bool = False,
    fan_in: int | None = None,
    name: str | None = None,
    dtype: Any = None,
    param_dtype: Any = jnp.float32,
) -> nn.Dense:
    """A 1×1 convolution as ``nn.Dense(features)`` over the channel axis (contracted as one
    matrix product, :func:`converse_jax.nn.pointwise.pointwise_dot_general`).

    Init: N(0, 0.02²) weights and zero bias (the official ``_init_weights``), or with
    ``torch_init`` PyTorch's default U(±1/√fan_in) for both (``fan_in`` = input channels, needed
    for the bias bound). ``name``: the submodule name (inside ``nn.compact`` methods).
    ``dtype`` / ``param_dtype``: computation and storage dtypes (Flax's meanings).
    """
    if torch_init:
        if fan_in is None:
            raise ValueError("fan_in: required with torch_init=True")
        return nn.Dense(
            features,
            use_bias=use_bias,
            kernel_init=torch_kernel_init,
            bias_init=torch_bias_init(fan_in),
            dot_general=pointwise_dot_general,
            name=name,
            dtype=dtype,
            param_dtype=param_dtype,
        )
    return nn.Dense(
        features, use_bias=use_bias, kernel_init=dense_init, dot_general=pointwise_dot_general, name=name,
        dtype=dtype, param_dtype=param_dtype,
    )


def check_image(x: jax.Array, channels: int, who: str) -> None:
    """Raises ``ValueError`` unless ``x`` is a floating NHWC batch with ``channels`` channels."""
    if getattr(x, "ndim", None) != 4 or x.shape[-1] != channels:
        raise ValueError(f"{who}: x must be NHWC (N, H, W, {channels}), got shape {getattr(x, 'shape', None)}")
    if not jax.numpy.issubdtype(x.dtype, jax.numpy.floating):
        raise ValueError(f"{who}: x must be a floating array, got dtype {x.dtype}")
