"""Training iterator (grain) and validation set of a task's data.

``data_cfg`` is an ``ml_collections.ConfigDict``; :func:`default_data_config` returns one with
every field.  Fields missing from a user's config take the value of
``default_data_config(data_cfg.task)``.

Fields common to every task:

* ``task``: a registered task's name (:func:`converse_jax.tasks.list_tasks`: ``'denoise'``,
  ``'sr'``, ``'deblur'``, ...); it adds its own fields (below).
* ``source``: ``'embedded'`` (scikit-image sample photographs, fixed split, see
  :func:`converse_jax.data.sources.embedded_images`) | ``'folder'`` | ``'tfds'``.
* ``train_dir``, ``val_dir``: image folders for ``source='folder'``.
* ``tfds_name``, ``tfds_data_dir``, ``tfds_train_split``, ``tfds_val_split``: prepared TFDS dataset
  for ``source='tfds'`` (e.g. ``'restoration_image_folder/div2k_hr'``, ``'div2k/bicubic_x4'``),
  read TF-free (see :mod:`converse_jax.data.tfds_folder`).
* ``image_key``: TFDS image feature, ``'image'`` (folder datasets) or ``'hr'`` (``div2k``).
* ``channels``: 1 (gray, BT.601) or 3 (RGB).
* ``patch_size``: HR training patch side.
* ``val_max_images``: int or None: use only the first images of the validation split.
* ``val_crop``: int or None: centre-crop validation images to at most ``val_crop`` x ``val_crop``.
* ``num_threads``: grain reader threads computing batches ahead (0: compute on demand).
* ``prefetch_buffer_size``: batches kept ready by the reader threads.
* ``worker_count``: grain worker processes (0: none, the default -- deterministic either way,
  but processes cost start-up time and need picklable sources).

Each task's own fields and defaults are its :attr:`~converse_jax.tasks.Task.data_fields`:
``sigma``, ``sigma_range`` (denoise); ``scale`` (sr); ``kernel_size``, ``noise_range``,
``val_noise`` (deblur) -- see :mod:`converse_jax.tasks.denoise`, :mod:`~converse_jax.tasks.sr`,
:mod:`~converse_jax.tasks.deblur`.

Training stream.  Global example ``g = 0, 1, 2, ...`` is the degradation of image
``perm_e[g mod N]`` of the training split (``N`` images, ``perm_e`` grain's seeded shuffle of epoch
``e = g // N``) with a numpy generator seeded by ``SeedSequence([seed, g])``.  Global batch ``j``
holds examples ``j*B ... j*B + B - 1`` (``B = global_batch_size``) and process ``i`` of ``P``
computes only the contiguous block ``j*B + i*b ... j*B + (i+1)*b - 1`` (``b = B // P``), so
concatenating the ``P`` local batches in process order gives exactly the single-process global
batch, whatever ``P`` is -- the layout ``jax.make_array_from_process_local_data`` expects.

Batches are dicts of float32 numpy arrays, NHWC: ``input`` (b, h, w, C), ``target`` (b, H, W, C)
and the task's extra inputs (deblur: ``kernel`` (b, k, k)).  The iterator is a ``grain.DatasetIterator``:
``get_state()`` returns a small JSON-serialisable dict and ``set_state(state)`` resumes the exact
same sequence of batches (save it next to the model checkpoint, e.g. with
``grain.checkpoint.CheckpointSave``).

Validation (:func:`create_eval_set`): every image of the validation split, centre-cropped, degraded
deterministically by the task (:meth:`converse_jax.tasks.Task.validation_example`: the official
test degradation with seed-0 noise; for deblur the kernel of validation image ``i`` is
``random_blur_kernel(np.random.default_rng(i), kernel_size)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import grain
import ml_collections
import numpy as np
from absl import flags

from converse_jax.data.examples import TrainDegradation, _check_hr
from converse_jax.data.sources import check_channels, embedded_images, folder_images
from converse_jax.data.tfds_folder import tfds_images
from converse_jax.tasks import get_task
from converse_jax.utils.validate import check_int

SOURCES = ("embedded", "folder", "tfds")


def default_data_config(task: str) -> ml_collections.ConfigDict:
    """Data config with every field (see the module docstring) for ``task``, embedded source.

    The common fields (embedded source, validation centre crop 256, two reader threads, no
    worker processes) and the task's :attr:`~converse_jax.tasks.Task.data_fields`: denoise gray
    40x40 patches at sigma 25 (KAIR DnCNN json); sr RGB 96x96 HR patches, x4; deblur RGB 96x96
    patches, 7x7 kernels, noise U(0, 25)/255, validation noise 2.55.

    >>> default_data_config("sr").scale, "sigma" in default_data_config("sr")
    (4, False)
    """
    fields = {
        "task": get_task(task).name,
        "source": "embedded",
        "train_dir": None,
        "val_dir": None,
        "tfds_name": None,
        "tfds_data_dir": None,
        "tfds_train_split": "train",
        "tfds_val_split": "validation",
        "image_key": "image",
        "channels": 3,
        "patch_size": 96,
        "val_max_images": None,
        "val_crop": 256,
        "num_threads": 2,
        "prefetch_buffer_size": 4,
        "worker_count": 0,
    }
    return ml_collections.ConfigDict({**fields, **get_task(task).data_fields})


def _resolved(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``data_cfg`` over the defaults of its task (a new ConfigDict; the argument is untouched)."""
    if not hasattr(data_cfg, "get"):
        raise ValueError(f"data_cfg must be a ConfigDict with a 'task' field, got {type(data_cfg).__name__}")
    try:
        cfg = default_data_config(data_cfg.get("task"))
    except ValueError as err:
        raise ValueError(f"data_cfg.{err}") from None
    for key in data_cfg.keys():
        if key not in cfg:
            raise ValueError(f"data_cfg has an unknown field {key!r}; known fields: {sorted(cfg.keys())}")
        value = data_cfg[key]
        cfg[key] = tuple(value) if isinstance(value, list) else value
    if cfg.source not in SOURCES:
        raise ValueError(f"data_cfg.source must be one of {SOURCES}, got {cfg.source!r}")
    check_channels(cfg.channels)
    return cfg


def _images(cfg: ml_collections.ConfigDict, split: str) -> Sequence[tuple[str, np.ndarray]]:
    """The (name, uint8 HWC) source of ``split`` ('train' or 'validation')."""
    if cfg.source == "embedded":
        return embedded_images(split, cfg.channels)
    if cfg.source == "folder":
        field = "train_dir" if split == "train" else "val_dir"
        if not cfg[field]:
            raise ValueError(f"data_cfg.{field} must be a folder of images for source='folder'")
        try:
            return folder_images(cfg[field], cfg.channels)
        except ValueError as err:
            raise ValueError(f"data_cfg.{field}: {str(err).removeprefix('path: ')}") from None
    if not cfg.tfds_name:
        raise ValueError("data_cfg.tfds_name must name a prepared TFDS dataset for source='tfds'")
    tfds_split = cfg.tfds_train_split if split == "train" else cfg.tfds_val_split
    return tfds_images(cfg.tfds_name, tfds_split, cfg.tfds_data_dir, cfg.image_key, cfg.channels)


@dataclasses.dataclass(frozen=True)
class _UsableImage:
    """``(name, image) -> image``, or ``ValueError`` naming the image when it is smaller than a patch (picklable)."""

    patch_size: int

    def __call__(self, item: tuple[str, np.ndarray]) -> np.ndarray:
        name, image = item
        if min(image.shape[:2]) < self.patch_size:
            raise ValueError(
                f"training image {name} is {image.shape[1]}x{image.shape[0]}, smaller than "
                f"data_cfg.patch_size={self.patch_size}; remove it or lower the patch size"
            )
        return image


@dataclasses.dataclass(frozen=True)
class _DegradeWithIndex:
    """``(g, hr) -> degradation(hr, Generator(SeedSequence([seed, g])))`` (picklable)."""

    degradation: TrainDegradation
    seed: int

    def __call__(self, index: int, hr: np.ndarray) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(index)]))
        return self.degradation(hr, rng)


def create_train_iterator(
    data_cfg: ml_collections.ConfigDict,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.DatasetIterator:
    """Infinite, deterministic, checkpointable iterator over this process's training batches.

    Args:
      data_cfg: data config (module docstring).
      global_batch_size: examples per step over all processes, divisible by ``process_count``.
      seed: non-negative int; fixes the shuffle and every random degradation.
      process_index: this process, ``0 <= process_index < process_count``
        (``jax.process_index()``).
      process_count: number of processes (``jax.process_count()``).

    Returns:
      A ``grain.DatasetIterator`` yielding dicts of float32 arrays with leading dimension
      ``global_batch_size // process_count``: ``input`` (b, h, w, C), ``target`` (b, H, W, C),
      plus the task's extra inputs (deblur: ``kernel`` (b, k, k)).  ``get_state()`` / ``set_state(state)`` save and
      resume the position; with ``worker_count > 0`` call ``close()`` when done (it stops the
      worker processes).  See the module docstring for which global examples each process
      computes.

    Example:
      >>> import tempfile
      >>> from pathlib import Path
      >>> from PIL import Image
      >>> tmp = tempfile.TemporaryDirectory()
      >>> rng = np.random.default_rng(0)
      >>> for name in ("a", "b"):  # two 16x16 gray training images
      ...     img = rng.integers(0, 256, (16, 16), dtype=np.uint8)
      ...     Image.fromarray(img).save(Path(tmp.name) / f"{name}.png")
      >>> cfg = default_data_config("denoise")  # gray, sigma 25
      >>> cfg.update(source="folder", train_dir=tmp.name, patch_size=8, num_threads=0)
      >>> it = create_train_iterator(cfg, global_batch_size=2, seed=0)
      >>> batch = next(it)
      >>> {k: (v.shape, v.dtype.name) for k, v in batch.items()}  # NHWC
      {'input': ((2, 8, 8, 1), 'float32'), 'target': ((2, 8, 8, 1), 'float32')}
      >>> state = it.get_state()  # resume point
      >>> second = next(it)["input"]
      >>> it.set_state(state)
      >>> bool(np.array_equal(next(it)["input"], second))
      True
      >>> tmp.cleanup()
    """
    cfg = _resolved(data_cfg)
    degradation = TrainDegradation(cfg.task, cfg.patch_size, cfg.to_dict())
    seed = check_int(seed, "seed", minimum=0)
    process_count = check_int(process_count, "process_count", minimum=0)
    if process_count < 1:
        raise ValueError(f"process_count must be >= 1, got {process_count}")
    process_index = check_int(process_index, "process_index", minimum=0)
    if process_index >= process_count:
        raise ValueError(f"process_index must be < process_count={process_count}, got {process_index}")
    global_batch_size = check_int(global_batch_size, "global_batch_size", minimum=0)
    if global_batch_size < 1 or global_batch_size % process_count:
        raise ValueError(
            f"global_batch_size must be a positive multiple of process_count={process_count}, "
            f"got {global_batch_size}"
        )
    local_batch_size = global_batch_size // process_count
    num_threads = check_int(cfg.num_threads, "data_cfg.num_threads", minimum=0)
    prefetch = check_int(cfg.prefetch_buffer_size, "data_cfg.prefetch_buffer_size", minimum=0)
    workers = check_int(cfg.worker_count, "data_cfg.worker_count", minimum=0)

    images = _images(cfg, "train")
    ds = (
        grain.MapDataset.source(images)
        .map(_UsableImage(cfg.patch_size))
        .shuffle(seed=seed)
        .repeat(None)  # infinite; each epoch reshuffled
        .map_with_index(_DegradeWithIndex(degradation, seed))
        # Chunk c holds global examples c*b ... c*b + b - 1; global batch j is chunks j*P ... j*P+P-1.
        .batch(local_batch_size, drop_remainder=True)
    )[process_index::process_count]
    iter_ds = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    )
    if workers > 0:
        # Grain's worker processes read absl flags; outside ``absl.app.run`` they are unparsed,
        # which makes grain fail.  Marking them parsed keeps every flag at its default value.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(iter_ds)


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Centre window of at most ``size`` x ``size`` of an (H, W[, C]) image (a view).

    The window is (min(H, size), min(W, size)) starting at ((H - h) // 2, (W - w) // 2).

    >>> center_crop(np.arange(25).reshape(5, 5), 2)
    array([[ 6,  7],
           [11, 12]])
    """
    size = check_int(size, "size", minimum=0)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    h, w = img.shape[0], img.shape[1]
    ch, cw = min(h, size), min(w, size)
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top : top + ch, left : left + cw]


def create_eval_set(data_cfg: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """Deterministic full-image validation examples of the validation split.

    Args:
      data_cfg: data config (module docstring); uses task, the source fields, channels, the
        task's fields, val_max_images, val_crop.

    Returns:
      One dict per image, in source order: ``'name'`` (str), ``'input'`` and ``'target'`` float32
      HWC (sr: target modcropped to ``scale``, input (H/scale, W/scale, C); deblur: both
      modcropped to 8), and the task's extra inputs (deblur: ``'kernel'`` float32 (k, k)).  No
      batch dimension.

    Example:
      >>> import tempfile
      >>> from pathlib import Path
      >>> from PIL import Image
      >>> tmp = tempfile.TemporaryDirectory()
      >>> img = np.random.default_rng(0).integers(0, 256, (18, 17, 3), dtype=np.uint8)
      >>> Image.fromarray(img).save(Path(tmp.name) / "photo.png")
      >>> cfg = default_data_config("sr")  # RGB, x4
      >>> cfg.update(source="folder", val_dir=tmp.name)
      >>> [(e["name"], e["input"].shape, e["target"].shape) for e in create_eval_set(cfg)]
      [('photo', (4, 4, 3), (16, 16, 3))]
      >>> tmp.cleanup()
    """
    cfg = _resolved(data_cfg)
    task = get_task(cfg.task)
    images = _images(cfg, "validation")
    count = len(images)
    if cfg.val_max_images is not None:
        count = min(count, check_int(cfg.val_max_images, "data_cfg.val_max_images", minimum=0))
    examples = []
    for i in range(count):
        name, img = images[i]
        if cfg.val_crop is not None:
            img = np.ascontiguousarray(center_crop(img, cfg.val_crop))
        examples.append({"name": name, **task.validation_example(_check_hr(img), cfg, i)})
    return examples
