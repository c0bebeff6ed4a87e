"""Blind deblurring networks (NHWC): ConverseNet and its convolution baseline ConvNet.

* :class:`ConverseNet` (official ``ConverseNet``, released weights): 1×1 conv 3→64, then the
  *same* stack of 7 ConverseBlocks (k3, p2, circular, eps 1e-5) applied 5 times (weights shared
  across the iterations), then 1×1 conv 64→3. No global skip. 243,267 parameters.
* :class:`ConvNet`: the same wrapper around a stack of 7 ConvBlocks (depthwise k3, p1, circular).
  No complete official class exists; this follows the official ConvNet stack put into the
  ConverseNet wrapper (paper_notes §4). 243,267 parameters.

Params: ``head``, ``blocks_0`` … ``blocks_{num_blocks-1}``, ``tail``. Init: blocks N(0, 0.02²)/zero
bias (official stack init), head/tail PyTorch's default U(±1/√fan_in).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.models.common import check_image, conv1x1, make_blocks
from converse_jax.models.registry import ShowcaseRow, official_weights, register_model
from converse_jax.models.torch_names import TorchNames, TorchRule, block_rules, converse_at
from converse_jax.nn.baselines import ConvBlock
from converse_jax.nn.converse import ConverseBlock
from converse_jax.nn.precision import precision


def _deblur_rules(spatial: str) -> list[TorchRule]:
    """The official ``ConverseNet`` names: ``conv1``, the shared stack ``p.m_body.i``, ``conv2``."""
    return [
        TorchRule("head", "conv1", "conv1x1"),
        *block_rules(r"blocks_(\d+)", "p.m_body.{0}", spatial),
        TorchRule("tail", "conv2", "conv1x1"),
    ]


def _deblur_names(spatial: str) -> TorchNames:
    body = "p.m_body.0.conv1.3.weight"

    def signature(s: Mapping[str, tuple[int, ...]]) -> bool:
        return body in s and "kernelnet.fc1.weight" not in s and converse_at(s, body) == (spatial == "converse")

    return TorchNames(lambda model: _deblur_rules(spatial), signature)


@register_model(
    "conversenet", task="deblur", in_channels=3,
    tile_margin=192, tile_mirror=True,  # single windows: 0.05-0.25 grey levels at the core's edge (docs/tiling.md)
    description="ConverseNet: shared 7-ConverseBlock stack applied 5 times, released weights",
    param_count=243_267, paper_param_count=243_267,
    pretrained=official_weights(
        "conversenet.pth", "603cbb29075178410db9ab6166b247d2ddff32f349c59a7e1763c46feca270bd", 1_185_000
    ),
    torch_names=_deblur_names("converse"),
    showcase=ShowcaseRow("ConverseNet", "coffee", (0.3, 0.7), "blurred + noise"),
)  # fmt: skip
class ConverseNet(nn.Module):
    """ConverseNet: (N, H, W, in_channels) blurred -> (N, H, W, in_channels) restored.

    Attributes:
      in_channels: image channels (3).
      features: feature channels C (64).
      num_blocks: blocks in the shared stack (7).
      num_iterations: how many times the stack is applied (5).
      kernel_size, padding, padding_mode, eps: the blocks' spatial operator (3, 2, 'circular', 1e-5).
      remat: rematerialise each block application in the backward pass (same results, less memory).
      dtype: computation dtype (None: the input's; e.g. ``jnp.bfloat16``); the output has the
        input's dtype. param_dtype: storage dtype of the parameters (float32).

    Example (a tiny network; shapes traced with ``jax.eval_shape``, nothing computed):
      >>> import jax, jax.numpy as jnp
      >>> from converse_jax.models import count_params
      >>> model = ConverseNet(features=4, num_blocks=1, num_iterations=2)
      >>> x = jnp.zeros((2, 16, 16, 3))  # (N, H, W, C) blurred batch
      >>> y, variables = jax.eval_shape(model.init_with_output, jax.random.key(0), x)
      >>> y.shape, count_params(variables["params"])
      ((2, 16, 16, 3), 279)
      >>> sorted(variables["params"])  # the one block is shared by both iterations
      ['blocks_0', 'head', 'tail']
    """

    in_channels: int = 3
    features: int = 64
    num_blocks: int = 7
    num_iterations: int = 5
    kernel_size: int = 3
    padding: int = 2
    padding_mode: str = "circular"
    eps: float = 1e-5
    remat: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    block_class: ClassVar[type[nn.Module]] = ConverseBlock

    def setup(self) -> None:
        if not isinstance(self.num_iterations, int) or self.num_iterations < 1:
            raise ValueError(f"num_iterations must be a positive int, got {self.num_iterations!r}")
        self.head = conv1x1(self.features, torch_init=True, fan_in=self.in_channels, **precision(self))
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
        self.tail = conv1x1(self.in_channels, torch_init=True, fan_in=self.features, **precision(self))

    def __call__(self, x: jax.Array) -> jax.Array:
        check_image(x, self.in_channels, type(self).__name__)
        y = self.head(x)
        for _ in range(self.num_iterations):
            for block in self.blocks:
                y = block(y)
        return self.tail(y).astype(x.dtype)


@register_model(
    "convnet", task="deblur", in_channels=3,
    description="ConvNet baseline: shared 7-ConvBlock stack (k3, p1, circular) applied 5 times",
    param_count=243_267, torch_names=_deblur_names("conv"),
)  # fmt: skip
class ConvNet(ConverseNet):
    """ConvNet: :class:`ConverseNet` with :class:`ConvBlock` (depthwise k3, p1, circular);
    (N, H, W, in_channels) -> (N, H, W, in_channels).

    Example (shapes traced with ``jax.eval_shape``):
      >>> import jax, jax.numpy as jnp
      >>> model = ConvNet(features=4, num_blocks=1, num_iterations=2)
      >>> jax.eval_shape(model.init_with_output, jax.random.key(0), jnp.zeros((2, 16, 16, 3)))[0].shape
      (2, 16, 16, 3)
    """

    padding: int = 1
    block_class: ClassVar[type[nn.Module]] = ConvBlock
