"""The restoration tasks, each defined once in its own module and registered by name.

A :class:`Task` is what the data pipeline, training (the random degradation, validation, the
recipe defaults), ``converse-jax evaluate``, ``restore --degrade``, the showcase and the demo share
about one kind of restoration (:mod:`converse_jax.tasks.base` states the contract). The data flow
of a test is the same for every task::

    clean uint8 image --task.degrade--> float32 input --network (task.apply)--> output
        --single2uint--> uint8 restored --task.scores(restored, truth)--> PSNR/SSIM[/Y]

The tasks of the paper: ``'denoise'`` (:mod:`~converse_jax.tasks.denoise`), ``'sr'``
(:mod:`~converse_jax.tasks.sr`), ``'deblur'`` and ``'deblur_nonblind'``
(:mod:`~converse_jax.tasks.deblur`). Adding a task is one module: a :class:`Task` subclass and a
:func:`register_task` call (``docs/zoo.md``).

>>> from converse_jax.tasks import get_task, list_tasks
>>> list_tasks()[:4], get_task("denoise").default_sigma
(['denoise', 'sr', 'deblur', 'deblur_nonblind'], 25.0)
"""

from converse_jax.tasks.base import (
    TASKS,
    ScoredImage,
    Task,
    get_task,
    list_tasks,
    mean_scores,
    psnr_text,
    rank_value,
    register_task,
    score_images,
    takes_train_flag,
)

# Imported in the order the tasks are listed (registration order).
from converse_jax.tasks.denoise import Denoising  # noqa: I001
from converse_jax.tasks.sr import SuperResolution
from converse_jax.tasks.deblur import Deblurring

__all__ = [
    "TASKS",
    "Deblurring",
    "Denoising",
    "ScoredImage",
    "SuperResolution",
    "Task",
    "get_task",
    "list_tasks",
    "mean_scores",
    "psnr_text",
    "rank_value",
    "register_task",
    "score_images",
    "takes_train_flag",
]
