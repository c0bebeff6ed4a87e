"""What a task is: the :class:`Task` contract, its registry, and the one scoring loop.

A :class:`Task` is everything the tools need to know about one kind of restoration, in one
object: its test degradation (:meth:`Task.degrade`), its random training degradation
(:meth:`Task.train_example`), its validation examples, its data-config fields and their defaults
(:attr:`Task.data_fields`), its training-recipe defaults (:attr:`Task.recipe`), how a network of
the task is called (:meth:`Task.network_args`), its scores and border. The data pipeline, the
training loop, ``converse-jax evaluate``/``restore``, the showcase and the demo ask the task and
never branch on its name. :func:`register_task` adds one to :data:`TASKS`; :func:`get_task`
finds it. :func:`score_images` is the scoring loop that training validation and ``converse-jax
evaluate`` share.

Images are HWC (``(H, W, C)``, uint8 0..255 or float32 on [0, 1]); networks see NHWC.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

import numpy as np

from converse_jax.protocol.degradations import single2uint, uint2single
from converse_jax.protocol.metrics import calculate_psnr, calculate_ssim, rgb2ycbcr
from converse_jax.utils.validate import check_level


def takes_train_flag(module: Any) -> bool:
    """Whether ``module.__call__`` has a ``train`` argument (BatchNorm models such as DnCNN).

    >>> from converse_jax.models import get_model
    >>> takes_train_flag(get_model("dncnn", features=4, num_layers=3)), takes_train_flag(get_model("converse_dncnn"))
    (True, False)
    """
    return "train" in inspect.signature(type(module).__call__).parameters


def psnr_text(db: float, on: str = "") -> str:
    """A PSNR as captions and result lines print it: ``on`` says what it was measured on
    (``' (Y)'`` for the luma, see :meth:`Task.headline_psnr`).

    Example:
      >>> psnr_text(26.786, " (Y)"), psnr_text(20.174)
      ('26.79 dB (Y)', '20.17 dB')
    """
    return f"{db:.2f} dB{on}"


def rank_value(metrics: dict[str, float], name: str) -> float:
    """The value of the selection metric ``name`` in a checkpoint's ``metrics``.

    ``metrics['psnr']`` stands in where ``name`` is absent: gray SR has no separate luma score,
    and checkpoints saved before the luma score was recorded hold only ``'psnr'``.

    >>> rank_value({"psnr": 27.0, "psnr_y": 28.5}, "psnr_y"), rank_value({"psnr": 27.0}, "psnr_y")
    (28.5, 27.0)
    """
    return float(metrics[name] if name in metrics else metrics["psnr"])


@dataclass(frozen=True)
class Task:
    """One kind of restoration (the base class: blind, no noise, border 0, PSNR/SSIM).

    A subclass implements :meth:`degrade` (the test degradation), :meth:`train_example` (the
    random training degradation) and :meth:`validation_example`, lists its data-config fields in
    :attr:`data_fields`, and overrides what differs (:meth:`border`, :meth:`setting`,
    :meth:`scores`, ...). An instance registered with :func:`register_task` is a task every tool
    knows.

    Attributes:
      name: the task's name (``'denoise'``, ``'sr'``, ``'deblur'``, ``'deblur_nonblind'``, ...).
      input_name: what the degraded input is called in captions (``'noisy'``, ...).
      data_task: the task whose data (``config.data.task``) trains networks of this one; default
        the task itself (``'deblur_nonblind'`` trains on ``'deblur'`` data).
      default_sigma: the test noise level on the 0..255 scale; None: the task adds no noise.
      blurs: the degradation needs a blur kernel.
      takes_kernel: the network is called with the blur kernel (non-blind).
      upscales: the output is ``scale`` times the input (the data's and the model's ``scale``).
      best_metric: the validation metric that ranks training checkpoints (:func:`rank_value`).
      recipe: training-recipe defaults, keyword arguments of
        :func:`converse_jax.configs.default.base_config` (``batch_size``, ``num_train_steps``,
        ``lr_milestones``, ...); a network's record may override them.

    Example:
      >>> task = get_task("sr")
      >>> task.data_task, task.border(4), task.best_metric, task.noise_level(None)
      ('sr', 4, 'psnr_y', None)
      >>> img = np.random.default_rng(0).integers(0, 256, (22, 22, 3), dtype=np.uint8)
      >>> truth, x = task.degrade(img, scale=4)
      >>> truth.shape, x.shape, x.dtype
      ((20, 20, 3), (5, 5, 3), dtype('float32'))
      >>> sorted(task.scores(truth, truth, scale=4))
      ['psnr', 'psnr_y', 'ssim', 'ssim_y']
    """

    name: str
    _: KW_ONLY
    input_name: str = "input"
    data_task: str = ""
    default_sigma: float | None = None
    blurs: bool = False
    takes_kernel: bool = False
    upscales: bool = False
    best_metric: str = "psnr"
    recipe: Mapping[str, Any] = field(default_factory=dict, compare=False)

    data_fields: ClassVar[Mapping[str, Any]] = {}
    """The data-config fields of this task's degradations with their defaults; they add to (or
    override, e.g. ``channels``, ``patch_size``) the common fields of
    :func:`converse_jax.data.default_data_config`."""

    def __post_init__(self):
        if not self.data_task:
            object.__setattr__(self, "data_task", self.name)

    def noise_level(self, sigma: float | None, option: str = "sigma") -> float | None:
        """``sigma`` checked (finite, >= 0), the default when None; tasks without noise refuse one."""
        if self.default_sigma is None:
            if sigma is not None:
                raise ValueError(f"{option}: the {self.name} degradation adds no noise, got {sigma!r}")
            return None
        return check_level(self.default_sigma if sigma is None else sigma, option)

    def check_request(
        self, model: str, *, sigma: float | None, kernel: object, degrade: bool = True, scale: int | None = None,
        model_scale: int = 1,
    ) -> float | None:  # fmt: skip
        """Refuse a noise level, kernel or scale that ``model``'s task does not use; returns the noise level.

        ``degrade``: the clean input is degraded first (always in an evaluation; ``restore
        --degrade``); otherwise the network gets the user's image and only a non-blind model
        takes a kernel. ``scale``: a requested factor, which must be the model's own
        (``model_scale``) and only for a task that up-scales.

        >>> get_task("deblur").check_request("conversenet", sigma=None, kernel=None)
        Traceback (most recent call last):
        ...
        ValueError: kernel: conversenet (deblur) needs a blur kernel (--kernel K.npy)
        >>> get_task("denoise").check_request("dncnn", sigma=None, kernel=None, scale=2)
        Traceback (most recent call last):
        ...
        ValueError: scale: dncnn (denoise) supports only scale=None (the protocol uses sf = 1), got 2
        """
        if scale is not None and (not self.upscales or scale != model_scale):
            expected = f"{model_scale} (its factor)" if self.upscales else "None (the protocol uses sf = 1)"
            raise ValueError(f"scale: {model} ({self.name}) supports only scale={expected}, got {scale!r}")
        if sigma is not None and not degrade:
            raise ValueError("sigma: only used with degrade=True (--degrade); the networks take no noise level")
        if sigma is not None and self.default_sigma is None:
            raise ValueError(f"sigma: {model} ({self.name}) adds no noise in its degradation, got {sigma!r}")
        if kernel is not None and not self.blurs:
            raise ValueError(f"kernel: {model} ({self.name}) does not use a blur kernel")
        if kernel is not None and not (degrade or self.takes_kernel):
            raise ValueError(f"kernel: {model} is a blind deblurring model; a kernel is only used with --degrade")
        if kernel is None and (self.takes_kernel or (degrade and self.blurs)):
            raise ValueError(f"kernel: {model} ({self.name}) needs a blur kernel (--kernel K.npy)")
        return self.noise_level(sigma)

    def degrade(
        self, img: np.ndarray, *, scale: int = 1, sigma: float | None = None, kernel: np.ndarray | None = None,
        seed: int = 0, crop: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """``(truth uint8 HWC, network input float32 HWC)`` of the clean uint8 image ``img``: the test degradation.

        ``sigma`` None: :attr:`default_sigma`; ``crop=False`` skips the crop of the ground truth
        to the protocol's multiple (the figure of :mod:`converse_jax.cli.showcase`).
        """
        raise NotImplementedError

    def train_options(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of :meth:`train_example`, read from the data config ``cfg`` and checked.

        Called once when the training iterator is made; a bad value raises ``ValueError`` naming
        its field. The base class has none.
        """
        return {}

    def train_example(self, target: np.ndarray, rng: np.random.Generator, **options: Any) -> dict[str, np.ndarray]:
        """The random training degradation of one clean float32 HWC patch.

        Returns ``{'input': float32 array, ...}``: the network input and any extra inputs of the
        batch (``'kernel'`` for deblurring); every draw comes from ``rng``, after the pipeline's
        crop and augmentation draws.
        """
        raise NotImplementedError

    def validation_example(self, img: np.ndarray, cfg: Mapping[str, Any], index: int) -> dict[str, np.ndarray]:
        """The deterministic validation example of clean uint8 image number ``index``: the test degradation.

        Returns ``{'input', 'target'}`` float32 HWC (and the extra inputs, e.g. ``'kernel'``);
        the base class degrades with the test defaults.
        """
        truth, x = self.degrade(img)
        return {"input": x, "target": uint2single(truth)}

    def placeholder_batch(self, x: np.ndarray, kernel_size: int = 7) -> dict[str, np.ndarray]:
        """``{'input': x}`` plus the extra inputs the task's networks take (shapes only matter).

        For initialisation and shape inference; ``x`` is an NHWC array. A non-blind task adds a
        centred delta ``'kernel'`` of ``kernel_size`` (``(B, k, k)``).

        >>> [v.shape for v in get_task("deblur_nonblind").placeholder_batch(np.zeros((2, 8, 8, 3))).values()]
        [(2, 8, 8, 3), (2, 7, 7)]
        """
        return {"input": x}

    def border(self, scale: int) -> int:
        """Pixels dropped per side before PSNR/SSIM, as the official test scripts."""
        return 0

    def network_args(self, x: Any, kernel: Any = None) -> tuple[Any, ...]:
        """The positional arguments of the network call for the NHWC input ``x``: ``(x,)``."""
        return (x,)

    def apply(self, module: Any, variables: Any, x: Any, kernel: Any = None, *, train: bool = False, **kwargs: Any) -> Any:
        """``module.apply(variables, *network_args(x, kernel), [train=train], **kwargs)``.

        >>> import jax
        >>> from converse_jax.models import get_model
        >>> model = get_model("dncnn", features=4, num_layers=3)  # has BatchNorm: takes train=
        >>> x = np.zeros((1, 8, 8, 1), np.float32)
        >>> variables = model.init(jax.random.PRNGKey(0), x, train=False)
        >>> get_task("denoise").apply(model, variables, x).shape
        (1, 8, 8, 1)
        """
        if takes_train_flag(module):
            kwargs["train"] = train
        return module.apply(variables, *self.network_args(x, kernel), **kwargs)

    def shown(self, x: np.ndarray, scale: int) -> np.ndarray:
        """The float32 HWC network input as a uint8 picture the size of the output (clipped, rounded)."""
        return single2uint(x)

    def setting(self, scale: int, sigma: float | None, kernel: object = None, x8: bool = False) -> str:
        """The setting's name: ``'sigma25'``, ``'x4'``, ``'kernel_1'`` (``'_x8'`` for the self-ensemble)."""
        return self.name + ("_x8" if x8 else "")

    def headline_psnr(self, img: np.ndarray, truth: np.ndarray, scale: int) -> tuple[float, str]:
        """``img``'s PSNR (dB) against ``truth`` as the headline reports it, and what it is on: the
        luma (BT.601, ``' (Y)'``) when the task ranks by ``psnr_y`` and the images are RGB, else
        the image itself (``''``).

        ``img`` and ``truth`` are uint8 HWC of one size; the border is :meth:`border` ``(scale)``.

        Example:
          >>> img = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
          >>> [(round(db, 2), on) for db, on in (get_task(t).headline_psnr(img, img // 2, 4) for t in ("sr", "denoise"))]
          [(13.02, ' (Y)'), (10.84, '')]
        """
        border = self.border(scale)
        if self.best_metric == "psnr_y" and img.ndim == 3 and img.shape[2] == 3:
            return calculate_psnr(rgb2ycbcr(img, only_y=True), rgb2ycbcr(truth, only_y=True), border), " (Y)"
        return calculate_psnr(img, truth, border), ""

    def caption(self, img: np.ndarray, truth: np.ndarray, scale: int) -> str:
        """:meth:`headline_psnr` as a panel's caption.

        Example:
          >>> img = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
          >>> get_task("sr").caption(img, img // 2, 4), get_task("denoise").caption(img, img // 2, 1)
          ('13.02 dB (Y)', '10.84 dB')
        """
        return psnr_text(*self.headline_psnr(img, truth, scale))

    def metric_names(self, channels: int) -> tuple[str, ...]:
        """The keys of :meth:`scores` for images of ``channels`` channels."""
        return ("psnr", "ssim")

    def scores(self, restored: np.ndarray, truth: np.ndarray, scale: int) -> dict[str, float]:
        """``{'psnr', 'ssim'}`` of uint8 HWC ``restored`` against ``truth`` with :meth:`border`."""
        border = self.border(scale)
        return {"psnr": calculate_psnr(restored, truth, border), "ssim": calculate_ssim(restored, truth, border)}


TASKS: dict[str, Task] = {}
"""The registered tasks by name (:func:`register_task`)."""


def register_task(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` under ``task.name`` and return it.

    Its ``data_task`` must be registered already (or be the task itself). Registering again
    under a taken name replaces the task only when it is of the same class (a module imported
    twice); otherwise ``ValueError``.

    Example:
      >>> from converse_jax.tasks.denoise import Denoising
      >>> toy = register_task(Denoising("toy_denoise", input_name="noisy", default_sigma=5.0))
      >>> get_task("toy_denoise").setting(1, None)
      'sigma5'
      >>> del TASKS["toy_denoise"]
    """
    if not isinstance(task, Task):
        raise ValueError(f"task: expected a Task instance, got {type(task).__name__}")
    held = TASKS.get(task.name)
    if held is not None and type(held).__qualname__ != type(task).__qualname__:
        raise ValueError(f"task: {task.name!r} is already registered as a {type(held).__name__}")
    if task.data_task != task.name and task.data_task not in TASKS:
        raise ValueError(f"task: data_task {task.data_task!r} of {task.name!r} is not a registered task")
    TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """The registered task names, in registration order.

    >>> list_tasks()[:4]
    ['denoise', 'sr', 'deblur', 'deblur_nonblind']
    """
    return list(TASKS)


def get_task(name: str | Task) -> Task:
    """The :class:`Task` called ``name`` (a Task is returned as it is).

    >>> get_task("deblur_nonblind").takes_kernel, get_task("deblur_nonblind").data_task
    (True, 'deblur')
    >>> get_task("inpaint")
    Traceback (most recent call last):
    ...
    ValueError: task must be one of ('denoise', 'sr', 'deblur', 'deblur_nonblind'), got 'inpaint'
    """
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise ValueError(f"task must be one of {tuple(TASKS)}, got {name!r}")
    return TASKS[name]


@dataclass(frozen=True)
class ScoredImage:
    """One restored image and its scores, from :func:`score_images`.

    Attributes:
      example: the example as given (``'name'``, ``'input'``, ``'truth'``, ...).
      restored: the network output as the protocol stores it, uint8 HWC
        (``single2uint``: clipped to [0, 1], ×255, rounded).
      scores: the task's :meth:`Task.scores` of ``restored`` against ``example['truth']``.

    Example:
      >>> row = ScoredImage({"name": "a.png"}, np.zeros((2, 2, 1), np.uint8), {"psnr": 30.0, "ssim": 0.9})
      >>> row.name, row.scores["psnr"]
      ('a.png', 30.0)
    """

    example: Mapping[str, Any]
    restored: np.ndarray
    scores: dict[str, float]

    @property
    def name(self) -> str:
        """``example['name']``."""
        return self.example["name"]


def score_images(
    task: Task | str,
    restore: Callable[[Mapping[str, Any]], Any],
    examples: Iterable[Mapping[str, Any]],
    *,
    scale: int,
) -> Iterator[ScoredImage]:
    """Restore and score each example as the evaluation protocol does (lazily, one at a time).

    Training validation (:func:`converse_jax.train.step.evaluate`) and ``converse-jax evaluate``
    (:func:`converse_jax.inference.evaluate.evaluate`) both score through this loop.

    Args:
      task: the task (or its name); its :meth:`Task.scores` and border are used.
      restore: ``restore(example) -> (H', W', C)`` float array: the network output for one
        example (it reads ``example['input']`` and whatever extra inputs it needs).
      examples: mappings with ``'name'`` (str), ``'input'`` (float32 HWC) and ``'truth'`` (the
        clean uint8 HWC image).
      scale: the output/input size ratio (the border of SR).

    Yields:
      :class:`ScoredImage` per example: the output clipped, ×255, rounded to uint8, then scored
      against the truth.

    Example:
      With an "identity network" the scores are those of the noisy input itself:

      >>> rng = np.random.default_rng(0)
      >>> truth = rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)
      >>> noisy = uint2single(truth) + rng.normal(0, 0.1, truth.shape).astype(np.float32)
      >>> rows = list(score_images("denoise", lambda ex: ex["input"], [{"name": "a", "input": noisy, "truth": truth}], scale=1))
      >>> rows[0].name, round(rows[0].scores["psnr"], 1), rows[0].restored.dtype
      ('a', 20.1, dtype('uint8'))
    """
    task = get_task(task)
    for example in examples:
        restored = single2uint(np.asarray(restore(example), np.float32))
        yield ScoredImage(example, restored, task.scores(restored, example["truth"], scale))


def mean_scores(rows: Iterable[ScoredImage]) -> dict[str, float]:
    """The plain mean of each score over ``rows`` (at least one).

    >>> a = ScoredImage({"name": "a"}, np.zeros(1), {"psnr": 30.0, "ssim": 0.8})
    >>> b = ScoredImage({"name": "b"}, np.zeros(1), {"psnr": 32.0, "ssim": 0.9})
    >>> {k: round(v, 3) for k, v in mean_scores([a, b]).items()}
    {'psnr': 31.0, 'ssim': 0.85}
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows: at least one scored image is needed")
    return {key: float(np.mean([row.scores[key] for row in rows])) for key in rows[0].scores}
