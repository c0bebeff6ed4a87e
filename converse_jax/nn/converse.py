"""Flax linen layers built on the reverse-convolution operator (NHWC throughout).

* :class:`LayerNorm` — the official channels-first LayerNorm, here over the last (channel) axis.
* :class:`Converse2D` — depthwise reverse convolution with learned kernel and λ.
* :class:`ConverseBlock` / :class:`ConverseBlockAlpha` — the paper's Transformer-like block.

Parity notes (see ``shared/golden/README.md``): GELU is the exact erf form, LayerNorm uses the
biased variance computed in two passes with eps 1e-5 inside the square root, and 1×1
convolutions are dense layers over the channel axis (kernel ``(C_in, C_out)``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.nn.pointwise import pointwise_dot_general
from converse_jax.nn.precision import compute_dtype, precision
from converse_jax.nn.tie import tie, tied_promote_dtype
from converse_jax.ops import converse2d
from converse_jax.ops.validation import PADDING_MODES, solve_dtype

# 1×1 convolutions of the official code use trunc_normal(std=.02) cut at ±2 absolute, which is a
# plain N(0, .02²) in practice (Flax's truncated_normal would cut at ±2σ).
dense_init = nn.initializers.normal(stddev=0.02)


_SQRT_HALF, _INV_SQRT_2PI = 1 / math.sqrt(2), 1 / math.sqrt(2 * math.pi)


@jax.custom_jvp
def gelu(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as PyTorch's ``nn.GELU()``: ``x · Φ(x)``, elementwise (any shape, dtype kept).

    Φ(x) = ½(1 + erf(x/√2)) with XLA's ``erf``, and the derivative written out,
    Φ(x) + x·φ(x) with φ(x) = exp(−x²/2)/√(2π): ``jax.nn.gelu(approximate=False)`` goes through
    ``erfc``, which XLA evaluates piecewise, and lets autodiff differentiate that. Same values
    up to float32 rounding (the golden and gradient parity tests hold); on a (8, 40, 40, 128)
    array on one CPU thread the forward pass takes 1.13 ms instead of 2.64 ms, with its
    gradient 2.33 ms instead of 3.29 ms (``python benchmarks/pointwise.py``, 2026-11-30).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> [round(v, 4) for v in gelu(jnp.array([-1.0, 0.0, 1.0])).tolist()]
      [-0.1587, 0.0, 0.8413]
      >>> round(float(jax.grad(gelu)(1.0)), 4)  # Φ(1) + φ(1)
      1.0833
    """
    return x * _normal_cdf(x)


def _normal_cdf(x: jax.Array) -> jax.Array:
    return 0.5 * (1.0 + jax.lax.erf(x * _SQRT_HALF))  # Python floats: weakly typed, x's dtype kept


@gelu.defjvp
def _gelu_jvp(primals: tuple, tangents: tuple) -> tuple:
    (x,), (dx,) = primals, tangents
    cdf = _normal_cdf(x)
    pdf = jnp.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return x * cdf, (cdf + x * pdf) * dx


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


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float, dtype: Any) -> jax.Array:
    """LayerNorm over the last axis with the statistics in at least float32, result in ``dtype``
    (None: ``x``'s); the math of :class:`LayerNorm` (and of its NNX twin). ``scale`` and
    ``bias`` are tied to ``x`` (:mod:`converse_jax.nn.tie`)."""
    x, scale, bias = tie(x, scale, bias)
    out_dtype = compute_dtype(dtype, x)
    x = x.astype(solve_dtype(x.dtype))  # statistics in float32 (float64 kept)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = jnp.mean(jnp.square(centred), axis=-1, keepdims=True)
    y = centred / jnp.sqrt(var + eps)
    return (y * scale.astype(y.dtype) + bias.astype(y.dtype)).astype(out_dtype)


def converse2d_layer(
    x: jax.Array, kernel: jax.Array, bias: jax.Array, eps: float, dtype: Any, **op_kwargs: Any
) -> jax.Array:
    """The layer's reverse convolution: λ = sigmoid(bias − 9) + eps; ``x``, kernel and λ enter
    the solve in at least float32 (``x`` is not rounded to a half ``dtype`` first: the solve
    amplifies input rounding), the result is cast to ``dtype`` (None: ``x``'s); ``op_kwargs``
    (scale, padding, padding_mode) go to :func:`converse2d`. The math of :class:`Converse2D`
    (and its NNX twin). ``kernel`` and ``bias`` are tied to ``x`` (:mod:`converse_jax.nn.tie`):
    a layer applied several times solves with a transfer function made per application."""
    x, kernel, bias = tie(x, kernel, bias)
    dtype = compute_dtype(dtype, x)
    solve = jnp.promote_types(solve_dtype(x.dtype), solve_dtype(dtype))
    lam = jax.nn.sigmoid(bias.astype(solve) - 9.0) + eps
    return converse2d(x.astype(solve), kernel.astype(solve), lam, **op_kwargs).astype(dtype)


def block_forward(block: Any, x: jax.Array) -> jax.Array:
    """The ConverseBlock computation on a block object with the sub-layers ``norm1``, ``expand1``,
    ``spatial``, ``project1``, ``norm2``, ``expand2``, ``project2`` (callables), the attributes
    ``dtype`` and ``use_alpha`` and, with alphas, the arrays ``alpha1``, ``alpha2``; shared by the
    linen and NNX blocks. (N, H, W, C) -> same. The branches compute in ``dtype``; the residual
    stream ``x`` stays in at least float32 (a bfloat16 stream cost ConverseNet 0.29 dB in
    ``benchmarks/bf16_psnr.py --crop 96``, over its 35 block applications), so the result is float32 for half-precision ``dtype`` or input."""
    x = x.astype(solve_dtype(x.dtype))
    f1 = block.project1(gelu(block.spatial(gelu(block.expand1(block.norm1(x))))))
    x = x + (block.alpha1[...].astype(x.dtype) * f1 if block.use_alpha else f1)
    f2 = block.project2(gelu(block.expand2(block.norm2(x))))
    return x + (block.alpha2[...].astype(x.dtype) * f2 if block.use_alpha else f2)


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NHWC tensor (the official "channels_first" LN).

    y = (x − mean_C x) / sqrt(var_C x + eps) · scale + bias, with the biased variance
    ``mean((x − mean)²)``. Shapes: (..., C) -> (..., C). Params ``scale`` (C,) ones and
    ``bias`` (C,) zeros.

    ``dtype``: computation dtype (None: the input's); ``param_dtype``: storage dtype of the
    parameters. The mean and variance are computed in at least float32 whatever ``dtype``.

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
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        return layer_norm(x, scale, bias, self.eps, self.dtype)


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
      dtype: computation dtype (None: the input's); the solve itself runs in at least float32,
        with the kernel and λ in float32, and the result has ``dtype``.
      param_dtype: storage dtype of ``kernel`` and ``bias``.

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
    dtype: Any = None
    param_dtype: Any = jnp.float32

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
        kernel = self.param("kernel", softmax_normal_init, (kh, kw, self.features), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        return converse2d_layer(
            x,
            kernel,
            bias,
            self.eps,
            self.dtype,
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

    ``dtype`` (computation, None: the input's) and ``param_dtype`` (storage) are passed to every
    sub-layer; the residual stream (the block's input, output and the two additions) is kept in
    at least float32 (see :func:`block_forward`).

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
    dtype: Any = None
    param_dtype: Any = jnp.float32
    use_alpha: ClassVar[bool] = False

    def spatial_layer(self, channels: int) -> nn.Module:
        """The depthwise spatial operator of the first branch, on ``channels`` = 2C channels."""
        return Converse2D(
            channels, self.kernel_size, 1, self.padding, self.padding_mode, self.eps, **precision(self)
        )

    def setup(self) -> None:
        c = self.features
        prec = precision(self)

        def dense(features: int) -> nn.Dense:  # a 1×1 convolution, its parameters tied to its input
            return nn.Dense(
                features,
                kernel_init=dense_init,
                dot_general=pointwise_dot_general,
                promote_dtype=tied_promote_dtype,
                **prec,
            )

        self.norm1 = LayerNorm(**prec)
        self.expand1 = dense(2 * c)
        self.spatial = self.spatial_layer(2 * c)
        self.project1 = dense(c)
        self.norm2 = LayerNorm(**prec)
        self.expand2 = dense(2 * c)
        self.project2 = dense(c)
        if self.use_alpha:
            self.alpha1 = self.param("alpha1", nn.initializers.zeros, (c,), self.param_dtype)
            self.alpha2 = self.param("alpha2", nn.initializers.zeros, (c,), self.param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] != self.features:
            raise ValueError(
                f"{type(self).__name__} expects (N, H, W, {self.features}) NHWC input, "
                f"got shape {x.shape}"
            )
        return block_forward(self, x)


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
