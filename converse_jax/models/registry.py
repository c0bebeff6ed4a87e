"""Registry of the model zoo: names, tasks, parameter counts, construction and example inputs.

>>> from converse_jax.models import get_model, list_models
>>> get_model("converse_dncnn", features=16, num_blocks=4).num_blocks
4
>>> "conversenet" in list_models("deblur")
True

Parameter counts: ``param_count`` is the number of parameters of the network built with its
defaults (equal to the released checkpoint's size where there is one; tested).
``paper_param_count`` is the figure of the paper / upstream README table where one is known; it
differs for three released models (see ``shared/golden/README.md`` §3): Converse-DnCNN's figure
is that of a k5 variant, SRResNet's and USRNet's leave out the LayerNorm parameters / alphas.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from converse_jax.models.deblur import ConverseNet, ConvNet
from converse_jax.models.dncnn import ConvDnCNN, ConverseDnCNN, ConvTDnCNN, DnCNN
from converse_jax.models.srresnet import (
    ConverseSRResNet,
    ConverseUpMSRResNet,
    ConvSRResNet,
    ConvTSRResNet,
    MSRResNet,
)
from converse_jax.models.usrnet import ConverseUSRNet, ConvUSRNet
from converse_jax.tasks import TASKS as _TASK_DEFINITIONS

TASKS: tuple[str, ...] = tuple(_TASK_DEFINITIONS)  # the tasks of converse_jax.tasks, defined there


@dataclass(frozen=True)
class ModelSpec:
    """One entry of :data:`MODELS`.

    Attributes:
      name: registry name.
      cls: the Flax module class; ``cls(**overrides)`` builds it.
      task: 'denoise' | 'sr' | 'deblur' (blind) | 'deblur_nonblind' (takes the kernel).
      in_channels: image channels of the default network.
      scale: output/input size ratio of the default network.
      description: one line.
      param_count: parameters of the network built with its defaults.
      paper_param_count: the paper's / upstream table's figure, None where none is known.
      checkpoint: file name of the released official weights (``<name>.pth``), or None.

    Example:
      >>> spec = MODELS["conversenet"]
      >>> spec.cls.__name__, spec.task, spec.in_channels, spec.scale, spec.param_count
      ('ConverseNet', 'deblur', 3, 1, 243267)
      >>> spec.checkpoint
      'conversenet.pth'
    """

    name: str
    cls: type[nn.Module]
    task: str
    in_channels: int
    scale: int
    description: str
    param_count: int
    paper_param_count: int | None = None
    checkpoint: str | None = None


_SPECS = (
    ModelSpec("converse_dncnn", ConverseDnCNN, "denoise", 1, 1,
              "Converse-DnCNN: 20 ConverseBlocks (k7, p6, circular), released weights",
              796_353, 734_913, "converse_dncnn.pth"),
    ModelSpec("conv_dncnn", ConvDnCNN, "denoise", 1, 1,
              "Conv-DnCNN baseline: 20 ConvBlocks (depthwise k5, p2, circular)", 734_913, 734_913),
    ModelSpec("convt_dncnn", ConvTDnCNN, "denoise", 1, 1,
              "ConvT-DnCNN baseline: 20 ConvTBlocks (depthwise k5 ConvTranspose, p2)", 734_913, 734_913),
    ModelSpec("dncnn", DnCNN, "denoise", 1, 1,
              "DnCNN (KAIR, 17 layers, BatchNorm, residual output)", 557_057, 557_057),
    ModelSpec("converse_srresnet", ConverseSRResNet, "sr", 3, 4,
              "Converse-SRResNet x4: ConverseBlocks + Converse2D x2 up-samplers, released weights",
              699_072, 694_208, "converse_srresnet.pth"),
    ModelSpec("conv_srresnet", ConvSRResNet, "sr", 3, 4,
              "Conv-SRResNet x4 baseline: ConvBlocks + nearest/depthwise-conv up-samplers", 625_603),
    ModelSpec("convt_srresnet", ConvTSRResNet, "sr", 3, 4,
              "ConvT-SRResNet x4 baseline: ConvTBlocks (k5/p2 chosen) + ConvTranspose up-samplers",
              628_291),
    ModelSpec("msrresnet", MSRResNet, "sr", 3, 4,
              "MSRResNet x4 (KAIR MSRResNet1): residual blocks + PixelShuffle", 1_517_571),
    ModelSpec("converseup_msrresnet", ConverseUpMSRResNet, "sr", 3, 4,
              "MSRResNet x4 with Converse2D up-samplers (up-sampler ablation)", 1_296_643),
    ModelSpec("conversenet", ConverseNet, "deblur", 3, 1,
              "ConverseNet: shared 7-ConverseBlock stack applied 5 times, released weights",
              243_267, 243_267, "conversenet.pth"),
    ModelSpec("convnet", ConvNet, "deblur", 3, 1,
              "ConvNet baseline: shared 7-ConvBlock stack (k3, p1, circular) applied 5 times", 243_267),
    ModelSpec("converse_usrnet", ConverseUSRNet, "deblur_nonblind", 3, 1,
              "Converse-USRNet: KernelNet + per-sample reverse-convolution data steps, released weights",
              307_987, 307_091, "converse_usrnet.pth"),
    ModelSpec("conv_usrnet", ConvUSRNet, "deblur_nonblind", 3, 1,
              "Conv-USRNet (plausible construction): conv blocks + per-sample convolution data steps",
              307_923),
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def list_models(task: str | None = None) -> list[str]:
    """Registry names, sorted; only those of ``task`` (one of :data:`TASKS`) when given.

    Example:
      >>> list_models("denoise")
      ['conv_dncnn', 'converse_dncnn', 'convt_dncnn', 'dncnn']
      >>> len(list_models())
      13
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}")
    return sorted(name for name, spec in MODELS.items() if task is None or spec.task == task)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ``ValueError`` listing the valid names otherwise.

    Example:
      >>> spec = get_spec("converse_srresnet")
      >>> spec.task, spec.scale, spec.param_count, spec.paper_param_count
      ('sr', 4, 699072, 694208)
    """
    if name not in MODELS:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(list_models())}")
    return MODELS[name]


def model_fields(cls: type[nn.Module]) -> list[str]:
    """The hyper-parameter attribute names of a model class (its dataclass fields), in order.

    Example:
      >>> from converse_jax.models import DnCNN
      >>> model_fields(DnCNN)
      ['in_channels', 'features', 'num_layers', 'remat', 'dtype', 'param_dtype']
    """
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")]


def get_model(name: str, **overrides: Any) -> nn.Module:
    """Build the network ``name`` with the paper's defaults, updated by ``overrides``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) or an unknown
    hyper-parameter (listing the valid ones).

    Example:
      >>> model = get_model("converse_dncnn", features=16, num_blocks=4, remat=True)
      >>> type(model).__name__, model.features, model.num_blocks, model.kernel_size
      ('ConverseDnCNN', 16, 4, 7)
      >>> get_model("dncnn", num_blocks=4)  # doctest: +ELLIPSIS
      Traceback (most recent call last):
        ...
      ValueError: dncnn: unknown hyper-parameter(s) ['num_blocks']; valid: ['in_channels', ...]
    """
    spec = get_spec(name)
    valid = model_fields(spec.cls)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown hyper-parameter(s) {unknown}; valid: {valid}")
    return spec.cls(**overrides)


def example_inputs(model: nn.Module, *, batch: int = 1, size: int = 16, dtype: Any = jnp.float32) -> tuple:
    """Positional inputs for ``model.init`` / ``model.apply`` on a ``size``×``size`` image.

    (x,) with x zeros (batch, size, size, in_channels); USRNet models: (x, kernel) with a
    centred delta kernel (batch, k, k). Enough for initialisation and shape inference.

    Example:
      >>> [a.shape for a in example_inputs(get_model("conversenet"), batch=2, size=8)]
      [(2, 8, 8, 3)]
      >>> [a.shape for a in example_inputs(get_model("converse_usrnet"), batch=2, size=8)]
      [(2, 8, 8, 3), (2, 7, 7)]
    """
    x = jnp.zeros((batch, size, size, model.in_channels), dtype)
    if isinstance(model, ConverseUSRNet):
        k = model.blur_kernel_size
        delta = jnp.zeros((batch, k, k), dtype).at[:, k // 2, k // 2].set(1)
        return (x, delta)
    return (x,)


def abstract_variables(model: nn.Module) -> dict[str, Any]:
    """``jax.ShapeDtypeStruct`` tree of ``model``'s variables (``{'params': …}``, DnCNN also
    ``batch_stats``), from tracing ``model.init`` on :func:`example_inputs` (no compute).

    Example (the default DnCNN has the registry's parameter count):
      >>> variables = abstract_variables(get_model("dncnn"))
      >>> sorted(variables), variables["params"]["head"]["kernel"].shape
      (['batch_stats', 'params'], (3, 3, 1, 64))
      >>> count_params(variables["params"]) == get_spec("dncnn").param_count == 557_057
      True
    """
    return dict(jax.eval_shape(model.init, jax.random.key(0), *example_inputs(model)))


def count_params(params: Any) -> int:
    """Total number of entries over all leaves of a parameter tree (arrays or ``ShapeDtypeStruct``).

    Example:
      >>> import jax.numpy as jnp
      >>> count_params({"dense": {"kernel": jnp.zeros((4, 8)), "bias": jnp.zeros(8)}})
      40
    """
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
