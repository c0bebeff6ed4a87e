"""A network of your own in one file: a small residual denoiser built on reverse convolution.

The paper's block "can directly replace conventional convolution and transposed convolution
layers in existing architectures"; here a DnCNN-style denoiser keeps its 3x3 convolutions at
both ends and uses :class:`converse_jax.nn.ConverseBlock` (LayerNorm, 1x1 expansion, Converse2D,
...) in the middle. ``@register_model`` files its record: every ``converse-jax`` tool treats it
as a network of the zoo once this module is importable (its folder on ``PYTHONPATH``) -- see
``docs/zoo.md`` and ``examples/my_config.py``.

    >>> import jax, jax.numpy as jnp
    >>> from converse_jax.models import get_model
    >>> model = get_model("my_network")
    >>> x = jnp.zeros((1, 16, 16, 1))  # NHWC, gray
    >>> jax.eval_shape(model.init_with_output, jax.random.key(0), x)[0].shape
    (1, 16, 16, 1)
"""

import flax.linen as nn
import jax

from converse_jax.models import register_model
from converse_jax.nn import ConverseBlock


@register_model(
    "my_network", task="denoise", in_channels=1,
    description="example: 3x3 conv, ConverseBlocks, 3x3 conv; residual output (examples/my_network.py)",
)  # fmt: skip
class MyNetwork(nn.Module):
    """(N, H, W, in_channels) noisy -> (N, H, W, in_channels) restored: ``x - f(x)``."""

    in_channels: int = 1
    features: int = 16
    num_blocks: int = 2
    kernel_size: int = 3
    padding: int = 2

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Conv(self.features, (3, 3), name="head")(x)
        for i in range(self.num_blocks):
            y = ConverseBlock(self.features, self.kernel_size, self.padding, name=f"blocks_{i}")(y)
        return x - nn.Conv(self.in_channels, (3, 3), name="tail")(nn.gelu(y))
