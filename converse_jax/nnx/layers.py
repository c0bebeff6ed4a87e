"""Flax NNX versions of the reverse-convolution layers (NHWC): LayerNorm, Converse2D,
ConverseBlock, ConverseBlockAlpha.

Native ``nnx.Module`` s with the constructor arguments of their linen namesakes in
:mod:`converse_jax.nn` plus ``rngs`` (keyword-only ``dtype``, ``param_dtype`` as there). Their
math is not re-implemented here: they call the same functions as the linen layers
(:func:`converse_jax.nn.converse.layer_norm`, :func:`~converse_jax.nn.converse.converse2d_layer`
over the functional :func:`converse_jax.ops.converse2d`,
:func:`~converse_jax.nn.converse.block_forward`), so with the same weights both give identical
outputs and gradients. Parameter names and shapes are those of linen (``kernel``, ``bias``,
``scale``, ``norm1``, ``expand1``, ...); the 1×1 convolutions are ``nnx.Linear`` (kernel
``(C_in, C_out)``), as linen's ``nn.Dense``.

The one difference: NNX creates parameters when the module is built, so :class:`LayerNorm`
takes the channel count ``features`` as first argument (linen infers it from the input).
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from converse_jax.nn.converse import (
    block_forward,
    converse2d_layer,
    dense_init,
    layer_norm,
    softmax_normal_init,
)
from converse_jax.nn.pointwise import pointwise_dot_general
from converse_jax.nn.tie import tied_promote_dtype_nnx
from converse_jax.ops.validation import PADDING_MODES

__all__ = ["Converse2D", "ConverseBlock", "ConverseBlockAlpha", "LayerNorm"]


class LayerNorm(nnx.Module):
    """LayerNorm over the channel axis of an NHWC tensor (as :class:`converse_jax.nn.LayerNorm`).

    (..., C) -> (..., C); params ``scale`` (C,) ones, ``bias`` (C,) zeros; statistics in at least
    float32, result in ``dtype`` (None: the input's).

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> norm = LayerNorm(4, rngs=nnx.Rngs(0))
      >>> [round(v, 3) for v in norm(jnp.arange(4.0).reshape(1, 1, 1, 4)).ravel().tolist()]
      [-1.342, -0.447, 0.447, 1.342]
    """

    def __init__(
        self,
        features: int,
        eps: float = 1e-5,
        *,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        self.eps, self.dtype = eps, dtype
        self.scale = nnx.Param(jnp.ones((features,), param_dtype))
        self.bias = nnx.Param(jnp.zeros((features,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return layer_norm(x, self.scale[...], self.bias[...], self.eps, self.dtype)


class Converse2D(nnx.Module):
    """Depthwise reverse convolution layer (as :class:`converse_jax.nn.Converse2D`):
    (N, H, W, C) -> (N, H·scale, W·scale, C), λ = sigmoid(bias − 9) + eps.

    Params ``kernel`` (kh, kw, C) softmax-normal (drawn from ``rngs.params()``), ``bias`` (C,) zeros.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> layer = Converse2D(4, 3, scale=2, rngs=nnx.Rngs(0))
      >>> layer(jnp.ones((1, 8, 8, 4))).shape, layer.kernel.shape
      ((1, 16, 16, 4), (3, 3, 4))
    """

    def __init__(
        self,
        features: int,
        kernel_size: int | tuple[int, int],
        scale: int = 1,
        padding: int = 2,
        padding_mode: str = "circular",
        eps: float = 1e-5,
        *,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.features, self.eps, self.dtype = features, eps, dtype
        self.op_kwargs = {"scale": scale, "padding": padding, "padding_mode": padding_mode}
        self.kernel = nnx.Param(softmax_normal_init(rngs.params(), (kh, kw, features), param_dtype))
        self.bias = nnx.Param(jnp.zeros((features,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[-1] != self.features:
            raise ValueError(f"Converse2D expects {self.features} input channels (last axis), got {x.shape}")
        return converse2d_layer(x, self.kernel[...], self.bias[...], self.eps, self.dtype, **self.op_kwargs)


class ConverseBlock(nnx.Module):
    """The paper's block (as :class:`converse_jax.nn.ConverseBlock`); (N, H, W, C) -> same.

    ``x ← x + f1(x)``, ``x ← x + f2(x)`` with f1 = LayerNorm → 1×1 C→2C → GELU → Converse2D(2C)
    → GELU → 1×1 2C→C and f2 = LayerNorm → 1×1 C→2C → GELU → 1×1 2C→C.

    Example (NNX transforms work on it as on any NNX module):
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> block = ConverseBlock(4, rngs=nnx.Rngs(0))
      >>> x = jnp.ones((2, 8, 8, 4))
      >>> nnx.jit(lambda m, x: m(x))(block, x).shape
      (2, 8, 8, 4)
      >>> grads = nnx.grad(lambda m: m(x).mean())(block)
      >>> grads["spatial"]["kernel"].shape
      (3, 3, 8)
    """

    use_alpha: ClassVar[bool] = False

    def __init__(
        self,
        features: int,
        kernel_size: int = 3,
        padding: int = 2,
        padding_mode: str = "replicate",
        eps: float = 1e-5,
        *,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        c = features
        prec = {"dtype": dtype, "param_dtype": param_dtype}

        def dense(cin: int, cout: int) -> nnx.Linear:
            return nnx.Linear(
                cin,
                cout,
                kernel_init=dense_init,
                dot_general=pointwise_dot_general,
                promote_dtype=tied_promote_dtype_nnx,
                rngs=rngs,
                **prec,
            )

        self.features, self.dtype = features, dtype
        self.norm1 = LayerNorm(c, **prec)
        self.expand1 = dense(c, 2 * c)
        self.spatial = Converse2D(2 * c, kernel_size, 1, padding, padding_mode, eps, rngs=rngs, **prec)
        self.project1 = dense(2 * c, c)
        self.norm2 = LayerNorm(c, **prec)
        self.expand2 = dense(c, 2 * c)
        self.project2 = dense(2 * c, c)
        if self.use_alpha:
            self.alpha1 = nnx.Param(jnp.zeros((c,), param_dtype))
            self.alpha2 = nnx.Param(jnp.zeros((c,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] != self.features:
            raise ValueError(
                f"{type(self).__name__} expects (N, H, W, {self.features}) NHWC input, got shape {x.shape}"
            )
        return block_forward(self, x)


class ConverseBlockAlpha(ConverseBlock):
    """ConverseBlock with zero-initialised per-channel residual scales ``alpha1``, ``alpha2`` (C,)
    (as :class:`converse_jax.nn.ConverseBlockAlpha`): a fresh block is the identity.

    Example:
      >>> from flax import nnx
      >>> import jax.numpy as jnp
      >>> block = ConverseBlockAlpha(4, rngs=nnx.Rngs(0))
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> bool(jnp.array_equal(block(x), x)), block.alpha1.shape
      (True, (4,))
    """

    use_alpha: ClassVar[bool] = True
