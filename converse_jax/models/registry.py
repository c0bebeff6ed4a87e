"""The model registry: one :class:`ModelSpec` record per network, registered beside its class.

A network becomes known to every tool (``converse-jax models``/``train``/``evaluate``/``restore``/
``export``, :func:`converse_jax.pretrained.load`, the recipes of :mod:`converse_jax.configs`) by
:func:`register_model`, a class decorator (or plain call) that files its record in
:data:`MODELS`. The zoo's records sit on their classes in ``converse_jax/models/*.py``; a user's
network registers the same way from any importable module (``docs/zoo.md``).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from converse_jax.models.torch_names import TorchNames
from converse_jax.tasks import get_task

OFFICIAL_BASE_URL = "https://github.com/cszn/ConverseNet/raw/368aa39cebaa075b04926264c7494d969e8ee835/model_zoo"
"""The authors' ``model_zoo`` folder at the commit whose checkpoints this project converts."""


@dataclass(frozen=True)
class PretrainedCfg:
    """Released weights of a network: where they are and how to check them.

    Attributes:
      file: the file name (``converse_dncnn.pth``); also its name in the download cache.
      sha256: the file's SHA-256 (hex); every download and every cached copy is checked.
      url: where to download it (the mirror of ``CONVERSE_JAX_WEIGHTS_URL`` replaces all but the
        file name).
      release_iteration: the training iteration of the released file (``<iter>_G.pth``), or None.

    Example:
      >>> cfg = official_weights("net.pth", "0" * 64, 1000)
      >>> cfg.url.endswith("/model_zoo/net.pth"), cfg.release_iteration
      (True, 1000)
    """

    file: str
    sha256: str
    url: str
    release_iteration: int | None = None


def official_weights(file: str, sha256: str, release_iteration: int) -> PretrainedCfg:
    """The :class:`PretrainedCfg` of a checkpoint of the authors' release (:data:`OFFICIAL_BASE_URL`).

    >>> official_weights("conversenet.pth", "ab" * 32, 1_185_000).file
    'conversenet.pth'
    """
    return PretrainedCfg(file, sha256, f"{OFFICIAL_BASE_URL}/{file}", release_iteration)


@dataclass(frozen=True)
class ShowcaseRow:
    """A network's row of the showcase figure (:mod:`converse_jax.cli.showcase`).

    Attributes:
      title: the network's name in the paper, shown in the captions.
      image: name of the ``skimage.data`` sample photograph.
      centre: centre of the crop as fractions of the photograph's (height, width); the crop is
        moved inside the photograph where it would stick out.
      degraded: caption of the degraded panel.

    Example:
      >>> ShowcaseRow("ConverseNet", "coffee", (0.3, 0.7), "blurred + noise").image
      'coffee'
    """

    title: str
    image: str
    centre: tuple[float, float]
    degraded: str


@dataclass(frozen=True)
class ModelSpec:
    """Everything the tools need to know about one network: the record of :data:`MODELS`.

    Attributes:
      name: registry name.
      cls: the Flax module class; ``cls(**overrides)`` builds it.
      task: the name of its :class:`~converse_jax.tasks.Task` (``'denoise'``, ``'sr'``,
        ``'deblur'`` (blind), ``'deblur_nonblind'`` (takes the kernel), ...).
      in_channels: image channels of the default network.
      scale: output/input size ratio of the default network.
      description: one line.
      param_count: parameters of the network built with its defaults (None: not stated).
      paper_param_count: the paper's / upstream table's figure, None where none is known.
      pretrained: the released weights (:class:`PretrainedCfg`), or None.
      torch_names: how its PyTorch twin names its tensors (:class:`TorchNames`), or None (no
        PyTorch conversion).
      showcase: its row of the showcase figure (:class:`ShowcaseRow`), or None.
      data_hparams: data-config field -> the hyper-parameter of the module that must equal it
        (``{'channels': 'in_channels', 'scale': 'upscale'}``); see :meth:`data_values`.
      tile_margin: context in input pixels each window of tiled inference keeps around its core
        (None: :data:`~converse_jax.inference.tiling.DEFAULT_TILE_MARGIN`); networks with global
        solves need more than their local layers suggest (measured: ``benchmarks/tiling.py``).
      tile_mirror: tile with mirrored windows (:func:`~converse_jax.inference.tiling.tiled_apply`'s
        ``mirror``): for networks that treat the image as periodic and reach far (FFT solves with
        weak regularisation), where a window's wrap-around would otherwise join unrelated edges.
      recipe: training-recipe settings that differ from the task's
        (:attr:`converse_jax.tasks.Task.recipe`; keyword arguments of
        :func:`converse_jax.configs.default.base_config`).

    Example:
      >>> spec = MODELS["conversenet"]
      >>> spec.cls.__name__, spec.task, spec.in_channels, spec.scale, spec.param_count
      ('ConverseNet', 'deblur', 3, 1, 243267)
      >>> spec.pretrained.file, spec.pretrained.release_iteration, spec.module
      ('conversenet.pth', 1185000, 'converse_jax.models.deblur')
    """

    name: str
    cls: type[nn.Module]
    task: str
    in_channels: int
    scale: int = 1
    description: str = ""
    param_count: int | None = None
    paper_param_count: int | None = None
    pretrained: PretrainedCfg | None = None
    torch_names: TorchNames | None = None
    showcase: ShowcaseRow | None = None
    data_hparams: Mapping[str, str] = field(default_factory=dict)
    tile_margin: int | None = None
    tile_mirror: bool = False
    recipe: Mapping[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        """The Python module that defines :attr:`cls` (what a tool imports to find the network again)."""
        return self.cls.__module__

    def data_values(self, module: nn.Module | None = None) -> dict[str, Any]:
        """The data-config values a built network needs: ``channels``, ``scale`` and its :attr:`data_hparams`.

        ``channels``/``scale`` are the record's unless a hyper-parameter of the module sets them;
        ``module`` None: the network built with its defaults.

        >>> MODELS["converse_srresnet"].data_values(get_model("converse_srresnet", upscale=2))
        {'channels': 3, 'scale': 2}
        """
        module = self.cls() if module is None else module
        values = {"channels": self.in_channels, "scale": self.scale}
        return values | {data_field: getattr(module, hparam) for data_field, hparam in self.data_hparams.items()}


MODELS: dict[str, ModelSpec] = {}
"""The registered networks by name, in registration order (:func:`register_model`)."""


def model_fields(cls: type[nn.Module]) -> list[str]:
    """The hyper-parameter attribute names of a model class (its dataclass fields), in order.

    Example:
      >>> from converse_jax.models import DnCNN
      >>> model_fields(DnCNN)
      ['in_channels', 'features', 'num_layers', 'remat', 'dtype', 'param_dtype']
    """
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")]


def register_model(
    name: str,
    cls: type[nn.Module] | None = None,
    *,
    task: str,
    in_channels: int,
    scale: int = 1,
    description: str = "",
    data_hparams: Mapping[str, str] | None = None,
    **record: Any,
) -> Callable[[type[nn.Module]], type[nn.Module]] | type[nn.Module]:
    """Register a Flax linen module class as network ``name``: a class decorator, or a call with ``cls``.

    Args:
      name: the registry name (what ``get_model``, ``--model``, ``config.model`` use).
      cls: the module class (omit to decorate).
      task: a registered task's name (:func:`converse_jax.tasks.list_tasks`).
      in_channels: image channels of the network built with its defaults.
      scale: output/input size ratio of the network built with its defaults.
      description: one line for ``converse-jax models``.
      data_hparams: data-config field -> hyper-parameter that sets it (default:
        ``{'channels': 'in_channels'}`` where the class has an ``in_channels`` field).
      **record: the other :class:`ModelSpec` fields (``param_count``, ``pretrained``,
        ``torch_names``, ``showcase``, ``recipe``, ...).

    Returns:
      the class (so the decorator leaves it as it was).

    Raises:
      ValueError: an unknown task, a class that is not a linen module, or ``name`` taken by
        another class (registering the same class again, e.g. a module imported twice, replaces it).

    Example:
      >>> import flax.linen as nn
      >>> @register_model("tiny_denoiser", task="denoise", in_channels=1, description="a 3x3 conv")
      ... class TinyDenoiser(nn.Module):
      ...     in_channels: int = 1
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return x - nn.Conv(self.in_channels, (3, 3))(x)
      >>> spec = get_spec("tiny_denoiser")
      >>> spec.cls is TinyDenoiser, spec.data_hparams, count_params(abstract_variables(get_model("tiny_denoiser"))["params"])
      (True, {'channels': 'in_channels'}, 10)
      >>> del MODELS["tiny_denoiser"]
    """

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"{name}: expected a flax.linen.Module class, got {cls!r}")
        get_task(task)
        hparams = data_hparams
        if hparams is None:
            hparams = {"channels": "in_channels"} if "in_channels" in model_fields(cls) else {}
        spec = ModelSpec(name, cls, task, in_channels, scale, description, data_hparams=dict(hparams), **record)
        held = MODELS.get(name)
        if held is not None and (held.module, held.cls.__qualname__) != (spec.module, cls.__qualname__):
            raise ValueError(f"{name}: already registered for {held.module}.{held.cls.__qualname__}")
        MODELS[name] = spec
        return cls

    return add if cls is None else add(cls)


def list_models(task: str | None = None, *, pretrained: bool = False) -> list[str]:
    """Registry names, sorted; only those of ``task`` when given, only those with released weights with ``pretrained``.

    Example:
      >>> "converse_dncnn" in list_models("denoise"), "converse_dncnn" in list_models("sr")
      (True, False)
      >>> {"converse_dncnn", "conversenet"} <= set(list_models(pretrained=True)), "dncnn" in list_models(pretrained=True)
      (True, False)
    """
    if task is not None:
        get_task(task)
    return sorted(
        name for name, spec in MODELS.items()
        if (task is None or spec.task == task) and (spec.pretrained is not None or not pretrained)
    )  # fmt: skip


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


def spec_of(module: nn.Module) -> ModelSpec:
    """The record of a built network (the one registered for its class).

    Example:
      >>> spec_of(get_model("conversenet", num_blocks=2)).name
      'conversenet'
    """
    for spec in MODELS.values():
        if type(module) is spec.cls:
            return spec
    raise ValueError(f"module: {type(module).__name__} is not a registered network")


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
    """Positional array inputs for ``model.init`` / ``model.apply`` on a ``size``×``size`` image.

    The image, zeros ``(batch, size, size, channels)``, then the placeholders of the extra inputs
    the model's task passes (:meth:`converse_jax.tasks.Task.placeholder_batch`: a centred delta
    kernel of the network's ``kernel_size`` for a non-blind deblurrer). Enough for
    initialisation and shape inference.

    Example:
      >>> [a.shape for a in example_inputs(get_model("conversenet"), batch=2, size=8)]
      [(2, 8, 8, 3)]
      >>> [a.shape for a in example_inputs(get_model("converse_usrnet"), batch=2, size=8)]
      [(2, 8, 8, 3), (2, 7, 7)]
    """
    spec = spec_of(model)
    values = spec.data_values(model)
    x = np.zeros((batch, size, size, values["channels"]), dtype)
    sizes = {"kernel_size": values["kernel_size"]} if "kernel_size" in values else {}
    return tuple(get_task(spec.task).placeholder_batch(x, **sizes).values())


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
