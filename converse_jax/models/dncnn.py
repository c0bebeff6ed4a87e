"""Gray-image denoisers: Converse-DnCNN, its Conv/ConvT baselines and the classic DnCNN (NHWC).

* :class:`ConverseDnCNN` (official ``ConverseDnCNN``, released weights): 1×1 conv C→64,
  20 :class:`ConverseBlock` (k7, p6, circular, eps 1e-5), 1×1 conv 64→C. The output is the
  restored image itself (no global residual). 796,353 parameters.
* :class:`ConvDnCNN` / :class:`ConvTDnCNN`: the same skeleton with :class:`ConvBlock` (k5, p2,
  circular) / :class:`ConvTBlock` (k5, p2, zeros). 734,913 parameters each.
* :class:`DnCNN`: KAIR's DnCNN (nb=17, 'BR'): conv3×3 + ReLU, 15 × (conv3×3 + BatchNorm + ReLU),
  conv3×3; output ``x − noise``. 557,057 parameters.

The official skeleton hard-codes 20 blocks; here ``num_blocks`` (default 20) is honoured.
Init: the block nets use N(0, 0.02²) weights and zero biases (official ``_init_weights``);
DnCNN uses PyTorch's defaults.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.models.common import check_image, conv1x1, make_blocks
from converse_jax.models.registry import ShowcaseRow, official_weights, register_model
from converse_jax.models.torch_names import TorchNames, TorchRule, block_rules, converse_at
from converse_jax.nn.baselines import Conv2D, ConvBlock, ConvTBlock
from converse_jax.nn.converse import ConverseBlock
from converse_jax.nn.precision import precision


def _block_net_names(spatial: str) -> TorchNames:
    """The official ``ConverseDnCNN`` names (``m_head``, ``m_body.i``, ``m_tail``) with ``spatial`` blocks."""
    body = "m_body.0.conv1.3.weight"

    def rules(model: nn.Module) -> list[TorchRule]:
        return [
            TorchRule("head", "m_head.0", "conv1x1"),
            *block_rules(r"blocks_(\d+)", "m_body.{0}", spatial),
            TorchRule("tail", "m_tail.0", "conv1x1"),
        ]

    return TorchNames(rules, lambda s: "m_head.0.weight" in s and body in s and converse_at(s, body) == (spatial == "converse"))


def _kair_dncnn_rules(model: nn.Module) -> list[TorchRule]:
    """KAIR ``DnCNN``'s sequential names: ``model.<i>`` (conv, BatchNorm, ReLU triplets)."""
    tail = 2 + 3 * (model.num_layers - 2)
    return [
        TorchRule("head", "model.0", "conv"),
        TorchRule(r"body_(\d+)/conv", lambda m: f"model.{2 + 3 * int(m[1])}", "conv"),
        TorchRule(r"body_(\d+)/bn", lambda m: f"model.{3 + 3 * int(m[1])}", "bn"),
        TorchRule("tail", f"model.{tail}", "conv"),
    ]


@register_model(
    "converse_dncnn", task="denoise", in_channels=1,
    description="Converse-DnCNN: 20 ConverseBlocks (k7, p6, circular), released weights",
    param_count=796_353, paper_param_count=734_913,
    pretrained=official_weights(
        "converse_dncnn.pth", "3b86c7f6e41a014448f923bc331232e1f45e2eae350dd7f9e18440803d283e89", 1_075_000
    ),
    torch_names=_block_net_names("converse"),
    showcase=ShowcaseRow("Converse-DnCNN", "astronaut", (0.25, 0.44), "noisy, sigma 25"),
)  # fmt: skip
class ConverseDnCNN(nn.Module):
    """Converse-DnCNN: (N, H, W, in_channels) noisy -> (N, H, W, in_channels) restored.

    Params: ``head`` (1×1 conv), ``blocks_0`` … ``blocks_{num_blocks-1}``, ``tail`` (1×1 conv).

    Attributes:
      in_channels: image channels (1 = gray).
      features: feature channels C (the blocks' Converse2D runs on 2C).
      num_blocks: number of blocks.
      kernel_size, padding, padding_mode, eps: the blocks' spatial operator settings.
      remat: rematerialise each block in the backward pass (same results, less memory).
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``); the output has the
        input's dtype. param_dtype: storage dtype of the parameters (float32).

    Example (a tiny network; shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> from converse_jax.models import count_params
      >>> model = ConverseDnCNN(features=4, num_blocks=1)
      >>> x = jnp.zeros((2, 16, 16, 1))  # (N, H, W, C) noisy gray batch
      >>> y, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
      >>> y.shape, count_params(variables["params"])
      ((2, 16, 16, 1), 581)
    """

    in_channels: int = 1
    features: int = 64
    num_blocks: int = 20
    kernel_size: int = 7
    padding: int = 6
    padding_mode: str = "circular"
    eps: float = 1e-5
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    block_class: ClassVar[type[nn.Module]] = ConverseBlock

    def setup(self) -> None:
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
        self.tail = conv1x1(self.in_channels, **precision(self))

    def __call__(self, x: jax.Array) -> jax.Array:
        check_image(x, self.in_channels, type(self).__name__)
        y = self.head(x)
        for block in self.blocks:
            y = block(y)
        return self.tail(y).astype(x.dtype)


@register_model(
    "conv_dncnn", task="denoise", in_channels=1,
    description="Conv-DnCNN baseline: 20 ConvBlocks (depthwise k5, p2, circular)",
    param_count=734_913, paper_param_count=734_913, torch_names=_block_net_names("conv"),
)  # fmt: skip
class ConvDnCNN(ConverseDnCNN):
    """Conv-DnCNN: :class:`ConverseDnCNN` with :class:`ConvBlock` (depthwise k5 conv, p2, circular);
    (N, H, W, in_channels) -> (N, H, W, in_channels).

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> model = ConvDnCNN(features=4, num_blocks=1)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((2, 16, 16, 1)))[0].shape
      (2, 16, 16, 1)
    """

    kernel_size: int = 5
    padding: int = 2
    padding_mode: str = "circular"
    block_class: ClassVar[type[nn.Module]] = ConvBlock


@register_model(
    "convt_dncnn", task="denoise", in_channels=1,
    description="ConvT-DnCNN baseline: 20 ConvTBlocks (depthwise k5 ConvTranspose, p2)",
    param_count=734_913, paper_param_count=734_913, torch_names=_block_net_names("conv"),
)  # fmt: skip
class ConvTDnCNN(ConverseDnCNN):
    """ConvT-DnCNN: :class:`ConverseDnCNN` with :class:`ConvTBlock` (depthwise k5 ConvTranspose,
    p2, zero padding; the official constructor passes a padding mode ConvT_Block does not accept);
    (N, H, W, in_channels) -> (N, H, W, in_channels).

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> model = ConvTDnCNN(features=4, num_blocks=1)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((2, 16, 16, 1)))[0].shape
      (2, 16, 16, 1)
    """

    kernel_size: int = 5
    padding: int = 2
    padding_mode: str = "constant"
    block_class: ClassVar[type[nn.Module]] = ConvTBlock


class ConvBNReLU(nn.Module):
    """conv3×3 (zero pad 1, bias) → BatchNorm → ReLU, (N, H, W, C) -> (N, H, W, features).

    BatchNorm as PyTorch ``BatchNorm2d(momentum=0.9, eps=1e-4)`` (KAIR's setting): PyTorch's
    momentum m updates ``running = (1 − m)·running + m·batch``, i.e. Flax ``momentum = 1 − m = 0.1``.
    One difference remains: PyTorch stores the *unbiased* batch variance in ``running_var``,
    Flax the biased one (a factor n/(n − 1) with n = N·H·W pixels per channel, negligible for
    training batches); normalisation uses the biased variance in both.

    Example (``train=True`` normalises with the batch statistics and updates ``batch_stats``):
      >>> import jax, jax.numpy as jnp
      >>> layer = ConvBNReLU(features=4)
      >>> x = jnp.ones((2, 8, 8, 1))
      >>> variables = jax.eval_shape(layer.init, jax.random.key(0), x)
      >>> sorted(variables), variables["batch_stats"]["bn"]["mean"].shape
      (['batch_stats', 'params'], (4,))
      >>> y, updates = jax.eval_shape(
      ...     lambda v: layer.apply(v, x, train=True, mutable=["batch_stats"]), variables)
      >>> y.shape, list(updates)
      ((2, 8, 8, 4), ['batch_stats'])
    """

    features: int = 64
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = Conv2D(self.features, 3, padding=1, name="conv", **precision(self))(x)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.1, epsilon=1e-4, name="bn", **precision(self)
        )(x)
        return jax.nn.relu(x)


@register_model(
    "dncnn", task="denoise", in_channels=1, description="DnCNN (KAIR, 17 layers, BatchNorm, residual output)",
    param_count=557_057, paper_param_count=557_057,
    torch_names=TorchNames(_kair_dncnn_rules, lambda s: len(s.get("model.0.weight", ())) == 4),
)  # fmt: skip
class DnCNN(nn.Module):
    """KAIR DnCNN (nc=64, nb=17, act_mode='BR'): (N, H, W, C) noisy -> (N, H, W, C) restored.

    ``out = x − f(x)`` with f = conv3×3 C→64 + ReLU, (num_layers − 2) × :class:`ConvBNReLU`,
    conv3×3 64→C. Call as ``model.apply(variables, x, train=False)``; with ``train=True`` batch
    statistics are used and ``batch_stats`` must be mutable. Params ``head``, ``body_0`` …,
    ``tail``; collection ``batch_stats`` holds the running means/variances.

    Attributes:
      in_channels: image channels.
      features: feature channels.
      num_layers: convolution layers in total (17).
      remat: rematerialise each conv-BN-ReLU layer in the backward pass.
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``); the output has the
        input's dtype. param_dtype: storage dtype of the parameters (float32).

    Example (a tiny network; shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> from converse_jax.models import count_params
      >>> model = DnCNN(features=4, num_layers=3)
      >>> x = jnp.zeros((2, 16, 16, 1))  # (N, H, W, C) noisy gray batch
      >>> y, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
      >>> y.shape, sorted(variables), count_params(variables["params"])
      ((2, 16, 16, 1), ['batch_stats', 'params'], 233)
    """

    in_channels: int = 1
    features: int = 64
    num_layers: int = 17
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        if not isinstance(self.num_layers, int) or self.num_layers < 3:
            raise ValueError(f"num_layers must be an int >= 3, got {self.num_layers!r}")
        prec = precision(self)
        self.head = Conv2D(self.features, 3, padding=1, **prec)
        layer = nn.remat(ConvBNReLU, static_argnums=(2,)) if self.remat else ConvBNReLU
        self.body = [layer(self.features, **prec) for _ in range(self.num_layers - 2)]
        self.tail = Conv2D(self.in_channels, 3, padding=1, **prec)

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_image(x, self.in_channels, "DnCNN")
        y = jax.nn.relu(self.head(x))
        for layer in self.body:
            y = layer(y, train)
        return (x - self.tail(y)).astype(x.dtype)
