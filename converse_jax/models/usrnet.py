"""Non-blind (kernel-conditioned) deblurring / SR networks (NHWC): Converse-USRNet and ConvUSRNet.

:class:`ConverseUSRNet` (official ``ConverseUSRNet``, released weights), ``model(x, kernel, sf)``:

* :class:`KernelNet`: the blur kernel (N, 7, 7), flattened row-major to (N, 49) → Linear 49→64 →
  GELU → Linear 64→64 → GELU → Linear 64→784 → reshaped as PyTorch's (N, 16, 7, 7), here NHWC
  (N, 7, 7, 16).
* ``x ← head(x)`` (1×1 conv 3→64).
* For iteration i = 0 … 4: per-sample, per-channel kernels ``k_i = kernel_proj_i(k16)`` (1×1 conv
  16→64 on the 7×7 "image": (N, 7, 7, 64), unnormalised); data step ``x ← D(x, k_i, s)`` with
  s = sf for i = 0 and 1 afterwards; then the *shared* stack of 7 :class:`ConverseBlockAlpha`
  (k3, p2, circular, eps 1e-5).
* D (:class:`KernelDataStep`, one shared instance) is the Converse2D solve with the per-sample
  kernel, λ = sigmoid(alpha − 9) + 1e-3 (``alpha`` (64,) shared by all iterations), padding 0
  (purely circular).
* ``tail``: 1×1 conv 64→3. 307,987 parameters.

:class:`ConvUSRNet` — **a plausible construction, not the paper's network.** The paper's
Conv-USRNet is in no official commit (paper_notes §4). This port keeps everything of
ConverseUSRNet (KernelNet, per-iteration kernel projections, shared 7-block stack with alphas)
and swaps the two Converse parts for their convolution counterparts: the blocks are
:class:`ConvBlockAlpha` (depthwise k3, p1, circular) and the data step (:class:`KernelConvStep`)
is a nearest ×s up-sampling followed by a per-sample depthwise *circular convolution* with the
predicted kernel k_i (instead of the closed-form reverse convolution). 307,923 parameters.

Params: ``head``, ``kernel_net`` (``fc1``–``fc3``), ``kernel_proj_0`` … ``kernel_proj_4``, ``data``
(ConverseUSRNet: ``alpha``), ``blocks_0`` … ``blocks_6``, ``tail``. Init: stack N(0, 0.02²)/zero
bias, everything else PyTorch's default U(±1/√fan_in); ``alpha`` zeros.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.models.common import check_image, conv1x1, make_blocks
from converse_jax.models.registry import ShowcaseRow, official_weights, register_model
from converse_jax.models.torch_names import TorchNames, TorchRule, block_rules
from converse_jax.nn.baselines import ConvBlockAlpha, torch_bias_init, torch_kernel_init, upsample_nearest
from converse_jax.nn.converse import ConverseBlockAlpha, converse2d_layer, gelu
from converse_jax.nn.precision import compute_dtype, precision, solve_dtype


_USRNET_HPARAMS = {"channels": "in_channels", "kernel_size": "blur_kernel_size"}


def _usrnet_names(spatial: str) -> TorchNames:
    """The official ``ConverseUSRNet`` names: the deblurring stack's, ``kernelnet.fcN``, ``convs.i``, ``d``."""

    def rules(model: nn.Module) -> list[TorchRule]:
        return [
            TorchRule("head", "conv1", "conv1x1"),
            *block_rules(r"blocks_(\d+)", "p.m_body.{0}", spatial),
            TorchRule("tail", "conv2", "conv1x1"),
            TorchRule(r"kernel_net/(fc\d)", "kernelnet.{0}", "linear"),
            TorchRule(r"kernel_proj_(\d+)", "convs.{0}", "conv1x1"),
            TorchRule("data", "d", "alpha"),
        ]

    return TorchNames(rules, lambda s: "kernelnet.fc1.weight" in s and ("d.alpha" in s) == (spatial == "converse"))


class KernelNet(nn.Module):
    """MLP from a blur kernel to ``out_channels`` feature kernels of the same size.

    (N, kh, kw) -> (N, kh, kw, out_channels): flatten row-major, fc1 (kh·kw→hidden) → GELU →
    fc2 (hidden→hidden) → GELU → fc3 (hidden→out_channels·kh·kw), the last read in PyTorch's
    (out_channels, kh, kw) order and moved channels-last.

    Example (shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> net = KernelNet(hidden=8, out_channels=4)
      >>> kernel = jnp.zeros((2, 7, 7))  # (N, kh, kw) blur kernels
      >>> y, variables = jax.eval_shape(net.init_with_output, jax.random.key(0), kernel)
      >>> y.shape, variables["params"]["fc3"]["kernel"].shape  # fc3: hidden -> 4·7·7
      ((2, 7, 7, 4), (8, 196))
    """

    hidden: int = 64
    out_channels: int = 16
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, kernel: jax.Array) -> jax.Array:
        n, kh, kw = kernel.shape
        taps = kh * kw

        def linear(features: int, fan_in: int, name: str) -> nn.Dense:
            # PyTorch Linear default init, U(±1/√fan_in) for weight and bias
            return nn.Dense(
                features,
                kernel_init=torch_kernel_init,
                bias_init=torch_bias_init(fan_in),
                name=name,
                **precision(self),
            )

        h = gelu(linear(self.hidden, taps, "fc1")(kernel.reshape(n, taps)))
        h = gelu(linear(self.hidden, self.hidden, "fc2")(h))
        h = linear(self.out_channels * taps, self.hidden, "fc3")(h)
        return h.reshape(n, self.out_channels, kh, kw).transpose(0, 2, 3, 1)


class KernelDataStep(nn.Module):
    """Converse-USRNet's data step: reverse convolution with a per-sample kernel.

    ``converse2d(x, kernel, λ, scale, padding=0)`` with λ = sigmoid(alpha − 9) + eps per channel,
    solved and returned in at least float32 whatever ``dtype`` (its result is the running image
    estimate);
    x (N, H, W, C), kernel (N, kh, kw, C) -> (N, H·scale, W·scale, C). Param ``alpha`` (C,), zeros.

    Example (shapes traced with ``jax.eval_shape``, nothing computed; ``scale`` must be static):
      >>> import jax, jax.numpy as jnp
      >>> step = KernelDataStep(features=4)
      >>> x, kernel = jnp.ones((2, 8, 8, 4)), jnp.ones((2, 3, 3, 4)) / 9  # one kernel per sample
      >>> y, variables = jax.eval_shape(
      ...     lambda x, k: step.init_with_output(jax.random.key(0), x, k, 2), x, kernel)
      >>> y.shape, variables["params"]["alpha"].shape
      ((2, 16, 16, 4), (4,))
    """

    features: int = 64
    eps: float = 1e-3
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, kernel: jax.Array, scale: int) -> jax.Array:
        alpha = self.param("alpha", nn.initializers.zeros, (self.features,), self.param_dtype)
        # The step's result is the network's running image estimate: like the blocks' residual
        # stream it stays in at least float32 whatever dtype (rounded to bfloat16 it cost 0.12 dB).
        out_dtype = solve_dtype(compute_dtype(self.dtype, x))
        return converse2d_layer(x, kernel, alpha, self.eps, out_dtype, scale=scale, padding=0)


def circular_conv_per_sample(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depthwise circular 2-D convolution with one kernel per sample and channel.

    ``y[n, i, j, c] = Σ_{a,b} kernel[n, a, b, c] · x[n, (i − a + ⌊kh/2⌋) mod H,
    (j − b + ⌊kw/2⌋) mod W, c]`` (tap (⌊kh/2⌋, ⌊kw/2⌋) is the origin, as in
    :func:`converse2d`'s forward model).
    x (N, H, W, C), kernel (N, kh, kw, C) -> (N, H, W, C).

    Example (sample 0: a delta at the origin tap, the identity; sample 1: a delta one tap right
    of it, a circular shift by one pixel along W):

      >>> import numpy as np
      >>> x = np.arange(2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
      >>> kernel = np.zeros((2, 3, 3, 3), np.float32)
      >>> kernel[0, 1, 1], kernel[1, 1, 2] = 1.0, 1.0
      >>> y = np.asarray(circular_conv_per_sample(x, kernel))
      >>> y.shape
      (2, 8, 8, 3)
      >>> bool(np.allclose(y[0], x[0])), bool(np.allclose(y[1], np.roll(x[1], 1, axis=1)))
      (True, True)
    """
    _, kh, kw, c = kernel.shape
    ch, cw = kh // 2, kw // 2
    xp = jnp.pad(x, ((0, 0), (kh - 1 - ch, ch), (kw - 1 - cw, cw), (0, 0)), mode="wrap")

    def one(xi: jax.Array, ki: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(
            xi[None],
            ki[::-1, ::-1, None, :],
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=c,
        )[0]

    return jax.vmap(one)(xp, kernel.astype(x.dtype))


class KernelConvStep(nn.Module):
    """ConvUSRNet's data step (plausible construction): nearest ×scale up-sampling, then
    :func:`circular_conv_per_sample` with the predicted kernel. No parameters.

    x (N, H, W, C), kernel (N, kh, kw, C) -> (N, H·scale, W·scale, C).

    Example (with a delta kernel the step is nearest up-sampling):
      >>> import numpy as np
      >>> x = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
      >>> delta = np.zeros((1, 3, 3, 1), np.float32)  # (N, kh, kw, C)
      >>> delta[0, 1, 1, 0] = 1.0
      >>> y = np.asarray(KernelConvStep().apply({}, x, delta, 2))
      >>> y.shape, bool(np.allclose(y[:, ::2, ::2], x)), bool(np.allclose(y[:, 1::2, 1::2], x))
      ((1, 16, 16, 1), True, True)
    """

    def __call__(self, x: jax.Array, kernel: jax.Array, scale: int) -> jax.Array:
        return circular_conv_per_sample(upsample_nearest(x, scale), kernel)


@register_model(
    "converse_usrnet", task="deblur_nonblind", in_channels=3, data_hparams=_USRNET_HPARAMS,
    tile_margin=64, tile_mirror=True,  # baby.png, 448:64 mirrored: -0.006 dB, 0.14 grey levels (docs/tiling.md)
    description="Converse-USRNet: KernelNet + per-sample reverse-convolution data steps, released weights",
    param_count=307_987, paper_param_count=307_091,
    pretrained=official_weights(
        "converse_usrnet.pth", "729529b8bc8cbda152d6b60734b01032b49c20fcb8b6da2fb33141d9c3378d82", 1_715_000
    ),
    torch_names=_usrnet_names("converse"),
    showcase=ShowcaseRow("Converse-USRNet", "rocket", (0.45, 0.5), "blurred + noise"),
)  # fmt: skip
class ConverseUSRNet(nn.Module):
    """Converse-USRNet; see the module docstring. ``model.apply(v, x, kernel, sf=1)``.

    Attributes:
      in_channels: image channels (3).
      features: feature channels C (64).
      num_blocks: blocks in the shared stack (7).
      num_iterations: unrolled iterations (5).
      kernel_size, padding, padding_mode, eps: the blocks' spatial operator (3, 2, 'circular', 1e-5).
      blur_kernel_size: side of the input blur kernel (7; KernelNet's fc1 has blur_kernel_size² inputs).
      kernel_hidden: KernelNet's hidden width (64).
      kernel_channels: KernelNet's output kernels (16).
      data_eps: lower bound of the data step's λ (1e-3).
      remat: rematerialise each block application in the backward pass (same results, less memory).
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``) of the blocks and 1×1
        convolutions; the kernel branch and the data steps keep at least float32. The output has
        the input's dtype. param_dtype: storage dtype of the parameters (float32).

    Example (a tiny network; shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax
      >>> from converse_jax.models import count_params, example_inputs
      >>> model = ConverseUSRNet(features=4, num_blocks=1, num_iterations=1)
      >>> x, kernel = example_inputs(model, size=8)  # (1, 8, 8, 3) image, (1, 7, 7) delta kernel
      >>> y, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x, kernel)
      >>> y.shape, count_params(variables["params"])
      ((1, 8, 8, 3), 58679)
      >>> jax.eval_shape(lambda v: model.apply(v, x, kernel, sf=2), variables).shape  # ×2 SR
      (1, 16, 16, 3)
    """

    in_channels: int = 3
    features: int = 64
    num_blocks: int = 7
    num_iterations: int = 5
    kernel_size: int = 3
    padding: int = 2
    padding_mode: str = "circular"
    eps: float = 1e-5
    blur_kernel_size: int = 7
    kernel_hidden: int = 64
    kernel_channels: int = 16
    data_eps: float = 1e-3
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    block_class: ClassVar[type[nn.Module]] = ConverseBlockAlpha

    def make_data_step(self) -> nn.Module:
        """The data step module shared by all iterations."""
        return KernelDataStep(self.features, self.data_eps, **precision(self))

    def setup(self) -> None:
        if not isinstance(self.num_iterations, int) or self.num_iterations < 1:
            raise ValueError(f"num_iterations must be a positive int, got {self.num_iterations!r}")
        prec = precision(self)
        self.head = conv1x1(self.features, torch_init=True, fan_in=self.in_channels, **prec)
        # The kernel branch (a few kFLOPs per image) keeps the input's precision whatever dtype:
        # it costs nothing, and the data steps' solves amplify the rounding of their kernels.
        self.kernel_net = KernelNet(self.kernel_hidden, self.kernel_channels, param_dtype=self.param_dtype)
        self.kernel_proj = [
            conv1x1(self.features, torch_init=True, fan_in=self.kernel_channels, param_dtype=self.param_dtype)
            for _ in range(self.num_iterations)
        ]
        self.data = self.make_data_step()
        self.blocks = make_blocks(
            self.block_class,
            self.num_blocks,
            self.remat,
            features=self.features,
            kernel_size=self.kernel_size,
            padding=self.padding,
            padding_mode=self.padding_mode,
            eps=self.eps,
            **prec,
        )
        self.tail = conv1x1(self.in_channels, torch_init=True, fan_in=self.features, **prec)

    def __call__(self, x: jax.Array, kernel: jax.Array, sf: int = 1) -> jax.Array:
        """Restore ``x`` given its blur ``kernel``.

        Args:
          x: (N, H, W, in_channels) degraded image (NHWC, floating).
          kernel: (N, k, k) per-sample blur kernels or one (k, k) kernel for the whole batch,
            k = ``blur_kernel_size``; cast to ``x``'s dtype.
          sf: integer scale factor (1 = deblurring); the first data step up-samples by it.

        Returns:
          (N, H·sf, W·sf, in_channels) restored image.
        """
        who = type(self).__name__
        check_image(x, self.in_channels, who)
        if isinstance(sf, bool) or not isinstance(sf, int) or sf < 1:
            raise ValueError(f"{who}: sf must be a positive int, got {sf!r}")
        k = jnp.asarray(kernel, x.dtype)
        ks = self.blur_kernel_size
        if k.ndim == 2:
            k = jnp.broadcast_to(k, (x.shape[0],) + k.shape)
        if k.shape != (x.shape[0], ks, ks):
            raise ValueError(
                f"{who}: kernel must have shape (N, {ks}, {ks}) with N={x.shape[0]} or ({ks}, {ks}), "
                f"got {jnp.shape(kernel)}"
            )
        k16 = self.kernel_net(k)
        y = self.head(x)
        for i in range(self.num_iterations):
            y = self.data(y, self.kernel_proj[i](k16), sf if i == 0 else 1)
            for block in self.blocks:
                y = block(y)
        return self.tail(y).astype(x.dtype)


@register_model(
    "conv_usrnet", task="deblur_nonblind", in_channels=3, data_hparams=_USRNET_HPARAMS,
    description="Conv-USRNet (plausible construction): conv blocks + per-sample convolution data steps",
    param_count=307_923, torch_names=_usrnet_names("conv"),
)  # fmt: skip
class ConvUSRNet(ConverseUSRNet):
    """Conv-USRNet, a **plausible construction** (the paper's network is unknown): ConverseUSRNet
    with :class:`ConvBlockAlpha` (depthwise k3, p1, circular) blocks and :class:`KernelConvStep`
    (nearest up-sampling + per-sample circular convolution with k_i) as data step. Same call
    and shapes as ConverseUSRNet.

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax
      >>> from converse_jax.models import example_inputs
      >>> model = ConvUSRNet(features=4, num_blocks=1, num_iterations=1)
      >>> x, kernel = example_inputs(model, size=8)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), x, kernel)[0].shape
      (1, 8, 8, 3)
    """

    padding: int = 1
    block_class: ClassVar[type[nn.Module]] = ConvBlockAlpha

    def make_data_step(self) -> nn.Module:
        """A parameter-free :class:`KernelConvStep`."""
        return KernelConvStep()
