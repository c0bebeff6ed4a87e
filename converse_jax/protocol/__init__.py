"""Evaluation-protocol numerics of the official ConverseNet scripts, in numpy.

MATLAB bicubic ``imresize``, the test-set degradations (SR, denoising, deblurring inputs),
``rgb2ycbcr``/PSNR/SSIM, and random blur-kernel generators for training. Everything here is
plain numpy (SciPy-free) and reproduces the official code's numbers (golden
``degradations.npz``).
"""

from converse_jax.protocol.degradations import (
    add_gaussian_noise,
    bicubic_downsample,
    circular_blur,
    circular_blur_uint8,
    deblur_input,
    denoise_input,
    modcrop,
    single2uint,
    sr_input,
    uint2single,
)
from converse_jax.protocol.imresize import imresize, resize_matrix
from converse_jax.protocol.kernels import anisotropic_gaussian_kernel, motion_blur_kernel, random_blur_kernel
from converse_jax.protocol.metrics import calculate_psnr, calculate_ssim, rgb2ycbcr

__all__ = [
    "add_gaussian_noise",
    "anisotropic_gaussian_kernel",
    "bicubic_downsample",
    "calculate_psnr",
    "calculate_ssim",
    "circular_blur",
    "circular_blur_uint8",
    "deblur_input",
    "denoise_input",
    "imresize",
    "modcrop",
    "motion_blur_kernel",
    "random_blur_kernel",
    "resize_matrix",
    "rgb2ycbcr",
    "single2uint",
    "sr_input",
    "uint2single",
]
