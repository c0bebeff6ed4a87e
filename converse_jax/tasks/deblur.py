"""Deblurring, blind (``'deblur'``) and non-blind (``'deblur_nonblind'``): degradations and recipes.

* Test (official ``main_test_*`` deblurring scripts): ground truth ``modcrop(img, 8)``, input its
  SciPy-order circular blur (uint8 store), ``uint2single``, then AWGN of ``sigma`` (default
  2.55, seed 0 per image), unclipped (:func:`~converse_jax.protocol.deblur_input`); border 1
  (``sf**2``). A blind network is called ``apply(v, x)`` (the kernel only degrades); a non-blind
  one ``apply(v, x, kernel, 1)`` (scale factor 1).
* Training (the circular blur model of the non-blind deep unfolding networks): on the pipeline's
  augmented crop ``target``, a kernel ``random_blur_kernel(rng, kernel_size)`` (motion or
  anisotropic Gaussian) as float32, ``input = circular_blur(target, kernel) + s/255 * N(0, 1)``
  with ``s ~ U(noise_range)``; no uint8 rounding of the blurred patch. The batch carries the
  kernel (``'kernel'``, (k, k)) for both variants. Validation image ``i`` is blurred with
  ``random_blur_kernel(np.random.default_rng(i), kernel_size)`` and noise ``val_noise``.
* Recipe (KAIR ``train_usrnet.json``, USRNet style): RGB 96x96 patches, batch 48, Adam 1e-4
  halved at 100k/200k/300k/400k; 7x7 kernels (the ConverseNets' KernelNet size), noise sigma
  ~ U(0, 25)/255 (KAIR's range, sf 1), validation noise 2.55 as the paper's deblurring table.
  Updates: the released iteration of the family -- 1,185,000 (ConverseNet, blind) and 1,715,000
  (Converse-USRNet, non-blind).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from converse_jax.protocol.degradations import (
    add_gaussian_noise,
    circular_blur,
    circular_blur_uint8,
    deblur_input,
    uint2single,
)
from converse_jax.protocol.kernels import random_blur_kernel
from converse_jax.tasks.base import Task, register_task
from converse_jax.utils.validate import check_int, check_level, check_level_range

__all__ = ["Deblurring"]

_USRNET_MILESTONES = (100_000, 200_000, 300_000, 400_000)  # KAIR train_usrnet.json G_scheduler_milestones


@dataclass(frozen=True)
class Deblurring(Task):
    """Blur (circular, uint8 store) plus AWGN of ``sigma``; border ``sf**2 = 1``.

    Data fields: ``kernel_size`` (odd training/validation kernel side), ``noise_range``
    (training noise level range, 0..255 scale) and ``val_noise`` (validation noise level).

    Example:
      >>> task = Deblurring("deblur", input_name="blurred", default_sigma=2.55, blurs=True)
      >>> ex = task.train_example(np.zeros((8, 8, 3), np.float32), np.random.default_rng(1), kernel_size=5,
      ...                         noise_range=(0.0, 0.0))
      >>> {k: v.shape for k, v in ex.items()}
      {'input': (8, 8, 3), 'kernel': (5, 5)}
      >>> task.setting(1, None, "kernels/kernel_1.npy"), task.setting(1, 5, "kernels/kernel_1.npy")
      ('kernel_1', 'kernel_1_sigma5')
    """

    data_fields: ClassVar[Mapping[str, Any]] = {
        "channels": 3, "patch_size": 96, "kernel_size": 7, "noise_range": (0.0, 25.0), "val_noise": 2.55,
    }  # fmt: skip

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        if kernel is None:
            raise ValueError(f"kernel: the {self.name} degradation needs a blur kernel")
        level = self.noise_level(sigma)
        if crop:
            return deblur_input(img, kernel, 1, level, seed)
        return img, add_gaussian_noise(uint2single(circular_blur_uint8(img, kernel)), level / 255.0, seed)

    def train_options(self, cfg):
        kernel_size = check_int(cfg["kernel_size"], "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        return {"kernel_size": kernel_size, "noise_range": check_level_range(cfg["noise_range"], "noise_range")}

    def train_example(self, target, rng, *, kernel_size, noise_range):
        kernel = random_blur_kernel(rng, kernel_size).astype(np.float32)
        level = float(rng.uniform(*noise_range))
        noise = rng.standard_normal(target.shape, dtype=np.float32)
        return {"input": circular_blur(target, kernel) + np.float32(level / 255.0) * noise, "kernel": kernel}

    def validation_example(self, img, cfg, index):
        kernel = random_blur_kernel(np.random.default_rng(index), check_int(cfg["kernel_size"], "kernel_size"))
        truth, x = self.degrade(img, sigma=check_level(cfg["val_noise"], "val_noise"), kernel=kernel)
        return {"input": x, "target": uint2single(truth), "kernel": kernel.astype(np.float32)}

    def placeholder_batch(self, x, kernel_size=7):
        if not self.takes_kernel:
            return {"input": x}
        delta = np.zeros((x.shape[0], kernel_size, kernel_size), x.dtype)
        delta[:, kernel_size // 2, kernel_size // 2] = 1
        return {"input": x, "kernel": delta}

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


_RECIPE = {"batch_size": 48, "lr_milestones": _USRNET_MILESTONES}
register_task(
    Deblurring("deblur", input_name="blurred", default_sigma=2.55, blurs=True,
               recipe={**_RECIPE, "num_train_steps": 1_185_000})
)  # fmt: skip
register_task(
    Deblurring("deblur_nonblind", input_name="blurred", data_task="deblur", default_sigma=2.55, blurs=True,
               takes_kernel=True, recipe={**_RECIPE, "num_train_steps": 1_715_000})
)  # fmt: skip
