"""The ConverseNet model zoo and its baselines (Flax linen, NHWC), each registered with its record.

Each network module (:mod:`~converse_jax.models.dncnn`, :mod:`~converse_jax.models.srresnet`,
:mod:`~converse_jax.models.deblur`, :mod:`~converse_jax.models.usrnet`) registers its classes with
:func:`register_model` (:mod:`converse_jax.models.registry`); importing this package registers
the zoo. A network of your own registers the same way (``docs/zoo.md``).

>>> from converse_jax.models import get_model, example_inputs
>>> import jax
>>> model = get_model("conversenet", features=8, num_blocks=2, num_iterations=2)
>>> variables = model.init(jax.random.key(0), *example_inputs(model))
>>> model.apply(variables, *example_inputs(model)).shape
(1, 16, 16, 3)
"""

from converse_jax.models.registry import (
    MODELS,
    ModelSpec,
    PretrainedCfg,
    ShowcaseRow,
    abstract_variables,
    count_params,
    example_inputs,
    get_model,
    get_spec,
    list_models,
    model_fields,
    official_weights,
    register_model,
    spec_of,
)

# The network modules register their records when imported, in this order (the listing order).
from converse_jax.models.dncnn import ConvBNReLU, ConvDnCNN, ConverseDnCNN, ConvTDnCNN, DnCNN  # noqa: I001
from converse_jax.models.srresnet import (
    ConverseSRResNet,
    ConverseUpMSRResNet,
    ConvSRResNet,
    ConvTSRResNet,
    MSRResNet,
)
from converse_jax.models.deblur import ConverseNet, ConvNet
from converse_jax.models.usrnet import (
    ConverseUSRNet,
    ConvUSRNet,
    KernelConvStep,
    KernelDataStep,
    KernelNet,
    circular_conv_per_sample,
)

__all__ = [
    "MODELS",
    "ConvBNReLU",
    "ConvDnCNN",
    "ConvNet",
    "ConvSRResNet",
    "ConvTDnCNN",
    "ConvTSRResNet",
    "ConvUSRNet",
    "ConverseDnCNN",
    "ConverseNet",
    "ConverseSRResNet",
    "ConverseUSRNet",
    "ConverseUpMSRResNet",
    "DnCNN",
    "KernelConvStep",
    "KernelDataStep",
    "KernelNet",
    "MSRResNet",
    "ModelSpec",
    "PretrainedCfg",
    "ShowcaseRow",
    "abstract_variables",
    "circular_conv_per_sample",
    "count_params",
    "example_inputs",
    "get_model",
    "get_spec",
    "list_models",
    "model_fields",
    "official_weights",
    "register_model",
    "spec_of",
]
