"""×4 super-resolution networks (NHWC): Converse-SRResNet, its Conv/ConvT baselines, MSRResNet and
the up-sampler-only ablation ConverseUp-MSRResNet.

All add the input up-sampled bilinearly (PyTorch ``align_corners=False``) to the network output.

* :class:`ConverseSRResNet` (official ``ConverseMSRResNet``, released weights): 1×1 conv 3→64 →
  GELU → 16 ConverseBlocks (k5, p4, replicate) → 2 × [ConverseBlock → Converse2D(k2, scale 2,
  p2, replicate, eps 1e-3) → GELU] → ConverseBlock → GELU → 1×1 conv 64→3 without bias.
  699,072 parameters.
* :class:`ConvSRResNet`: 1×1 conv → GELU → 16 ConvBlocks (k5, p2, replicate) → 2 × [nearest ×2 →
  zero pad right/bottom 1 → depthwise 2×2 conv → GELU] → ConvBlock → GELU → 1×1 conv (bias).
  625,603 parameters.
* :class:`ConvTSRResNet`: as ConvSRResNet with ConvTBlocks and up-sampling stages [depthwise
  ConvTranspose(k5, stride 2, p2) → 2H − 1 → GELU → zero pad left/top 1]. The official blocks use
  k3/p2, which cannot run (the block shrinks the map); this port uses k5/p2 by default
  (628,291 parameters; k3/p1 gives 593,475).
* :class:`MSRResNet` (KAIR ``MSRResNet1``): conv3×3 → LReLU(0.1) → 16 ResidualBlocks → per ×2
  stage conv3×3 64→256 → PixelShuffle(2) → LReLU (×3: one stage 64→576, PixelShuffle(3)) →
  conv3×3 → LReLU → conv3×3 64→3. 1,517,571 parameters.
* :class:`ConverseUpMSRResNet` (official ``ConverseUpMSRResNet``, up-sampler ablation): as
  MSRResNet with GELU and stages [conv3×3 → Converse2D(k2, scale 2, p2, circular, eps 1e-5) →
  GELU]. 1,296,643 parameters.

The official block networks hard-code two ×2 stages (upscale 4 only); here ``upscale`` may be
2 or 4 (one or two stages). Param names: ``head``, ``blocks_i``, ``upconvs_i``, ``ups_i``,
``hres``, ``tail``. Init: block networks N(0, 0.02²)/zero bias; MSRResNet and ConverseUp use
PyTorch's defaults (Converse2D layers: softmax-normal kernel, zero bias).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.models.common import check_image, conv1x1, make_blocks
from converse_jax.models.registry import ShowcaseRow, official_weights, register_model
from converse_jax.models.torch_names import TorchNames, TorchRule, block_rules, converse_at, stage
from converse_jax.nn.baselines import (
    Conv2D,
    ConvBlock,
    ConvTBlock,
    DepthwiseConvTranspose2D,
    ResidualBlock,
    pixel_shuffle,
    upsample_bilinear,
    upsample_nearest,
)
from converse_jax.nn.converse import Converse2D, ConverseBlock, dense_init, gelu
from converse_jax.nn.precision import precision


_SR_HPARAMS = {"channels": "in_channels", "scale": "upscale"}


def _block_sr_names(spatial: str, up: str, up_shape: Callable[[tuple[int, ...]], bool]) -> TorchNames:
    """The official block SRResNets' names (``conv_first``, ``conv_body.i``, ``upconvN``, ``upN``,
    ``conv_hres``, ``conv_last``); ``up_shape`` tells the up-sampler's weight shape apart."""
    body = "conv_body.0.conv1.3.weight"

    def rules(model: nn.Module) -> list[TorchRule]:
        return [
            TorchRule("head", "conv_first", "conv1x1"),
            *block_rules(r"blocks_(\d+)", "conv_body.{0}", spatial),
            *block_rules(r"upconvs_(\d+)", stage("upconv{}"), spatial),
            TorchRule(r"ups_(\d+)", stage("up{}"), up),
            *block_rules("hres", "conv_hres", spatial),
            TorchRule("tail", "conv_last", "conv1x1"),
        ]

    def signature(s: Mapping[str, tuple[int, ...]]) -> bool:
        return body in s and converse_at(s, body) == (spatial == "converse") and up_shape(tuple(s.get("up1.weight", ())))

    return TorchNames(rules, signature)


def _msrresnet_names(converse_up: bool) -> TorchNames:
    """KAIR ``MSRResNet1``'s names (``recon_trunk.i``, ``upconvN``, ``HRconv``); the ablation adds ``upN``."""

    def rules(model: nn.Module) -> list[TorchRule]:
        return [
            TorchRule("head", "conv_first", "conv"),
            TorchRule(r"blocks_(\d+)/(conv[12])", "recon_trunk.{0}.{1}", "conv"),
            TorchRule(r"upconvs_(\d+)", stage("upconv{}"), "conv"),
            TorchRule(r"ups_(\d+)", stage("up{}"), "converse"),
            TorchRule("hres", "HRconv", "conv"),
            TorchRule("tail", "conv_last", "conv"),
        ]

    return TorchNames(rules, lambda s: "recon_trunk.0.conv1.weight" in s and ("up1.weight" in s) == converse_up)


def _num_x2_stages(upscale: int, who: str) -> int:
    if upscale not in (2, 4):
        raise ValueError(f"{who}: upscale must be 2 or 4 (×2 stages), got {upscale!r}")
    return 1 if upscale == 2 else 2


def _pad_hw(x: jax.Array, before: int, after: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))


class _BlockSRResNet(nn.Module):
    """Shared skeleton of the block-replacement SR networks (see the module docstring).

    Attributes:
      in_channels, out_channels: image channels.
      features: feature channels C.
      num_blocks: body blocks (the high-resolution block ``hres`` comes on top).
      upscale: 2 or 4.
      kernel_size, padding, padding_mode, eps: the blocks' spatial operator settings.
      remat: rematerialise each block in the backward pass (same results, less memory).
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``); the output has the
        input's dtype. param_dtype: storage dtype of the parameters (float32).
    """

    in_channels: int = 3
    out_channels: int = 3
    features: int = 64
    num_blocks: int = 16
    upscale: int = 4
    kernel_size: int = 5
    padding: int = 4
    padding_mode: str = "replicate"
    eps: float = 1e-5
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    block_class: ClassVar[type[nn.Module]] = ConverseBlock
    upconv_blocks: ClassVar[bool] = False
    tail_bias: ClassVar[bool] = True

    def make_up(self) -> nn.Module:
        """The learned layer of one ×2 up-sampling stage."""
        raise NotImplementedError

    def up_stage(self, i: int, x: jax.Array) -> jax.Array:
        """One ×2 up-sampling stage ``i`` (after ``upconvs_i`` where present)."""
        raise NotImplementedError

    def _block(self) -> nn.Module:
        cls = nn.remat(self.block_class) if self.remat else self.block_class
        return cls(
            features=self.features,
            kernel_size=self.kernel_size,
            padding=self.padding,
            padding_mode=self.padding_mode,
            eps=self.eps,
            **precision(self),
        )

    def setup(self) -> None:
        stages = _num_x2_stages(self.upscale, type(self).__name__)
        self.head = conv1x1(self.features, **precision(self))
        self.blocks = make_blocks(
            self.block_class,
            self.num_blocks,
            self.remat,
            features=self.features,
            kernel_size=self.kernel_size,
            padding=self.padding,
            padding_mode=self.padding_mode,
            eps=self.eps,
            **precision(self),
        )
        if self.upconv_blocks:
            self.upconvs = [self._block() for _ in range(stages)]
        self.ups = [self.make_up() for _ in range(stages)]
        self.hres = self._block()
        self.tail = conv1x1(self.out_channels, use_bias=self.tail_bias, **precision(self))

    def __call__(self, x: jax.Array) -> jax.Array:
        """(N, H, W, in_channels) -> (N, H·upscale, W·upscale, out_channels)."""
        check_image(x, self.in_channels, type(self).__name__)
        y = gelu(self.head(x))
        for block in self.blocks:
            y = block(y)
        for i in range(len(self.ups)):
            if self.upconv_blocks:
                y = self.upconvs[i](y)
            y = self.up_stage(i, y)
        y = self.tail(gelu(self.hres(y)))
        return (y + upsample_bilinear(x, self.upscale)).astype(x.dtype)


@register_model(
    "converse_srresnet", task="sr", in_channels=3, scale=4, data_hparams=_SR_HPARAMS,
    description="Converse-SRResNet x4: ConverseBlocks + Converse2D x2 up-samplers, released weights",
    param_count=699_072, paper_param_count=694_208,
    pretrained=official_weights(
        "converse_srresnet.pth", "ed75a697f1ebb9f9ad6a53b7875bb76098f23b48d87bf6f0b0dd8cde6df81d2f", 585_000
    ),
    torch_names=_block_sr_names("converse", "converse", lambda up: True),
    showcase=ShowcaseRow("Converse-SRResNet", "astronaut", (0.72, 0.42), "bicubic x4 input"),
)  # fmt: skip
class ConverseSRResNet(_BlockSRResNet):
    """Converse-SRResNet (official ``ConverseMSRResNet``); see the module docstring.

    (N, H, W, in_channels) -> (N, H·upscale, W·upscale, out_channels). Extra attributes:
    ``up_kernel_size`` (2), ``up_padding`` (2), ``up_padding_mode`` ('replicate'), ``up_eps``
    (1e-3) of the scale-2 Converse2D up-samplers ``ups_i``.

    Example (a tiny ×4 network; shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> from converse_jax.models import count_params
      >>> model = ConverseSRResNet(features=4, num_blocks=1)
      >>> x = jnp.zeros((1, 8, 8, 3))  # (N, H, W, C) low-resolution batch
      >>> y, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
      >>> y.shape, count_params(variables["params"])
      ((1, 32, 32, 3), 1572)
      >>> variables["params"]["ups_0"]["kernel"].shape  # Converse2D ×2, k2
      (2, 2, 4)
    """

    up_kernel_size: int = 2
    up_padding: int = 2
    up_padding_mode: str = "replicate"
    up_eps: float = 1e-3
    upconv_blocks: ClassVar[bool] = True
    tail_bias: ClassVar[bool] = False

    def make_up(self) -> nn.Module:
        """Converse2D(features, up_kernel_size, scale 2, up_padding, up_padding_mode, up_eps)."""
        return Converse2D(
            self.features,
            self.up_kernel_size,
            2,
            self.up_padding,
            self.up_padding_mode,
            self.up_eps,
            **precision(self),
        )

    def up_stage(self, i: int, x: jax.Array) -> jax.Array:
        """GELU(Converse2D ×2)."""
        return gelu(self.ups[i](x))


@register_model(
    "conv_srresnet", task="sr", in_channels=3, scale=4, data_hparams=_SR_HPARAMS,
    description="Conv-SRResNet x4 baseline: ConvBlocks + nearest/depthwise-conv up-samplers", param_count=625_603,
    torch_names=_block_sr_names("conv", "conv", lambda up: len(up) == 4 and up[-1] == 2),
)  # fmt: skip
class ConvSRResNet(_BlockSRResNet):
    """Conv-SRResNet (official ``Conv_Block_MSRResNet``); see the module docstring.

    (N, H, W, in_channels) -> (N, H·upscale, W·upscale, out_channels).

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> model = ConvSRResNet(features=4, num_blocks=1, upscale=2)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))[0].shape
      (1, 16, 16, 3)
    """

    padding: int = 2
    block_class: ClassVar[type[nn.Module]] = ConvBlock

    def make_up(self) -> nn.Module:
        """Depthwise 2×2 convolution, no padding (N(0, 0.02²) weights, zero bias)."""
        return Conv2D(
            self.features,
            2,
            groups=self.features,
            kernel_init=dense_init,
            bias_init=nn.initializers.zeros,
            **precision(self),
        )

    def up_stage(self, i: int, x: jax.Array) -> jax.Array:
        """nearest ×2 → zero pad right/bottom 1 → depthwise 2×2 → GELU: (H, W) -> (2H, 2W)."""
        return gelu(self.ups[i](_pad_hw(upsample_nearest(x, 2), 0, 1)))


@register_model(
    "convt_srresnet", task="sr", in_channels=3, scale=4, data_hparams=_SR_HPARAMS,
    description="ConvT-SRResNet x4 baseline: ConvTBlocks (k5/p2 chosen) + ConvTranspose up-samplers",
    param_count=628_291, torch_names=_block_sr_names("conv", "conv", lambda up: len(up) == 4 and up[-1] != 2),
)  # fmt: skip
class ConvTSRResNet(_BlockSRResNet):
    """ConvT-SRResNet (official ``ConvT_Block_MSRResNet``, block size chosen here: k5/p2);
    see the module docstring. (N, H, W, in_channels) -> (N, H·upscale, W·upscale, out_channels).

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> model = ConvTSRResNet(features=4, num_blocks=1)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))[0].shape
      (1, 32, 32, 3)
    """

    padding: int = 2
    padding_mode: str = "constant"
    block_class: ClassVar[type[nn.Module]] = ConvTBlock

    def make_up(self) -> nn.Module:
        """Depthwise ConvTranspose(k5, stride 2, padding 2) (N(0, 0.02²) weights, zero bias)."""
        return DepthwiseConvTranspose2D(
            self.features,
            5,
            stride=2,
            padding=2,
            kernel_init=dense_init,
            bias_init=nn.initializers.zeros,
            **precision(self),
        )

    def up_stage(self, i: int, x: jax.Array) -> jax.Array:
        """ConvT ×2 (2H − 1) → GELU → zero pad left/top 1: (H, W) -> (2H, 2W)."""
        return _pad_hw(gelu(self.ups[i](x)), 1, 0)


@register_model(
    "msrresnet", task="sr", in_channels=3, scale=4, data_hparams=_SR_HPARAMS,
    description="MSRResNet x4 (KAIR MSRResNet1): residual blocks + PixelShuffle", param_count=1_517_571,
    torch_names=_msrresnet_names(converse_up=False),
)  # fmt: skip
class MSRResNet(nn.Module):
    """KAIR ``MSRResNet1`` (modified SRResNet): (N, H, W, in) -> (N, H·upscale, W·upscale, out).

    Attributes:
      in_channels, out_channels, features, num_blocks: as the paper (3, 3, 64, 16).
      upscale: 2, 3 or 4.
      remat: rematerialise each residual block in the backward pass.
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``); the output has the
        input's dtype. param_dtype: storage dtype of the parameters (float32).

    Params ``head``, ``blocks_i`` (:class:`ResidualBlock`), ``upconvs_i``, ``hres``, ``tail``.

    Example (a tiny ×3 network, one PixelShuffle(3) stage; shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> from converse_jax.models import count_params
      >>> model = MSRResNet(features=4, num_blocks=1, upscale=3)
      >>> x = jnp.zeros((1, 8, 8, 3))  # (N, H, W, C) low-resolution batch
      >>> y, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
      >>> y.shape, count_params(variables["params"])
      ((1, 24, 24, 3), 1999)
      >>> variables["params"]["upconvs_0"]["kernel"].shape  # 4 → 4·3² channels for the shuffle
      (3, 3, 4, 36)
    """

    in_channels: int = 3
    out_channels: int = 3
    features: int = 64
    num_blocks: int = 16
    upscale: int = 4
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        if self.upscale not in (2, 3, 4):
            raise ValueError(f"MSRResNet: upscale must be 2, 3 or 4, got {self.upscale!r}")
        prec = precision(self)
        self.head = Conv2D(self.features, 3, padding=1, **prec)
        self.blocks = make_blocks(ResidualBlock, self.num_blocks, self.remat, features=self.features, **prec)
        r = 2 if self.upscale in (2, 4) else 3
        stages = 2 if self.upscale == 4 else 1
        self.upconvs = [Conv2D(self.features * r * r, 3, padding=1, **prec) for _ in range(stages)]
        self.hres = Conv2D(self.features, 3, padding=1, **prec)
        self.tail = Conv2D(self.out_channels, 3, padding=1, **prec)

    def __call__(self, x: jax.Array) -> jax.Array:
        check_image(x, self.in_channels, "MSRResNet")

        def lrelu(t: jax.Array) -> jax.Array:
            return jax.nn.leaky_relu(t, 0.1)

        y = lrelu(self.head(x))
        for block in self.blocks:
            y = block(y)
        r = 3 if self.upscale == 3 else 2
        for upconv in self.upconvs:
            y = lrelu(pixel_shuffle(upconv(y), r))
        y = self.tail(lrelu(self.hres(y)))
        return (y + upsample_bilinear(x, self.upscale)).astype(x.dtype)


@register_model(
    "converseup_msrresnet", task="sr", in_channels=3, scale=4, data_hparams=_SR_HPARAMS,
    description="MSRResNet x4 with Converse2D up-samplers (up-sampler ablation)", param_count=1_296_643,
    torch_names=_msrresnet_names(converse_up=True),
)  # fmt: skip
class ConverseUpMSRResNet(nn.Module):
    """Up-sampler ablation (official ``ConverseUpMSRResNet``): MSRResNet with GELU and
    Converse2D up-sampling stages; (N, H, W, in) -> (N, H·upscale, W·upscale, out).

    Attributes:
      in_channels, out_channels, features, num_blocks: 3, 3, 64, 16.
      upscale: 2 or 4 (×2 stages).
      up_kernel_size, up_padding, up_padding_mode, up_eps: the Converse2D up-samplers
        (2, 2, 'circular', 1e-5).
      remat: rematerialise each residual block in the backward pass.
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``); the output has the
        input's dtype. param_dtype: storage dtype of the parameters (float32).

    Params ``head``, ``blocks_i``, ``upconvs_i`` (conv3×3), ``ups_i`` (Converse2D), ``hres``, ``tail``.

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> model = ConverseUpMSRResNet(features=4, num_blocks=1, upscale=2)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))[0].shape
      (1, 16, 16, 3)
    """

    in_channels: int = 3
    out_channels: int = 3
    features: int = 64
    num_blocks: int = 16
    upscale: int = 4
    up_kernel_size: int = 2
    up_padding: int = 2
    up_padding_mode: str = "circular"
    up_eps: float = 1e-5
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        stages = _num_x2_stages(self.upscale, "ConverseUpMSRResNet")
        prec = precision(self)
        self.head = Conv2D(self.features, 3, padding=1, **prec)
        self.blocks = make_blocks(ResidualBlock, self.num_blocks, self.remat, features=self.features, **prec)
        self.upconvs = [Conv2D(self.features, 3, padding=1, **prec) for _ in range(stages)]
        self.ups = [
            Converse2D(
                self.features, self.up_kernel_size, 2, self.up_padding, self.up_padding_mode, self.up_eps, **prec
            )
            for _ in range(stages)
        ]
        self.hres = Conv2D(self.features, 3, padding=1, **prec)
        self.tail = Conv2D(self.out_channels, 3, padding=1, **prec)

    def __call__(self, x: jax.Array) -> jax.Array:
        check_image(x, self.in_channels, "ConverseUpMSRResNet")
        y = gelu(self.head(x))
        for block in self.blocks:
            y = block(y)
        for upconv, up in zip(self.upconvs, self.ups):
            y = gelu(up(upconv(y)))
        y = self.tail(gelu(self.hres(y)))
        return (y + upsample_bilinear(x, self.upscale)).astype(x.dtype)
