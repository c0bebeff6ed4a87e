"""Degradation of clean images into restoration examples: random (training) and fixed (validation).

An *example* is a dict of float32 numpy arrays, layout HWC, values on the [0, 1] scale:

* ``'target'``: the clean image ``uint2single(patch)``, shape (H, W, C);
* ``'input'``: the degraded network input, shape (H, W, C) (denoise, deblur) or
  (H/scale, W/scale, C) (sr); not clipped, not quantised;
* ``'kernel'`` (deblur only): the blur kernel, shape (k, k), non-negative, sum ~1.

Training (random, KAIR ``Dataset*`` style; every draw comes from the ``rng`` argument, in the order
crop position, augmentation mode, then the task's draws):

* **denoise** (``DatasetDnCNN``): random ``patch_size`` crop, random augmentation mode 0..7,
  ``input = target + sigma/255 * N(0, 1)`` with ``sigma`` fixed or uniform in ``sigma_range``.
* **sr**: random HR crop of ``patch_size`` (a multiple of ``scale``), augmentation,
  ``input = bicubic_downsample(target, scale)`` (MATLAB bicubic with antialiasing, float32).
  KAIR's ``DatasetSR`` instead downsamples the whole image and crops aligned LR/HR windows
  (:func:`converse_jax.data.augment.random_crop_aligned`); the two differ only near the patch border
  (within the bicubic support, about two LR pixels), where MATLAB's symmetric padding sees the
  patch edge.
* **deblur**: random crop, augmentation, kernel ``random_blur_kernel(rng, kernel_size)`` (motion or
  anisotropic Gaussian) as float32, ``input = circular_blur(target, kernel) + s/255 * N(0, 1)`` with
  ``s`` uniform in ``noise_range`` -- the circular (periodic) blur model of the non-blind
  deep unfolding networks; no uint8 rounding of the blurred patch.

Validation (deterministic; the official test degradation of each task,
:meth:`converse_jax.tasks.Task.degrade`): see :func:`validation_example`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from converse_jax.data.augment import NUM_MODES, augment, random_crop
from converse_jax.protocol.degradations import bicubic_downsample, circular_blur, uint2single
from converse_jax.protocol.kernels import random_blur_kernel
from converse_jax.tasks import get_task
from converse_jax.utils.validate import check_int, check_level

TASKS = ("denoise", "sr", "deblur")


def _check_hr(hr: np.ndarray) -> np.ndarray:
    hr = np.asarray(hr)
    if hr.dtype != np.uint8 or hr.ndim != 3:
        raise ValueError(f"hr must be a uint8 array (H, W, C), got dtype {hr.dtype} shape {hr.shape}")
    return hr


def _level_range(value, name: str) -> tuple[float, float]:
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high) on the 0..255 scale, got {value!r}") from None
    lo, hi = check_level(lo, name), check_level(hi, name)
    if lo > hi:
        raise ValueError(f"{name} must have low <= high, got {value!r}")
    return lo, hi


def _denoise_levels(
    sigma: float | None, sigma_range: tuple[float, float] | None
) -> tuple[float | None, tuple[float, float] | None]:
    """Checked ``(sigma, sigma_range)``: the range wins when given, else sigma must be a level."""
    if sigma_range is not None:
        return sigma, _level_range(sigma_range, "sigma_range")
    if sigma is None:
        raise ValueError("sigma must be a number when sigma_range is None, got None")
    return check_level(sigma, "sigma"), None


def _sr_sizes(patch_size: int, scale: int) -> tuple[int, int]:
    """Checked ``(patch_size, scale)`` with patch_size a multiple of scale."""
    patch_size = check_int(patch_size, "patch_size")
    scale = check_int(scale, "scale")
    if patch_size % scale:
        raise ValueError(f"patch_size must be a multiple of scale={scale}, got {patch_size}")
    return patch_size, scale


def _deblur_args(kernel_size: int, noise_range: tuple[float, float]) -> tuple[int, tuple[float, float]]:
    """Checked ``(kernel_size, noise_range)``: odd positive size, ordered non-negative levels."""
    kernel_size = check_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    return kernel_size, _level_range(noise_range, "noise_range")


def _augmented_patch(hr: np.ndarray, rng: np.random.Generator, patch_size: int) -> np.ndarray:
    """Random ``patch_size`` crop of the uint8 HWC image, then a random KAIR augmentation mode."""
    patch = random_crop(rng, hr, patch_size)
    return augment(patch, int(rng.integers(0, NUM_MODES)))


def denoise_example(
    hr: np.ndarray,
    rng: np.random.Generator,
    *,
    patch_size: int,
    sigma: float | None = 25.0,
    sigma_range: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Random Gaussian-denoising training example (KAIR ``DatasetDnCNN``).

    Args:
      hr: clean uint8 image (H, W, C) with H, W >= patch_size.
      rng: numpy generator; draws crop, mode, [sigma], noise.
      patch_size: side of the square training patch.
      sigma: fixed noise level on the 0..255 scale (used when ``sigma_range`` is None).
      sigma_range: ``(low, high)``: sigma ~ U(low, high) per example instead.

    Returns:
      ``{'input', 'target'}`` float32 (patch_size, patch_size, C);
      ``input = target + float32(sigma/255) * N(0, 1)`` (float32 normals), unclipped.

    Example:
      >>> hr = np.random.default_rng(0).integers(0, 256, (16, 16, 1), dtype=np.uint8)
      >>> ex = denoise_example(hr, np.random.default_rng(1), patch_size=8)
      >>> {k: (v.shape, v.dtype.name) for k, v in ex.items()}
      {'input': ((8, 8, 1), 'float32'), 'target': ((8, 8, 1), 'float32')}
      >>> bool(np.all(np.isin(np.round(ex["target"] * 255), hr)))  # target: pixels of hr / 255
      True
      >>> ex = denoise_example(hr, np.random.default_rng(1), patch_size=8, sigma=0)
      >>> bool(np.array_equal(ex["input"], ex["target"]))  # no noise at sigma 0
      True
    """
    hr = _check_hr(hr)
    patch_size = check_int(patch_size, "patch_size")
    sigma, sigma_range = _denoise_levels(sigma, sigma_range)
    target = uint2single(_augmented_patch(hr, rng, patch_size))
    level = float(rng.uniform(*sigma_range)) if sigma_range is not None else sigma
    noise = rng.standard_normal(target.shape, dtype=np.float32)
    return {"input": target + np.float32(level / 255.0) * noise, "target": target}


def sr_example(
    hr: np.ndarray, rng: np.random.Generator, *, patch_size: int, scale: int
) -> dict[str, np.ndarray]:
    """Random bicubic super-resolution training example.

    Args:
      hr: clean uint8 image (H, W, C) with H, W >= patch_size.
      rng: numpy generator; draws crop, mode.
      patch_size: HR patch side, a multiple of ``scale``.
      scale: integer downsampling factor.

    Returns:
      ``{'input': (patch_size/scale, patch_size/scale, C), 'target': (patch_size, patch_size, C)}``
      float32, ``input = bicubic_downsample(target, scale)`` exactly.

    Example:
      >>> hr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
      >>> ex = sr_example(hr, np.random.default_rng(1), patch_size=8, scale=2)
      >>> ex["input"].shape, ex["target"].shape, ex["input"].dtype
      ((4, 4, 3), (8, 8, 3), dtype('float32'))
      >>> bool(np.array_equal(ex["input"], bicubic_downsample(ex["target"], 2)))
      True
    """
    hr = _check_hr(hr)
    patch_size, scale = _sr_sizes(patch_size, scale)
    target = uint2single(_augmented_patch(hr, rng, patch_size))
    return {"input": bicubic_downsample(target, scale), "target": target}


def deblur_example(
    hr: np.ndarray,
    rng: np.random.Generator,
    *,
    patch_size: int,
    kernel_size: int = 7,
    noise_range: tuple[float, float] = (0.0, 25.0),
) -> dict[str, np.ndarray]:
    """Random non-blind deblurring training example (circular blur + Gaussian noise).

    Args:
      hr: clean uint8 image (H, W, C) with H, W >= patch_size.
      rng: numpy generator; draws crop, mode, kernel, noise level, noise.
      patch_size: side of the square patch.
      kernel_size: odd kernel side (7 for the ConverseNet deblurring models).
      noise_range: ``(low, high)`` on the 0..255 scale; the level is U(low, high) per example.

    Returns:
      ``{'input', 'target'}`` float32 (patch_size, patch_size, C) and ``'kernel'`` float32
      (kernel_size, kernel_size);
      ``input = circular_blur(target, kernel) + float32(s/255) * N(0, 1)``, unclipped.

    Example:
      >>> hr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
      >>> ex = deblur_example(hr, np.random.default_rng(1), patch_size=8, noise_range=(0, 0))
      >>> {k: v.shape for k, v in ex.items()}
      {'input': (8, 8, 3), 'target': (8, 8, 3), 'kernel': (7, 7)}
      >>> round(float(ex["kernel"].sum()), 4), bool(ex["kernel"].min() >= 0)
      (1.0, True)
      >>> bool(np.array_equal(ex["input"], circular_blur(ex["target"], ex["kernel"])))  # noise 0
      True
    """
    hr = _check_hr(hr)
    patch_size = check_int(patch_size, "patch_size")
    kernel_size, noise_range = _deblur_args(kernel_size, noise_range)
    target = uint2single(_augmented_patch(hr, rng, patch_size))
    kernel = random_blur_kernel(rng, kernel_size).astype(np.float32)
    level = float(rng.uniform(*noise_range))
    blurred = circular_blur(target, kernel)
    noise = rng.standard_normal(target.shape, dtype=np.float32)
    return {"input": blurred + np.float32(level / 255.0) * noise, "target": target, "kernel": kernel}


@dataclasses.dataclass(frozen=True)
class TrainDegradation:
    """Picklable ``(hr, rng) -> example`` callable for one task (arguments checked on creation).

    Attributes:
      task: ``'denoise'``, ``'sr'`` or ``'deblur'``.
      patch_size: HR patch side.
      sigma, sigma_range: denoise noise level(s), 0..255 scale (see :func:`denoise_example`).
      scale: sr factor.
      kernel_size, noise_range: deblur kernel side and noise range (see :func:`deblur_example`).

    Calling it with a uint8 (H, W, C) image and a numpy generator gives the example dict of the
    task's ``*_example`` function (float32 HWC arrays).

    Example:
      >>> degrade = TrainDegradation("sr", patch_size=8, scale=2)
      >>> hr = np.zeros((16, 16, 3), np.uint8)
      >>> {k: v.shape for k, v in degrade(hr, np.random.default_rng(0)).items()}
      {'input': (4, 4, 3), 'target': (8, 8, 3)}
      >>> TrainDegradation("sr", patch_size=10, scale=4)
      Traceback (most recent call last):
      ...
      ValueError: patch_size must be a multiple of scale=4, got 10
    """

    task: str
    patch_size: int
    sigma: float | None = 25.0
    sigma_range: tuple[float, float] | None = None
    scale: int = 4
    kernel_size: int = 7
    noise_range: tuple[float, float] = (0.0, 25.0)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        check_int(self.patch_size, "patch_size")
        if self.task == "denoise":
            sigma, sigma_range = _denoise_levels(self.sigma, self.sigma_range)
            object.__setattr__(self, "sigma", sigma)
            object.__setattr__(self, "sigma_range", sigma_range)
        elif self.task == "sr":
            _sr_sizes(self.patch_size, self.scale)
        else:
            object.__setattr__(self, "noise_range", _deblur_args(self.kernel_size, self.noise_range)[1])

    def __call__(self, hr: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Degrades the uint8 (H, W, C) image ``hr`` into one training example."""
        if self.task == "denoise":
            return denoise_example(
                hr, rng, patch_size=self.patch_size, sigma=self.sigma, sigma_range=self.sigma_range
            )
        if self.task == "sr":
            return sr_example(hr, rng, patch_size=self.patch_size, scale=self.scale)
        return deblur_example(
            hr, rng, patch_size=self.patch_size, kernel_size=self.kernel_size, noise_range=self.noise_range
        )


def validation_example(
    img: np.ndarray,
    task: str,
    *,
    sigma: float = 25.0,
    scale: int = 4,
    kernel: np.ndarray | None = None,
    noise: float = 2.55,
) -> dict[str, np.ndarray]:
    """Deterministic validation example following the official test scripts.

    * denoise: ``target = uint2single(img)``, ``input = denoise_input(img, sigma, seed=0)``
      (legacy ``np.random.seed(0)`` noise, float64 add, float32 store);
    * sr: ``hr, input = sr_input(img, scale)`` (modcrop to ``scale``, MATLAB bicubic, float32),
      ``target = uint2single(hr)``;
    * deblur: ``hr, input = deblur_input(img, kernel, sf=1, sigma_255=noise, seed=0)`` (modcrop to
      8, circular blur of the uint8 image truncated to uint8, then noise), ``target = uint2single(hr)``.

    Args:
      img: clean uint8 image (H, W, C).
      task: ``'denoise'``, ``'sr'`` or ``'deblur'``.
      sigma: denoise noise level (0..255 scale).
      scale: sr factor.
      kernel: deblur kernel (k, k), required for deblur.
      noise: deblur noise level (0..255 scale; the paper's table uses 2.55).

    Returns:
      ``{'input', 'target'}`` float32 HWC (plus ``'kernel'`` float32 (k, k) for deblur).

    Example:
      >>> img = np.random.default_rng(0).integers(0, 256, (18, 18, 3), dtype=np.uint8)
      >>> ex = validation_example(img, "sr", scale=4)  # target modcropped to 16, input 16/4
      >>> ex["input"].shape, ex["target"].shape
      ((4, 4, 3), (16, 16, 3))
      >>> a, b = validation_example(img, "denoise"), validation_example(img, "denoise")
      >>> bool(np.array_equal(a["input"], b["input"]))  # fixed seed-0 noise: deterministic
      True
      >>> delta = np.zeros((3, 3)); delta[1, 1] = 1
      >>> ex = validation_example(img, "deblur", kernel=delta, noise=0)  # modcrop to 8
      >>> ex["input"].shape, bool(np.array_equal(ex["input"], ex["target"]))
      ((16, 16, 3), True)
    """
    img = _check_hr(img)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    degradation = get_task(task)
    if degradation.blurs:
        if kernel is None:
            raise ValueError(f"kernel must be a (k, k) array for task {task!r}, got None")
        kernel = np.asarray(kernel)
        if kernel.ndim != 2:
            raise ValueError(f"kernel must have shape (k, k), got {kernel.shape}")
    level = check_level(noise, "noise") if degradation.blurs else check_level(sigma, "sigma")
    level = None if degradation.default_sigma is None else level
    truth, x = degradation.degrade(img, scale=check_int(scale, "scale"), sigma=level, kernel=kernel)
    example = {"input": x, "target": uint2single(truth)}
    return {**example, "kernel": kernel.astype(np.float32)} if degradation.blurs else example
