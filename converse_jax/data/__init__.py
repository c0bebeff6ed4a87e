"""Training and validation data: image sources, augmentation, training examples, grain pipeline.

Typical use::

    from converse_jax.data import default_data_config, create_train_iterator, create_eval_set
    cfg = default_data_config("denoise")          # embedded scikit-image photos, gray, sigma 25
    it = create_train_iterator(cfg, global_batch_size=64, seed=0)
    batch = next(it)                               # {'input': (64,40,40,1), 'target': ...} float32
    val = create_eval_set(cfg)                     # [{'name', 'input', 'target'}, ...]

TFDS datasets are prepared and read without TensorFlow (:mod:`converse_jax.data.tfds_folder`).
"""

from __future__ import annotations

from converse_jax.data.augment import (
    NUM_MODES,
    augment,
    augment_inverse,
    inverse_mode,
    random_crop,
    random_crop_aligned,
)
from converse_jax.data.pipeline import (
    SOURCES,
    center_crop,
    create_eval_set,
    create_train_iterator,
    default_data_config,
)
from converse_jax.data.sources import (
    EMBEDDED_TRAIN,
    EMBEDDED_VALIDATION,
    FolderImages,
    embedded_images,
    folder_images,
)
from converse_jax.data.examples import TrainDegradation
from converse_jax.data.tfds_folder import (
    RestorationImageFolder,
    RestorationImageFolderConfig,
    TfdsImages,
    prepare_image_folder,
    tfds_images,
)


__all__ = [
    "EMBEDDED_TRAIN",
    "EMBEDDED_VALIDATION",
    "NUM_MODES",
    "SOURCES",
    "FolderImages",
    "RestorationImageFolder",
    "RestorationImageFolderConfig",
    "TfdsImages",
    "TrainDegradation",
    "augment",
    "augment_inverse",
    "center_crop",
    "create_eval_set",
    "create_train_iterator",
    "default_data_config",
    "embedded_images",
    "folder_images",
    "inverse_mode",
    "prepare_image_folder",
    "random_crop",
    "random_crop_aligned",
    "tfds_images",
]
