"""Flax linen layers built on the reverse-convolution operator (NHWC throughout).

* :class:`LayerNorm` — the official channels-first LayerNorm, here over the last (channel) axis.
* :class:`Converse2D` — depthwise reverse convolution with learned kernel and λ.
* :class:`ConverseBlock` / :class:`ConverseBlockAlpha` — the paper's Transformer-like block.

Parity notes (see ``shared/golden/README.md``): GELU is the exact erf form, LayerNorm uses the
biased variance computed in two passes with eps 1e-5 inside the square root, and 1×1
convolutions are dense layers over the channel axis (kernel ``(C_in, C_out)``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.ops import converse2d
from converse_jax.ops.validation import PADDING_MODES

# 1×1 convolutions of the official code use trunc_normal(std=.02) cut at ±2 absolute, which is a
# plain N(0, .02²) in practice (Flax's truncated_normal would cut at ±2σ).
dense_init = nn.initializers.normal(stddev=0.02)


def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as PyTorch's ``nn.GELU()``: ``x · Φ(x)``, elementwise (any shape, dtype kept).

    Example:
      >>> import jax.numpy as jnp
      >>> [round(v, 4) for v in gelu(jnp.array([-1.0, 0.0, 1.0])).tolist()]
      [-0.1587, 0.0, 0.8413]
    """
    return jax.nn.gelu(x, approximate=False)


def softmax_normal_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Per-channel softmax over the taps of a standard-normal draw; shape (kh, kw, C).

    Every channel's kernel is positive and sums to 1 (a normalised blur), the init of
    :class:`Converse2D`'s ``kernel``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> k = softmax_normal_init(jax.random.key(0), (3, 3, 4))
      >>> k.shape, bool((k > 0).all()), bool(jnp.allclose(k.sum(axis=(0, 1)), 1.0))
      ((3, 3, 4), True, True)
    """
    kh, kw, c = shape
    z = jax.random.normal(key, (kh * kw, c), dtype)
    return jax.nn.softmax(z, axis=0).reshape(shape)


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NHWC tensor (the official "channels_first" LN).

    y = (x − mean_C x) / sqrt(var_C x + eps) · scale + bias, with the biased variance
    ``mean((x − mean)²)``. Shapes: (..., C) -> (..., C). Params ``scale`` (C,) ones and
    ``bias`` (C,) zeros.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 1, 4)  # NHWC, one pixel, C = 4
      >>> y, variables = LayerNorm().init_with_output(jax.random.key(0), x)
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'bias': (4,), 'scale': (4,)}
      >>> y.shape, [round(v, 3) for v in y.ravel().tolist()]  # (x − 1.5) / √1.25
      ((1, 1, 1, 4), [-1.342, -0.447, 0.447, 1.342])
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        centred = x - mean
        var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
        y = centred / jnp.sqrt(var + self.eps)
        return y * scale.astype(x.dtype) + bias.astype(x.dtype)


class Converse2D(nn.Module):
    """Depthwise reverse convolution layer: (N, H, W, C) -> (N, H·scale, W·scale, C).

    Parameters: ``kernel`` (kh, kw, C), initialised per channel as the softmax of a standard
    normal draw over the taps; ``bias`` (C,), zeros. λ = sigmoid(bias − 9) + eps.

    Attributes:
      features: number of channels C (input = output).
      kernel_size: int or (kh, kw).
      scale: integer up-sampling factor.
      padding: pixels padded on every side before the solve (cropped after).
      padding_mode: 'circular' | 'reflect' | 'replicate' | 'constant'.
      eps: lower bound added to λ.

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> layer = Converse2D(features=4, kernel_size=3, scale=2)
      >>> x = jnp.ones((1, 8, 8, 4))  # (N, H, W, C)
      >>> y, variables = jax.eval_shape(layer.init_with_output, jax.random.key(0), x)
      >>> y.shape  # (N, H·scale, W·scale, C)
      (1, 16, 16, 4)
      >>> jax.tree.map(lambda a: a.shape, variables["params"])
      {'bias': (4,), 'kernel': (3, 3, 4)}
    """

    features: int
    kernel_size: int | tuple[int, int]
    scale: int = 1
    padding: int = 2
    padding_mode: str = "circular"
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[-1] != self.features:
            raise ValueError(
                f"Converse2D expects {self.features} input channels (last axis), got {x.shape}"
            )
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {sorted(PADDING_MODES)}, got {self.padding_mode!r}"
            )
        ks = self.kernel_size
        kh, kw = (ks, ks) if isinstance(ks, int) else tuple(ks)
        kernel = self.param("kernel", softmax_normal_init, (kh, kw, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        lam = jax.nn.sigmoid(bias.astype(x.dtype) - 9.0) + self.eps
        return converse2d(
            x,
            kernel.astype(x.dtype),
            lam,
            scale=self.scale,
            padding=self.padding,
            padding_mode=self.padding_mode,
        )


class ConverseBlock(nn.Module):
    """The paper's block: ``x ← x + f1(x)``, then ``x ← x + f2(x)``; (N, H, W, C) -> same.

    f1 = LayerNorm → 1×1 C→2C → GELU → spatial(2C) → GELU → 1×1 2C→C,
    f2 = LayerNorm → 1×1 C→2C → GELU → 1×1 2C→C,
    where ``spatial`` is Converse2D(2C, kernel_size, scale 1, padding, padding_mode, eps); it crops
    what it pads, so the block keeps the size. Subclasses swap the spatial operator
    (:meth:`spatial_layer`) to build the paper's convolution baselines.

    Parameters: ``norm1``, ``expand1``, ``spatial``, ``project1``, ``norm2``, ``expand2``,
    ``project2`` (and ``alpha1``, ``alpha2`` (C,) in the alpha variant).

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> block = ConverseBlock(features=4)
      >>> x = jnp.ones((1, 8, 8, 4))  # (N, H, W, C)
      >>> y, variables = jax.eval_shape(block.init_with_output, jax.random.key(0), x)
      >>> y.shape
      (1, 8, 8, 4)
      >>> sorted(variables["params"])
      ['expand1', 'expand2', 'norm1', 'norm2', 'project1', 'project2', 'spatial']
      >>> variables["params"]["spatial"]["kernel"].shape  # Converse2D on 2C channels
      (3, 3, 8)
    """

    features: int
    kernel_size: int = 3
    padding: int = 2
    padding_mode: str = "replicate"
    eps: float = 1e-5
    use_alpha: ClassVar[bool] = False

    def spatial_layer(self, channels: int) -> nn.Module:
        """The depthwise spatial operator of the first branch, on ``channels`` = 2C channels."""
        return Converse2D(channels, self.kernel_size, 1, self.padding, self.padding_mode, self.eps)

    def setup(self) -> None:
        c = self.features
        self.norm1 = LayerNorm()
        self.expand1 = nn.Dense(2 * c, kernel_init=dense_init)
        self.spatial = self.spatial_layer(2 * c)
        self.project1 = nn.Dense(c, kernel_init=dense_init)
        self.norm2 = LayerNorm()
        self.expand2 = nn.Dense(2 * c, kernel_init=dense_init)
        self.project2 = nn.Dense(c, kernel_init=dense_init)
        if self.use_alpha:
            self.alpha1 = self.param("alpha1", nn.initializers.zeros, (c,), jnp.float32)
            self.alpha2 = self.param("alpha2", nn.initializers.zeros, (c,), jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] != self.features:
            raise ValueError(
                f"{type(self).__name__} expects (N, H, W, {self.features}) NHWC input, "
                f"got shape {x.shape}"
            )
        f1 = self.project1(gelu(self.spatial(gelu(self.expand1(self.norm1(x))))))
        x = x + (self.alpha1.astype(x.dtype) * f1 if self.use_alpha else f1)
        f2 = self.project2(gelu(self.expand2(self.norm2(x))))
        return x + (self.alpha2.astype(x.dtype) * f2 if self.use_alpha else f2)


class ConverseBlockAlpha(ConverseBlock):
    """ConverseBlock with learned per-channel residual scales ``alpha1``, ``alpha2`` (C,),
    zero-initialised: ``x ← x + alpha1·f1(x)``, ``x ← x + alpha2·f2(x)``; (N, H, W, C) -> same.

    With the zero initial alphas a freshly initialised block is the identity.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> variables = jax.eval_shape(ConverseBlockAlpha(features=4).init, jax.random.key(0), x)
      >>> variables["params"]["alpha1"].shape, variables["params"]["alpha2"].shape
      ((4,), (4,))
    """

    use_alpha: ClassVar[bool] = True
