"""Gaussian denoising (``'denoise'``): the test degradation, the training degradation and the recipe.

* Test (official ``main_test_dncnn``): AWGN of ``sigma`` (default 25, 0..255 scale) drawn with
  the legacy generator re-seeded with 0 for every image, added in float64 and stored as float32,
  unclipped (:func:`~converse_jax.protocol.denoise_input`); border 0; network ``apply(v, x)``.
* Training (KAIR ``DatasetDnCNN``): on the pipeline's augmented crop ``target``,
  ``input = target + float32(sigma/255) * N(0, 1)`` (float32 normals), with ``sigma`` fixed
  (``data.sigma``) or drawn per example from U(``data.sigma_range``); unclipped.
* Recipe (KAIR ``train_dncnn.json``): gray 40x40 patches, batch 64, Adam 1e-4 halved at
  200k/400k/600k/800k/1M/2M iterations; 1,075,000 updates (the released DnCNN-family iteration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from converse_jax.protocol.degradations import denoise_input, uint2single
from converse_jax.tasks.base import Task, register_task
from converse_jax.utils.validate import check_level, check_level_range

__all__ = ["Denoising"]


@dataclass(frozen=True)
class Denoising(Task):
    """Gaussian denoising: AWGN of ``sigma`` with the seed-``seed`` legacy generator; border 0.

    Data fields: ``sigma`` (the training level and the validation level, 0..255 scale) and
    ``sigma_range`` (``(low, high)`` or None: the training level ~ U(low, high) per example).

    Example:
      >>> task = Denoising("denoise", input_name="noisy", default_sigma=25.0)
      >>> target = np.full((4, 4, 1), 0.5, np.float32)
      >>> ex = task.train_example(target, np.random.default_rng(0), **task.train_options({"sigma": 0, "sigma_range": None}))
      >>> bool(np.array_equal(ex["input"], target)), task.setting(1, 15)  # no noise at sigma 0
      (True, 'sigma15')
    """

    data_fields: ClassVar[Mapping[str, Any]] = {"channels": 1, "patch_size": 40, "sigma": 25.0, "sigma_range": None}

    def degrade(self, img, *, scale=1, sigma=None, kernel=None, seed=0, crop=True):
        return img, denoise_input(img, self.noise_level(sigma), seed)

    def train_options(self, cfg):
        if cfg["sigma_range"] is not None:
            return {"sigma": None, "sigma_range": check_level_range(cfg["sigma_range"], "sigma_range")}
        if cfg["sigma"] is None:
            raise ValueError("sigma: must be a number when sigma_range is None, got None")
        return {"sigma": check_level(cfg["sigma"], "sigma"), "sigma_range": None}

    def train_example(self, target, rng, *, sigma, sigma_range):
        level = float(rng.uniform(*sigma_range)) if sigma_range is not None else sigma
        noise = rng.standard_normal(target.shape, dtype=np.float32)
        return {"input": target + np.float32(level / 255.0) * noise}

    def validation_example(self, img, cfg, index):
        if cfg["sigma"] is None:
            raise ValueError("data_cfg.sigma must be set: it is the validation noise level")
        truth, x = self.degrade(img, sigma=cfg["sigma"])
        return {"input": x, "target": uint2single(truth)}

    def setting(self, scale, sigma, kernel=None, x8=False):
        return f"sigma{self.noise_level(sigma):g}" + ("_x8" if x8 else "")


register_task(
    Denoising(
        "denoise", input_name="noisy", default_sigma=25.0,
        recipe={"batch_size": 64, "num_train_steps": 1_075_000,
                "lr_milestones": (200_000, 400_000, 600_000, 800_000, 1_000_000, 2_000_000)},
    )
)  # fmt: skip
