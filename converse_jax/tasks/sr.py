"""Bicubic super-resolution (``'sr'``): the test degradation, the training degradation and the recipe.

* Test (official ``main_test_srresnet``): ground truth ``modcrop(hr, scale)``, input its
  MATLAB-bicubic (antialiased) ``1/scale`` resize, float32, not quantised or clipped
  (:func:`~converse_jax.protocol.sr_input`); no noise; border ``scale``; scores also on the
  BT.601 luma of RGB images (``psnr_y``, ``ssim_y`` -- the paper's metric, which also ranks
  training checkpoints).
* Training: on the pipeline's augmented HR crop ``target`` (``patch_size``, a multiple of
  ``scale``), ``input = bicubic_downsample(target, scale)`` (MATLAB bicubic with antialiasing,
  float32). KAIR's ``DatasetSR`` instead downsamples the whole image and crops aligned LR/HR
  windows (:func:`converse_jax.data.augment.random_crop_aligned`); the two differ only near the
  patch border (within the bicubic support, about two LR pixels), where MATLAB's symmetric
  padding sees the patch edge.
* Recipe (KAIR ``train_msrresnet_psnr.json``): RGB 96x96 HR patches (24x24 LR at x4), batch 32,
  Adam 1e-4 halved at 200k/400k/600k/800k/1M/2M; 585,000 updates (the released SRResNet-family
  iteration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from converse_jax.protocol.degradations import bicubic_downsample, single2uint, sr_input, uint2single
from converse_jax.protocol.metrics import calculate_psnr, calculate_ssim, rgb2ycbcr
from converse_jax.tasks.base import Task, register_task
from converse_jax.utils.validate import check_int

__all__ = ["SuperResolution"]


@dataclass(frozen=True)
class SuperResolution(Task):
    """Bicubic super-resolution by ``scale``; border ``scale``; luma scores for RGB.

    Data field: ``scale`` (the factor; ``patch_size`` must be a multiple of it).

    Example:
      >>> task = SuperResolution("sr", input_name="low-res", upscales=True)
      >>> target = np.zeros((8, 8, 3), np.float32)
      >>> task.train_example(target, np.random.default_rng(0), scale=2)["input"].shape
      (4, 4, 3)
      >>> task.train_options({"patch_size": 10, "scale": 4})
      Traceback (most recent call last):
      ...
      ValueError: patch_size must be a multiple of scale=4, got 10
    """

    data_fields: ClassVar[Mapping[str, Any]] = {"channels": 3, "patch_size": 96, "scale": 4}

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        self.noise_level(sigma)
        return sr_input(img, scale)

    def train_options(self, cfg):
        scale = check_int(cfg["scale"], "scale")
        if check_int(cfg["patch_size"], "patch_size") % scale:
            raise ValueError(f"patch_size must be a multiple of scale={scale}, got {cfg['patch_size']}")
        return {"scale": scale}

    def train_example(self, target, rng, *, scale):
        return {"input": bicubic_downsample(target, scale)}

    def validation_example(self, img, cfg, index):
        truth, x = self.degrade(img, scale=check_int(cfg["scale"], "scale"))
        return {"input": x, "target": uint2single(truth)}

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


register_task(
    SuperResolution(
        "sr", input_name="low-res", upscales=True, best_metric="psnr_y",
        recipe={"batch_size": 32, "num_train_steps": 585_000,
                "lr_milestones": (200_000, 400_000, 600_000, 800_000, 1_000_000, 2_000_000)},
    )
)  # fmt: skip
