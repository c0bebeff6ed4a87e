"""The restoration tasks, each defined once: degradation, network call, border, metrics, setting.

A :class:`Task` is what training-time validation (:func:`converse_jax.train.step.evaluate`),
``converse-jax evaluate`` (:mod:`converse_jax.inference.evaluate`), ``restore --degrade``
(:mod:`converse_jax.inference.restore`), the showcase and the demo share about one kind of restoration.
The data flow is the same everywhere::

    clean uint8 image --task.degrade--> float32 input --network (task.apply)--> output
        --single2uint--> uint8 restored --task.scores(restored, truth)--> PSNR/SSIM[/Y]

Images are HWC (``(H, W, C)``, uint8 0..255 or float32 on [0, 1]); the network sees NHWC.
The four tasks, registered under the task names of :data:`converse_jax.models.registry.TASKS`:

* ``'denoise'``: AWGN of ``sigma`` (default 25, 0..255 scale) with the legacy seed-0 generator,
  unclipped (:func:`~converse_jax.protocol.denoise_input`); border 0; network ``apply(v, x)``.
* ``'sr'``: ground truth ``modcrop(hr, scale)``, input its MATLAB-bicubic ``1/scale`` resize
  (:func:`~converse_jax.protocol.sr_input`); no noise; border ``scale``; scores also on the BT.601
  luma of RGB images (``psnr_y``, ``ssim_y`` -- the paper's metric, which also ranks training
  checkpoints).
* ``'deblur'`` (blind): ground truth ``modcrop(img, 8)``, input its circular blur (uint8
  store) plus AWGN of ``sigma`` (default 2.55) (:func:`~converse_jax.protocol.deblur_input`);
  border 1 (``sf**2``); network ``apply(v, x)`` -- the kernel only degrades.
* ``'deblur_nonblind'``: the same degradation; network ``apply(v, x, kernel, 1)`` (scale factor 1).

Adding a task is adding one :class:`Task` subclass instance to :data:`TASKS`.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converse_jax.protocol.degradations import (
    add_gaussian_noise,
    circular_blur_uint8,
    deblur_input,
    denoise_input,
    single2uint,
    sr_input,
    uint2single,
)
from converse_jax.protocol.metrics import calculate_psnr, calculate_ssim, rgb2ycbcr
from converse_jax.utils.validate import check_level

__all__ = ["TASKS", "Task", "get_task", "rank_value", "takes_train_flag"]


def takes_train_flag(module: Any) -> bool:
    """Whether ``module.__call__`` has a ``train`` argument (BatchNorm models such as DnCNN).

    >>> from converse_jax.models import get_model
    >>> takes_train_flag(get_model("dncnn", features=4, num_layers=3)), takes_train_flag(get_model("converse_dncnn"))
    (True, False)
    """
    return "train" in inspect.signature(type(module).__call__).parameters


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
    """One kind of restoration (the base class: blind, no noise, border 0).

    Attributes:
      name: the registry's task name (``'denoise'``, ``'sr'``, ``'deblur'``, ``'deblur_nonblind'``).
      data_task: the training data pipeline's task (:mod:`converse_jax.data.tasks`).
      input_name: what the degraded input is called in captions (``'noisy'``, ...).
      default_sigma: the test noise level on the 0..255 scale; None: the task adds no noise.
      blurs: the degradation needs a blur kernel.
      takes_kernel: the network is called with the blur kernel (non-blind).
      upscales: the output is ``scale`` times the input (the data's and the model's ``scale``).
      best_metric: the validation metric that ranks training checkpoints (:func:`rank_value`).

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
    data_task: str
    input_name: str
    default_sigma: float | None = None
    blurs: bool = False
    takes_kernel: bool = False
    upscales: bool = False
    best_metric: str = "psnr"

    def noise_level(self, sigma: float | None, option: str = "sigma") -> float | None:
        """``sigma`` checked (finite, >= 0), the default when None; tasks without noise refuse one."""
        if self.default_sigma is None:
            if sigma is not None:
                raise ValueError(f"{option}: the {self.name} degradation adds no noise, got {sigma!r}")
            return None
        return check_level(self.default_sigma if sigma is None else sigma, option)

    def check_request(self, model: str, *, sigma: float | None, kernel: object, degrade: bool = True) -> float | None:
        """Refuse a noise level or kernel that ``model``'s task does not use; returns the noise level.

        ``degrade``: the clean input is degraded first (always in an evaluation; ``restore
        --degrade``); otherwise the network gets the user's image and only a non-blind model
        takes a kernel.

        >>> get_task("deblur").check_request("conversenet", sigma=None, kernel=None)
        Traceback (most recent call last):
        ...
        ValueError: kernel: conversenet (deblur) needs a blur kernel (--kernel K.npy)
        """
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
        """``(truth uint8 HWC, network input float32 HWC)`` of the clean uint8 image ``img``.

        ``sigma`` None: :attr:`default_sigma`; ``crop=False`` skips the crop of the ground truth
        to the protocol's multiple (the figure of :mod:`converse_jax.cli.showcase`).
        """
        raise NotImplementedError

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
        raise NotImplementedError

    def metric_names(self, channels: int) -> tuple[str, ...]:
        """The keys of :meth:`scores` for images of ``channels`` channels."""
        return ("psnr", "ssim")

    def scores(self, restored: np.ndarray, truth: np.ndarray, scale: int) -> dict[str, float]:
        """``{'psnr', 'ssim'}`` of uint8 HWC ``restored`` against ``truth`` with :meth:`border`."""
        border = self.border(scale)
        return {"psnr": calculate_psnr(restored, truth, border), "ssim": calculate_ssim(restored, truth, border)}


@dataclass(frozen=True)
class Denoising(Task):
    """Gaussian denoising: AWGN of ``sigma`` with the seed-``seed`` legacy generator; border 0."""

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        return img, denoise_input(img, self.noise_level(sigma), seed)

    def setting(self, scale, sigma, kernel=None, x8=False):
        return f"sigma{self.noise_level(sigma):g}" + ("_x8" if x8 else "")


@dataclass(frozen=True)
class SuperResolution(Task):
    """Bicubic super-resolution by ``scale``; border ``scale``; luma scores for RGB."""

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        self.noise_level(sigma)
        return sr_input(img, scale)

    def border(self, scale):
        return int(scale)

    def shown(self, x, scale):
        return np.repeat(np.repeat(single2uint(x), scale, axis=0), scale, axis=1)

    def setting(self, scale, sigma, kernel=None, x8=False):
        return f"x{scale}" + ("_x8" if x8 else "")

    def metric_names(self, channels):
        return ("psnr", "ssim", "psnr_y", "ssim_y") if channels == 3 else ("psnr", "ssim")

    def scores(self, restored, truth, scale):
        out = super().scores(restored, truth, scale)
        if "psnr_y" in self.metric_names(restored.shape[2] if restored.ndim == 3 else 1):
            ry, ty = rgb2ycbcr(restored, only_y=True), rgb2ycbcr(truth, only_y=True)
            border = self.border(scale)
            out.update(psnr_y=calculate_psnr(ry, ty, border), ssim_y=calculate_ssim(ry, ty, border))
        return out


@dataclass(frozen=True)
class Deblurring(Task):
    """Blur (circular, uint8 store) plus AWGN of ``sigma``; border ``sf**2 = 1``."""

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        if kernel is None:
            raise ValueError(f"kernel: the {self.name} degradation needs a blur kernel")
        level = self.noise_level(sigma)
        if crop:
            return deblur_input(img, kernel, 1, level, seed)
        return img, add_gaussian_noise(uint2single(circular_blur_uint8(img, kernel)), level / 255.0, seed)

    def border(self, scale):
        return 1

    def network_args(self, x, kernel=None):
        if not self.takes_kernel:
            return (x,)
        if kernel is None:
            raise ValueError("kernel: a non-blind deblurring model needs the blur kernel (B, k, k)")
        return (x, kernel, 1)

    def setting(self, scale, sigma, kernel=None, x8=False):
        name = Path(kernel).stem if isinstance(kernel, (str, os.PathLike)) else "kernel"
        level = self.noise_level(sigma)
        return (name if level == self.default_sigma else f"{name}_sigma{level:g}") + ("_x8" if x8 else "")


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Denoising("denoise", "denoise", "noisy", default_sigma=25.0),
        SuperResolution("sr", "sr", "low-res", upscales=True, best_metric="psnr_y"),
        Deblurring("deblur", "deblur", "blurred", default_sigma=2.55, blurs=True),
        Deblurring("deblur_nonblind", "deblur", "blurred", default_sigma=2.55, blurs=True, takes_kernel=True),
    )
}
"""The tasks by registry task name."""


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
