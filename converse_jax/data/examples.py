"""Training examples: a random crop, a random augmentation, then the task's random degradation.

An *example* is a dict of float32 numpy arrays, layout HWC, values on the [0, 1] scale:
``'target'`` (the clean patch ``uint2single(patch)``), ``'input'`` (the degraded network input:
same size, or ``1/scale`` for SR; not clipped, not quantised) and the task's extra inputs
(``'kernel'`` (k, k) for deblurring). Every draw comes from the ``rng`` argument, in the order
crop position, augmentation mode, then the task's draws (:meth:`converse_jax.tasks.Task.train_example`).
Validation examples are the tasks' own (:meth:`converse_jax.tasks.Task.validation_example`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from converse_jax.data.augment import NUM_MODES, augment, random_crop
from converse_jax.protocol.degradations import uint2single
from converse_jax.tasks import Task, get_task
from converse_jax.utils.validate import check_int

__all__ = ["TrainDegradation"]


def _check_hr(hr: np.ndarray) -> np.ndarray:
    """``hr`` as an array, checked to be a uint8 (H, W, C) image."""
    hr = np.asarray(hr)
    if hr.dtype != np.uint8 or hr.ndim != 3:
        raise ValueError(f"hr must be a uint8 array (H, W, C), got dtype {hr.dtype} shape {hr.shape}")
    return hr


@dataclasses.dataclass(frozen=True)
class TrainDegradation:
    """Picklable ``(hr, rng) -> example`` callable: crop, augmentation, the task's degradation.

    Attributes:
      task: the :class:`~converse_jax.tasks.Task` (or its name) whose training degradation runs.
      patch_size: side of the square (HR) patch.
      options: the keyword arguments of :meth:`~converse_jax.tasks.Task.train_example`, checked
        on creation by :meth:`~converse_jax.tasks.Task.train_options` (give the data config's
        fields; missing ones take the task's defaults).

    Calling it with a uint8 (H, W, C) image at least ``patch_size`` large and a numpy generator
    gives one example (see the module docstring).

    Example:
      >>> degrade = TrainDegradation("sr", patch_size=8, options={"scale": 2})
      >>> hr = np.zeros((16, 16, 3), np.uint8)
      >>> {k: v.shape for k, v in degrade(hr, np.random.default_rng(0)).items()}
      {'input': (4, 4, 3), 'target': (8, 8, 3)}
      >>> TrainDegradation("sr", patch_size=10, options={"scale": 4})
      Traceback (most recent call last):
      ...
      ValueError: patch_size must be a multiple of scale=4, got 10
    """

    task: Task | str
    patch_size: int
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        task = get_task(self.task)
        patch_size = check_int(self.patch_size, "patch_size")
        fields = {**task.data_fields, **self.options, "patch_size": patch_size}
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "options", task.train_options(fields))

    def __call__(self, hr: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Degrades the uint8 (H, W, C) image ``hr`` into one training example."""
        patch = random_crop(rng, _check_hr(hr), self.patch_size)
        target = uint2single(augment(patch, int(rng.integers(0, NUM_MODES))))
        example = self.task.train_example(target, rng, **self.options)
        return {"input": example.pop("input"), "target": target, **example}
