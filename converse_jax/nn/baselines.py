"""Layers of the paper's convolution baselines and the SR networks' up-sampling paths (NHWC).

* :class:`Conv2D`, :class:`DepthwiseConvTranspose2D` — PyTorch-semantics convolutions with an
  explicit padding mode (``Conv2d(padding_mode=...)``) and a transposed depthwise convolution.
* :class:`ConvBlock`, :class:`ConvBlockAlpha`, :class:`ConvTBlock` — :class:`ConverseBlock` with
  the depthwise Converse2D replaced by a depthwise convolution / transposed convolution
  (the official ``Conv_Block`` / ``ConvT_Block``).
* :class:`ResidualBlock` — SRResNet's conv3×3 → ReLU → conv3×3 + x (no batch norm).
* :func:`pixel_shuffle`, :func:`upsample_nearest`, :func:`upsample_bilinear` — PyTorch's
  ``PixelShuffle``, nearest and bilinear (``align_corners=False``) integer up-sampling on NHWC.
* :data:`torch_kernel_init`, :func:`torch_bias_init` — PyTorch's default ``Conv2d``/``Linear``
  initialisation, U(±1/√fan_in) for weight and bias.

Layouts: a k×k convolution kernel is ``(kh, kw, C_in/groups, C_out)`` (Flax ``nn.Conv``'s HWIO);
a PyTorch ``(C_out, C_in/groups, kh, kw)`` weight maps to it by ``transpose(2, 3, 1, 0)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from converse_jax.nn.converse import ConverseBlock, dense_init
from converse_jax.nn.precision import compute_dtype, precision
from converse_jax.ops.validation import PADDING_MODES, pad_spatial
from converse_jax.utils.validate import check_nhwc

Initializer = Callable[..., jax.Array]

# PyTorch's default Conv2d/Linear weight init is kaiming_uniform(a=√5) = U(±1/√fan_in): a
# variance of 1/(3·fan_in). Flax's fan_in of an HWIO kernel is kh·kw·I, as PyTorch's
# (I = C_in/groups; for a transposed depthwise kernel (kh, kw, 1, C) it is kh·kw, again as PyTorch).
torch_kernel_init: Initializer = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int) -> Initializer:
    """PyTorch's default bias init for a layer with ``fan_in`` inputs per output: U(±1/√fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """PyTorch ``PixelShuffle(r)`` on NHWC: (N, H, W, C·r²) -> (N, H·r, W·r, C).

    ``out[n, h·r + i, w·r + j, c] = x[n, h, w, c·r² + i·r + j]`` (PyTorch's channel order).

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(16.0).reshape(1, 2, 2, 4)  # (N, H, W, C·r²), r = 2
      >>> y = pixel_shuffle(x, 2)
      >>> y.shape
      (1, 4, 4, 1)
      >>> y[0, :, :, 0].astype(int).tolist()
      [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    """
    n, h, w, crr = x.shape
    if not isinstance(r, int) or r < 1 or crr % (r * r):
        raise ValueError(f"r must be a positive int dividing channels/r², got r={r!r} for {x.shape}")
    c = crr // (r * r)
    y = x.reshape(n, h, w, c, r, r).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, h * r, w * r, c)


def upsample_nearest(x: jax.Array, r: int) -> jax.Array:
    """Nearest-neighbour ×r up-sampling of an NHWC array: each pixel becomes an r×r block.

    (N, H, W, C) -> (N, H·r, W·r, C), dtype kept.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(4.0).reshape(1, 2, 2, 1)
      >>> y = upsample_nearest(x, 2)
      >>> y.shape
      (1, 4, 4, 1)
      >>> y[0, :, :, 0].astype(int).tolist()
      [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"r must be a positive int, got {r!r}")
    return jnp.repeat(jnp.repeat(x, r, axis=1), r, axis=2)


def _bilinear_taps(size: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper source index and upper weight of PyTorch's 1-D linear ×r resampling
    (``align_corners=False``): src = max((i + 0.5)/r − 0.5, 0), i0 = ⌊src⌋, i1 = min(i0+1, size−1)."""
    src = np.maximum((np.arange(size * r) + 0.5) / r - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    i1 = np.minimum(i0 + 1, size - 1)
    return i0, i1, src - i0


def upsample_bilinear(x: jax.Array, r: int) -> jax.Array:
    """Bilinear ×r up-sampling of an NHWC array with PyTorch's ``align_corners=False``.

    Same as ``F.interpolate(x, scale_factor=r, mode='bilinear', align_corners=False)`` (no
    antialiasing): output pixel i samples the source coordinate (i + 0.5)/r − 0.5, clamped at 0,
    linearly between its two neighbours, the upper one clamped to the last pixel; separable over
    H then W. (N, H, W, C) -> (N, H·r, W·r, C), dtype kept.

    Example (one row [0, 4]: the outputs sample 0, 0.25, 0.75 and 1 (clamped) of the way):
      >>> import jax.numpy as jnp
      >>> x = jnp.array([0.0, 4.0]).reshape(1, 1, 2, 1)
      >>> y = upsample_bilinear(x, 2)
      >>> y.shape
      (1, 2, 4, 1)
      >>> y[0, 0, :, 0].tolist()
      [0.0, 1.0, 3.0, 4.0]
    """
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC (N, H, W, C), got shape {x.shape}")
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"r must be a positive int, got {r!r}")
    for axis in (1, 2):
        i0, i1, lam = _bilinear_taps(x.shape[axis], r)
        shape = [1, 1, 1, 1]
        shape[axis] = lam.size
        lam = jnp.asarray(lam.reshape(shape), x.dtype)
        x = jnp.take(x, i0, axis=axis) * (1 - lam) + jnp.take(x, i1, axis=axis) * lam
    return x


class Conv2D(nn.Module):
    """PyTorch ``Conv2d(C_in, features, kernel_size, padding=padding, padding_mode=..., groups=...)``.

    The input is padded by ``padding`` on every spatial side in ``padding_mode`` ('circular',
    'reflect', 'replicate', 'constant' = zeros, PyTorch's meanings), then cross-correlated ("VALID",
    stride 1) with ``kernel`` (kh, kw, C_in/groups, features) and ``bias`` (features,) is added —
    the same as ``nn.Conv(feature_group_count=groups)`` after an explicit ``jnp.pad``.
    (N, H, W, C_in) -> (N, H + 2p − kh + 1, W + 2p − kw + 1, features).

    Init: ``kernel_init`` (default PyTorch's U(±1/√fan_in)); ``bias_init`` None = PyTorch's
    U(±1/√fan_in) with fan_in = kh·kw·C_in/groups. ``dtype``: computation dtype (None: the
    input's); ``param_dtype``: storage dtype of the parameters.

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 16, 16, 4))  # (N, H, W, C_in)
      >>> conv = Conv2D(features=8, kernel_size=3, padding=1, padding_mode="reflect")
      >>> y, variables = jax.eval_shape(conv.init_with_output, jax.random.key(0), x)
      >>> y.shape, variables["params"]["kernel"].shape
      ((1, 16, 16, 8), (3, 3, 4, 8))
      >>> depthwise = Conv2D(features=4, kernel_size=5, groups=4)  # no padding: 16 − 5 + 1
      >>> y, variables = jax.eval_shape(depthwise.init_with_output, jax.random.key(0), x)
      >>> y.shape, variables["params"]["kernel"].shape
      ((1, 12, 12, 4), (5, 5, 1, 4))
    """

    features: int
    kernel_size: int | tuple[int, int]
    padding: int = 0
    padding_mode: str = "constant"
    groups: int = 1
    use_bias: bool = True
    kernel_init: Initializer = torch_kernel_init
    bias_init: Initializer | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = _pair(self.kernel_size, "kernel_size")
        if x.ndim != 4:
            raise ValueError(f"Conv2D expects NHWC input (N, H, W, C), got shape {x.shape}")
        cin = x.shape[-1]
        if self.groups < 1 or cin % self.groups or self.features % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide the input channels ({cin}) and features "
                f"({self.features})"
            )
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {sorted(PADDING_MODES)}, got {self.padding_mode!r}"
            )
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0, got {self.padding}")
        fan_in = kh * kw * cin // self.groups
        kernel = self.param(
            "kernel", self.kernel_init, (kh, kw, cin // self.groups, self.features), self.param_dtype
        )
        x = x.astype(compute_dtype(self.dtype, x))
        y = jax.lax.conv_general_dilated(
            pad_spatial(x, self.padding, self.padding_mode),
            kernel.astype(x.dtype),
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.groups,
        )
        if self.use_bias:
            bias_init = self.bias_init or torch_bias_init(fan_in)
            bias = self.param("bias", bias_init, (self.features,), self.param_dtype)
            y = y + bias.astype(y.dtype)
        return y


class DepthwiseConvTranspose2D(nn.Module):
    """PyTorch ``ConvTranspose2d(C, C, kernel_size, stride, padding, groups=C)`` (zero padding).

    Each input pixel scatters ``x[h, w, c] · kernel[i, j, 0, c]`` to output position
    (stride·h + i − padding, stride·w + j − padding), then ``bias`` (C,) is added; output size
    (H − 1)·stride − 2·padding + kh (likewise W). ``kernel`` (kh, kw, 1, C) holds PyTorch's
    weight ``(C, 1, kh, kw)`` transposed by ``(2, 3, 1, 0)`` and *not* flipped; the flip that
    turns the scatter into a correlation happens inside (a stride-dilated correlation of the
    input with the flipped kernel and zero padding kh − 1 − padding).

    (N, H, W, C) -> (N, (H − 1)·stride − 2·padding + kh, (W − 1)·stride − 2·padding + kw, C).
    ``dtype`` (computation, None: the input's) and ``param_dtype`` (storage) as :class:`Conv2D`.

    Example (a ×2 up-sampler, k4/s2/p1; shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> up = DepthwiseConvTranspose2D(features=4, kernel_size=4, stride=2, padding=1)
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> y, variables = jax.eval_shape(up.init_with_output, jax.random.key(0), x)
      >>> y.shape, variables["params"]["kernel"].shape
      ((1, 16, 16, 4), (4, 4, 1, 4))
    """

    features: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: int = 0
    use_bias: bool = True
    kernel_init: Initializer = torch_kernel_init
    bias_init: Initializer | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = _pair(self.kernel_size, "kernel_size")
        check_nhwc(x, "DepthwiseConvTranspose2D", self.features)
        if not isinstance(self.stride, int) or self.stride < 1:
            raise ValueError(f"stride must be a positive int, got {self.stride!r}")
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0, got {self.padding}")
        c = self.features
        kernel = self.param("kernel", self.kernel_init, (kh, kw, 1, c), self.param_dtype)
        x = x.astype(compute_dtype(self.dtype, x))
        pad = ((kh - 1 - self.padding,) * 2, (kw - 1 - self.padding,) * 2)
        y = jax.lax.conv_general_dilated(
            x,
            kernel[::-1, ::-1].astype(x.dtype),
            window_strides=(1, 1),
            padding=pad,
            lhs_dilation=(self.stride, self.stride),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=c,
        )
        if self.use_bias:
            bias_init = self.bias_init or torch_bias_init(kh * kw)
            bias = self.param("bias", bias_init, (c,), self.param_dtype)
            y = y + bias.astype(y.dtype)
        return y


class ConvBlock(ConverseBlock):
    """The official ``Conv_Block``: :class:`ConverseBlock` with a depthwise k×k convolution
    (padding ``padding`` in ``padding_mode``, with bias) instead of Converse2D.

    The block keeps the size only for ``padding == (kernel_size − 1)/2`` (otherwise the residual
    add is impossible; ``ValueError``). Defaults k3/p1 replicate. Spatial params ``kernel``
    (k, k, 1, 2C) N(0, 0.02²) and ``bias`` (2C,) zeros. ``eps`` is unused. (N, H, W, C) -> same.

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> y, variables = jax.eval_shape(ConvBlock(features=4).init_with_output, jax.random.key(0), x)
      >>> y.shape, variables["params"]["spatial"]["kernel"].shape
      ((1, 8, 8, 4), (3, 3, 1, 8))
    """

    kernel_size: int = 3
    padding: int = 1
    padding_mode: str = "replicate"

    def spatial_layer(self, channels: int) -> nn.Module:
        """Depthwise k×k convolution on ``channels`` channels, size-preserving."""
        if 2 * self.padding != self.kernel_size - 1:
            raise ValueError(
                f"{type(self).__name__} needs padding = (kernel_size - 1)/2 to keep the size, got "
                f"kernel_size={self.kernel_size}, padding={self.padding}"
            )
        return Conv2D(
            channels,
            self.kernel_size,
            padding=self.padding,
            padding_mode=self.padding_mode,
            groups=channels,
            kernel_init=dense_init,
            bias_init=nn.initializers.zeros,
            **precision(self),
        )


class ConvBlockAlpha(ConvBlock):
    """:class:`ConvBlock` with zero-initialised per-channel residual scales ``alpha1``, ``alpha2``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> variables = jax.eval_shape(ConvBlockAlpha(features=4).init, jax.random.key(0), x)
      >>> variables["params"]["alpha1"].shape
      (4,)
    """

    use_alpha: ClassVar[bool] = True


class ConvTBlock(ConverseBlock):
    """The official ``ConvT_Block``: :class:`ConverseBlock` with a depthwise stride-1
    ``ConvTranspose2d(k, padding=p)`` (zero padding, bias) instead of Converse2D.

    A stride-1 transposed convolution maps H to H + k − 1 − 2p, so the size is kept only for
    p = (k − 1)/2 (defaults k3/p1; the official default k3/p2 shrinks the map by 2 and cannot run).
    Other settings raise ``ValueError``. ``padding_mode`` must be 'constant' (zeros; PyTorch's
    ConvTranspose2d supports nothing else); ``eps`` is unused. (N, H, W, C) -> same.

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> y, variables = jax.eval_shape(ConvTBlock(features=4).init_with_output, jax.random.key(0), x)
      >>> y.shape, variables["params"]["spatial"]["kernel"].shape
      ((1, 8, 8, 4), (3, 3, 1, 8))
    """

    kernel_size: int = 3
    padding: int = 1
    padding_mode: str = "constant"

    def spatial_layer(self, channels: int) -> nn.Module:
        """Depthwise stride-1 transposed convolution on ``channels`` channels, size-preserving."""
        if self.padding_mode != "constant":
            raise ValueError(
                f"ConvTBlock supports only padding_mode='constant' (zeros), got {self.padding_mode!r}"
            )
        if 2 * self.padding != self.kernel_size - 1:
            raise ValueError(
                f"ConvTBlock needs padding = (kernel_size - 1)/2 to keep the size, got "
                f"kernel_size={self.kernel_size}, padding={self.padding}"
            )
        return DepthwiseConvTranspose2D(
            channels,
            self.kernel_size,
            padding=self.padding,
            kernel_init=dense_init,
            bias_init=nn.initializers.zeros,
            **precision(self),
        )


class ResidualBlock(nn.Module):
    """SRResNet residual block without batch norm: ``x + conv2(relu(conv1(x)))``.

    conv1, conv2: 3×3, ``features`` → ``features``, zero padding 1, bias, PyTorch default init.
    (N, H, W, C) -> (N, H, W, C). Params ``conv1``, ``conv2`` (:class:`Conv2D`). ``dtype``
    (computation, None: the input's) and ``param_dtype`` (storage) as :class:`Conv2D`.

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.ones((1, 8, 8, 4))
      >>> y, variables = jax.eval_shape(ResidualBlock(features=4).init_with_output, jax.random.key(0), x)
      >>> y.shape, jax.tree.map(lambda a: a.shape, variables["params"]["conv1"])
      ((1, 8, 8, 4), {'bias': (4,), 'kernel': (3, 3, 4, 4)})
    """

    features: int = 64
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        check_nhwc(x, "ResidualBlock", self.features)
        x = x.astype(compute_dtype(self.dtype, x))
        y = Conv2D(self.features, 3, padding=1, name="conv1", **precision(self))(x)
        y = Conv2D(self.features, 3, padding=1, name="conv2", **precision(self))(jax.nn.relu(y))
        return x + y
