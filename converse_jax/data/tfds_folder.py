"""TFDS datasets of clean images, prepared and read without TensorFlow.

Preparing a local folder (Train400, BSD400, DIV2K_train_HR, Flickr2K_HR, ...) as a TFDS dataset::

    from converse_jax.data.tfds_folder import prepare_image_folder, tfds_images
    name = prepare_image_folder("div2k_hr", {"train": "DIV2K_train_HR",
                                             "validation": "DIV2K_valid_HR"}, data_dir="~/tfds")
    # name == "restoration_image_folder/div2k_hr"
    images = tfds_images(name, "train", data_dir="~/tfds", image_key="image", channels=3)

:class:`RestorationImageFolder` is a ``tfds.core.GeneratorBasedBuilder`` writing ``array_record``
files.  Its examples hand TFDS the *file path* of each image, so TFDS stores the file's bytes
unchanged (png stays png, jpg stays jpg) and never needs TensorFlow; yielding decoded arrays would
make TFDS re-encode them to PNG, which needs TensorFlow.  Examples keep the sorted file order
(shuffling at preparation is disabled); features:

* ``image``: ``tfds.features.Image(shape=(None, None, 3))`` -- the original file bytes (gray files
  stay gray in storage; TFDS's own decoder repeats them to three channels);
* ``name``: ``tfds.features.Text()`` -- the file name without extension.

:func:`tfds_images` reads any *prepared* ``array_record`` dataset through ``tfds.data_source``
(TF-free random access) and decodes the image feature itself with PIL, so gray/RGB conversion is
exactly that of :mod:`converse_jax.data.sources`.  Catalog datasets go through the same reader,
e.g. ``tfds_images("div2k/bicubic_x4", "train", data_dir, image_key="hr")``, but the catalog
builders need TensorFlow to *prepare* them (``pip install tensorflow-cpu`` then
``tfds build div2k/bicubic_x4 --file_format=array_record``); reading afterwards is TF-free.
"""

from __future__ import annotations

import dataclasses
import io
import operator
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from converse_jax.data.sources import folder_images
from converse_jax.utils.images import check_channels, pil_to_array
from converse_jax.utils.paths import as_path, is_remote

BUILDER_NAME = "restoration_image_folder"

_CONFIG_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(eq=False)
class RestorationImageFolderConfig(tfds.core.BuilderConfig):
    """Builder config: ``name`` identifies the dataset, ``split_dirs`` maps split -> folder.

    ``split_dirs`` is only needed to prepare; reading a prepared dataset needs just the name.

    Example:
      >>> config = RestorationImageFolderConfig(name="set5", split_dirs={"test": "/data/Set5"})
      >>> config.name, dict(config.split_dirs)
      ('set5', {'test': '/data/Set5'})
    """

    split_dirs: Mapping[str, str] = dataclasses.field(default_factory=dict)


class RestorationImageFolder(tfds.core.GeneratorBasedBuilder):
    """Clean images of local folders as a TFDS dataset (one split per folder), TF-free.

    Construct with ``config=RestorationImageFolderConfig(name=..., split_dirs={...})`` and
    ``file_format='array_record'``, then call ``download_and_prepare()``; or use
    :func:`prepare_image_folder`.  The dataset lands in
    ``<data_dir>/restoration_image_folder/<name>/1.0.0/``; preparing again with the same name
    reuses it (delete that folder to rebuild after the images change).

    Example:
      >>> import contextlib, io, tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> src = Path(tmp.name) / "images"; src.mkdir()
      >>> for name in ("a", "b"):
      ...     Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / f"{name}.png")
      >>> config = RestorationImageFolderConfig(name="tiny", split_dirs={"train": str(src)})
      >>> builder = RestorationImageFolder(
      ...     config=config, data_dir=Path(tmp.name) / "tfds", file_format="array_record")
      >>> with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints progress
      ...     builder.download_and_prepare()
      >>> builder.info.splits["train"].num_examples, sorted(builder.info.features)
      (2, ['image', 'name'])
      >>> tmp.cleanup()
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Image files stored as-is, with their names."}

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This module's file.

        TFDS 4.9.10 computes the default through ``importlib_resources``, a package it declares
        only for Python < 3.9, so the default fails with ``ModuleNotFoundError`` for builders
        defined inside a package on Python >= 3.9 when that package is not installed.
        """
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Clean images read from local folders for image-restoration training "
                "(converse-jax); file bytes stored unchanged."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "name": tfds.features.Text(),
                }
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        split_dirs = getattr(self.builder_config, "split_dirs", None)
        if not split_dirs:
            raise ValueError(
                "RestorationImageFolderConfig.split_dirs is empty: give {split: folder} to prepare"
            )
        return {split: self._generate_examples(folder) for split, folder in split_dirs.items()}

    def _generate_examples(self, folder: str):
        for path in folder_images(folder, 3).files:
            yield path.name, {"image": os.fspath(path), "name": path.stem}


def prepare_image_folder(
    name: str, split_dirs: Mapping[str, str | os.PathLike], data_dir: str | os.PathLike
) -> str:
    """Prepares local image folders as the TFDS dataset ``restoration_image_folder/<name>``.

    Runs without TensorFlow (``file_format='array_record'``; see the module docstring).

    Args:
      name: dataset (builder config) name, lower case letters, digits and ``_``, e.g.
        ``'train400'`` or ``'div2k_hr'``.
      split_dirs: split name -> existing folder of image files (extensions
        :data:`~converse_jax.utils.images.IMAGE_EXTENSIONS`, sorted by file name), e.g.
        ``{'train': '.../DIV2K_train_HR', 'validation': '.../DIV2K_valid_HR'}``.
      data_dir: TFDS data folder (created if missing).

    Returns:
      The name to read it back with, ``'restoration_image_folder/<name>'``.

    Example:
      >>> import contextlib, io, tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> src = Path(tmp.name) / "images"; src.mkdir()
      >>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "a.png")
      >>> with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints progress
      ...     name = prepare_image_folder("tiny", {"train": src}, Path(tmp.name) / "tfds")
      >>> name
      'restoration_image_folder/tiny'
      >>> len(tfds_images(name, "train", Path(tmp.name) / "tfds"))
      1
      >>> tmp.cleanup()
      >>> prepare_image_folder("Tiny", {"train": src}, tmp.name)
      Traceback (most recent call last):
      ...
      ValueError: name must be lower case letters, digits and '_' starting with a letter, got 'Tiny'
    """
    if not isinstance(name, str) or not _CONFIG_NAME.match(name):
        raise ValueError(
            f"name must be lower case letters, digits and '_' starting with a letter, got {name!r}"
        )
    if not isinstance(split_dirs, Mapping) or not split_dirs:
        raise ValueError(f"split_dirs must be a non-empty mapping split -> folder, got {split_dirs!r}")
    dirs: dict[str, str] = {}
    for split, folder in split_dirs.items():
        if not isinstance(split, str) or not _SPLIT_NAME.match(split):
            raise ValueError(f"split_dirs keys must be split names like 'train', got {split!r}")
        folder_images(folder, 3)  # raises ValueError for a missing or empty folder
        dirs[split] = os.fspath(as_path(folder) if is_remote(folder) else Path(folder).expanduser().resolve())
    config = RestorationImageFolderConfig(
        name=name,
        description=f"Images of {', '.join(f'{k}: {v}' for k, v in dirs.items())}",
        split_dirs=dirs,
    )
    builder = RestorationImageFolder(
        config=config,
        data_dir=os.fspath(as_path(data_dir, "data_dir")),
        file_format="array_record",
    )
    builder.download_and_prepare()
    return f"{BUILDER_NAME}/{name}"


class TfdsImages(Sequence):
    """Lazy random-access sequence of ``(name, uint8 HWC image)`` over a prepared TFDS split.

    Built by :func:`tfds_images`.  ``name`` is the example's ``name`` feature when the dataset has
    one (decoded to ``str``), else ``f"{split}_{index:06d}"``.  The image bytes are decoded with
    PIL on every access (see :func:`converse_jax.utils.images.pil_to_array`).  Picklable (the
    data source is reopened on unpickling), so grain worker processes can use it.

    Example:
      >>> import contextlib, io, pickle, tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> src = Path(tmp.name) / "images"; src.mkdir()
      >>> Image.fromarray(np.full((6, 10), 9, np.uint8)).save(src / "gray.png")
      >>> with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints progress
      ...     name = prepare_image_folder("tiny", {"train": src}, Path(tmp.name) / "tfds")
      >>> images = TfdsImages(name, "train", Path(tmp.name) / "tfds", "image", channels=3)
      >>> images
      TfdsImages('restoration_image_folder/tiny', split='train', image_key='image', channels=3, n=1)
      >>> title, img = pickle.loads(pickle.dumps(images))[0]  # gray file repeated to RGB
      >>> title, img.shape, img.dtype, int(img.max())
      ('gray', (6, 10, 3), dtype('uint8'), 9)
      >>> tmp.cleanup()
    """

    def __init__(
        self,
        name: str,
        split: str,
        data_dir: str | os.PathLike | None,
        image_key: str,
        channels: int,
    ):
        self.name = name
        self.split = split
        self.data_dir = None if data_dir is None else os.fspath(as_path(data_dir, "data_dir"))
        self.image_key = image_key
        self.channels = check_channels(channels)
        self._source = self._open()
        if len(self._source) == 0:
            raise ValueError(f"split {split!r} of TFDS dataset {name!r} is empty")

    def _open(self):
        try:
            builder = tfds.builder(self.name, data_dir=self.data_dir)
        except Exception as e:  # tfds raises several unrelated types for an unknown dataset
            raise ValueError(
                f"cannot open TFDS dataset name={self.name!r} in data_dir={self.data_dir!r}: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        if not builder.is_prepared():
            raise ValueError(
                f"TFDS dataset {self.name!r} is not prepared in data_dir={self.data_dir!r} "
                f"(looked in {builder.data_dir}). Local folders: prepare_image_folder(...) "
                "(TF-free). Catalog datasets such as div2k need TensorFlow to prepare: "
                f"pip install tensorflow-cpu; tfds build {self.name} --file_format=array_record"
            )
        features = builder.info.features
        if self.image_key not in features or not isinstance(
            features[self.image_key], tfds.features.Image
        ):
            images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
            raise ValueError(
                f"image_key {self.image_key!r} is not an image feature of {self.name!r}; "
                f"image features: {images}"
            )
        self._has_name = "name" in features and isinstance(features["name"], tfds.features.Text)
        try:
            return builder.as_data_source(
                split=self.split, decoders={self.image_key: tfds.decode.SkipDecoding()}
            )
        except Exception as e:
            raise ValueError(
                f"cannot read split {self.split!r} of {self.name!r} TF-free ({e}); the split must "
                f"exist (available: {list(builder.info.splits)}) and the dataset must be prepared "
                "with file_format='array_record'"
            ) from e

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray]:
        index = operator.index(index)
        n = len(self._source)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        index %= n
        example = self._source[index]
        with Image.open(io.BytesIO(example[self.image_key])) as image:
            arr = pil_to_array(image, self.channels)
        if self._has_name:
            raw = example["name"]
            name = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        else:
            name = f"{self.split}_{index:06d}"
        return name, arr

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_source"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._source = self._open()

    def __repr__(self) -> str:
        return (
            f"TfdsImages({self.name!r}, split={self.split!r}, image_key={self.image_key!r}, "
            f"channels={self.channels}, n={len(self)})"
        )


def tfds_images(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    image_key: str = "image",
    channels: int = 3,
) -> TfdsImages:
    """Images of a prepared TFDS dataset, read TF-free through ``tfds.data_source``.

    Args:
      name: TFDS name with config, e.g. ``'restoration_image_folder/train400'`` (from
        :func:`prepare_image_folder`) or ``'div2k/bicubic_x4'`` (catalog; preparing it needs
        TensorFlow, reading does not).
      split: split name or TFDS slice, e.g. ``'train'``, ``'validation[:10]'``.
      data_dir: TFDS data folder (None: TFDS default, ``~/tensorflow_datasets``).
      image_key: the image feature to read: ``'image'`` for :class:`RestorationImageFolder`,
        ``'hr'`` for ``div2k``.
      channels: 1 (BT.601 gray) or 3 (RGB).

    Returns:
      A :class:`TfdsImages` sequence of ``(name, image)``, image uint8 (H, W, channels).
      The dataset must have been prepared with ``file_format='array_record'``.

    Example:
      >>> import contextlib, io, tempfile
      >>> tmp = tempfile.TemporaryDirectory()
      >>> src = Path(tmp.name) / "images"; src.mkdir()
      >>> rgb = np.random.default_rng(0).integers(0, 256, (12, 8, 3), dtype=np.uint8)
      >>> Image.fromarray(rgb).save(src / "photo.png")
      >>> with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints progress
      ...     name = prepare_image_folder("tiny", {"train": src}, Path(tmp.name) / "tfds")
      >>> title, img = tfds_images(name, "train", Path(tmp.name) / "tfds", channels=3)[0]
      >>> title, img.shape, bool(np.array_equal(img, rgb))  # png bytes stored unchanged
      ('photo', (12, 8, 3), True)
      >>> tfds_images(name, "train", Path(tmp.name) / "tfds", channels=1)[0][1].shape
      (12, 8, 1)
      >>> tmp.cleanup()
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a TFDS dataset name like 'div2k/bicubic_x4', got {name!r}")
    if not isinstance(image_key, str) or not image_key:
        raise ValueError(f"image_key must be a feature name like 'image' or 'hr', got {image_key!r}")
    return TfdsImages(name, split, data_dir, image_key, channels)


__all__ = [
    "BUILDER_NAME",
    "RestorationImageFolder",
    "RestorationImageFolderConfig",
    "TfdsImages",
    "prepare_image_folder",
    "tfds_images",
]
