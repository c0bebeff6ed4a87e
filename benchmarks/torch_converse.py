"""A PyTorch version of Converse2D and of the four released networks, for benchmarks only.

Written for :mod:`benchmarks.vs_pytorch` from the paper's Algorithm 1 (as the official operator
computes it, see ``converse_jax/ops/reference.py``) the way a PyTorch user would write it: eager
mode, NCHW, ``torch.fft``, ``nn.Conv2d`` for the 1×1 convolutions, ``nn.GELU()`` (exact erf).
Module and parameter names follow the released ``.pth`` files, so ``load_state_dict`` takes
them as they are. Needs ``torch`` (the optional ``bench`` extra); nothing in ``converse_jax``
imports this module.

Algorithm 1, per sample and channel, on the padded grid (NCHW, circular boundaries):

1. pad Y by p (``F.pad`` in ``padding_mode``); Y_s = zero-insertion ↑s, X0 = nearest ↑s;
2. F_K = FFT of the kernel placed top-left on the (s·h)×(s·w) grid, rolled by −⌊k/2⌋;
3. R = conj(F_K)·FFT(Y_s) + FFT(λ·X0);
4. Q = ⟨F_K·R⟩_s / (⟨|F_K|²⟩_s + λ), ⟨·⟩_s the mean over the s×s aliasing blocks;
5. X = IFFT[(R − conj(F_K)·tile_s(Q)) / λ], real part, p·s pixels cropped per side.

Example:
  >>> import torch
  >>> layer = Converse2D(4, kernel_size=3, scale=2, padding=2, padding_mode="replicate")
  >>> layer(torch.ones(1, 4, 8, 8)).shape
  torch.Size([1, 4, 16, 16])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def converse2d(x: torch.Tensor, weight: torch.Tensor, lam: torch.Tensor, scale: int, padding: int,
               padding_mode: str) -> torch.Tensor:
    """Algorithm 1: x (N, C, H, W), weight (1 or N, C, kh, kw), lam (1 or N, C, 1, 1) ->
    (N, C, s·H, s·W)."""
    s, p = scale, padding
    if p:
        x = F.pad(x, (p, p, p, p), mode=padding_mode)
    n, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    if s == 1:
        ys, x0 = x, x
    else:
        ys = torch.zeros(n, c, s * h, s * w, dtype=x.dtype, device=x.device)
        ys[..., ::s, ::s] = x
        x0 = x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)
    otf = torch.zeros(weight.shape[0], c, s * h, s * w, dtype=x.dtype, device=x.device)
    otf[..., :kh, :kw] = weight
    fk = torch.fft.fft2(torch.roll(otf, (-(kh // 2), -(kw // 2)), dims=(-2, -1)))
    fk_conj = torch.conj(fk)
    r = fk_conj * torch.fft.fft2(ys) + torch.fft.fft2(lam * x0)
    fk2 = fk.real**2 + fk.imag**2
    if s == 1:
        q = fk * r / (fk2 + lam)
    else:
        def block_mean(a: torch.Tensor) -> torch.Tensor:
            return a.reshape(*a.shape[:2], s, h, s, w).mean(dim=(2, 4))

        q = (block_mean(fk * r) / (block_mean(fk2) + lam)).repeat(1, 1, s, s)
    out = torch.fft.ifft2((r - fk_conj * q) / lam).real
    if p:
        out = out[..., p * s:-p * s, p * s:-p * s]
    return out


class Converse2D(nn.Module):
    """Depthwise reverse convolution with learned kernel ``weight`` (1, C, k, k) and ``bias``
    (1, C, 1, 1), λ = sigmoid(bias − 9) + eps: (N, C, H, W) -> (N, C, s·H, s·W)."""

    def __init__(self, channels: int, kernel_size: int, scale: int = 1, padding: int = 2,
                 padding_mode: str = "circular", eps: float = 1e-5) -> None:
        super().__init__()
        self.scale, self.padding, self.padding_mode, self.eps = scale, padding, padding_mode, eps
        self.weight = nn.Parameter(torch.softmax(torch.randn(1, channels, kernel_size**2), -1)
                                   .reshape(1, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = torch.sigmoid(self.bias - 9.0) + self.eps
        return converse2d(x, self.weight, lam, self.scale, self.padding, self.padding_mode)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of NCHW data (biased variance, eps inside the root)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConverseBlock(nn.Module):
    """x + f1(x), then + f2(x) (times ``alpha1``/``alpha2`` (1, C, 1, 1) in the alpha variant):
    f1 = LN → 1×1 C→2C → GELU → Converse2D(2C) → GELU → 1×1 2C→C, f2 = LN → 1×1 → GELU → 1×1."""

    def __init__(self, c: int, kernel_size: int, padding: int, padding_mode: str, eps: float = 1e-5,
                 alpha: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            LayerNorm2d(c), nn.Conv2d(c, 2 * c, 1), nn.GELU(),
            Converse2D(2 * c, kernel_size, 1, padding, padding_mode, eps), nn.GELU(), nn.Conv2d(2 * c, c, 1))
        self.conv2 = nn.Sequential(LayerNorm2d(c), nn.Conv2d(c, 2 * c, 1), nn.GELU(), nn.Conv2d(2 * c, c, 1))
        if alpha:
            self.alpha1 = nn.Parameter(torch.zeros(1, c, 1, 1))
            self.alpha2 = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.alpha:
            x = x + self.alpha1 * self.conv1(x)
            return x + self.alpha2 * self.conv2(x)
        x = x + self.conv1(x)
        return x + self.conv2(x)


class ConverseDnCNN(nn.Module):
    """1×1 conv C→64, ``num_blocks`` blocks (k7, p6, circular), 1×1 conv 64→C; (N, C, H, W)."""

    def __init__(self, in_channels: int = 1, features: int = 64, num_blocks: int = 20) -> None:
        super().__init__()
        self.m_head = nn.Sequential(nn.Conv2d(in_channels, features, 1))
        self.m_body = nn.Sequential(*[ConverseBlock(features, 7, 6, "circular") for _ in range(num_blocks)])
        self.m_tail = nn.Sequential(nn.Conv2d(features, in_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m_tail(self.m_body(self.m_head(x)))


class ConverseSRResNet(nn.Module):
    """×4 SR: GELU(1×1) → blocks (k5, p4, replicate) → 2 × [block → GELU(Converse2D ×2)] → block
    → GELU → 1×1 (no bias), plus the bilinear ×4 input; (N, 3, H, W) -> (N, 3, 4H, 4W)."""

    def __init__(self, features: int = 64, num_blocks: int = 16) -> None:
        super().__init__()

        def block() -> ConverseBlock:
            return ConverseBlock(features, 5, 4, "replicate")

        self.conv_first = nn.Conv2d(3, features, 1)
        self.conv_body = nn.Sequential(*[block() for _ in range(num_blocks)])
        self.upconv1, self.upconv2 = block(), block()
        self.up1 = Converse2D(features, 2, 2, 2, "replicate", 1e-3)
        self.up2 = Converse2D(features, 2, 2, 2, "replicate", 1e-3)
        self.conv_hres = block()
        self.conv_last = nn.Conv2d(features, 3, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_body(F.gelu(self.conv_first(x)))
        y = F.gelu(self.up1(self.upconv1(y)))
        y = F.gelu(self.up2(self.upconv2(y)))
        y = self.conv_last(F.gelu(self.conv_hres(y)))
        return y + F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


class _Stack(nn.Module):
    """Holds the shared block stack as ``m_body`` (the released files name it ``p.m_body``)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.m_body = nn.Sequential(*blocks)


class ConverseNet(nn.Module):
    """1×1 conv 3→64, the same 7 blocks (k3, p2, circular) applied 5 times, 1×1 conv 64→3."""

    def __init__(self, features: int = 64, num_blocks: int = 7, num_iterations: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, features, 1)
        self.p = _Stack([ConverseBlock(features, 3, 2, "circular") for _ in range(num_blocks)])
        self.conv2 = nn.Conv2d(features, 3, 1)
        self.num_iterations = num_iterations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for _ in range(self.num_iterations):
            x = self.p.m_body(x)
        return self.conv2(x)


class _KernelNet(nn.Module):
    def __init__(self, taps: int = 49, hidden: int = 64, out: int = 16) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(taps, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, out * taps)
        self.out = out

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        n, kh, kw = k.shape
        h = F.gelu(self.fc2(F.gelu(self.fc1(k.reshape(n, kh * kw)))))
        return self.fc3(h).reshape(n, self.out, kh, kw)


class _DataStep(nn.Module):
    def __init__(self, features: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, features, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor, kernel: torch.Tensor, sf: int) -> torch.Tensor:
        lam = torch.sigmoid(self.alpha - 9.0) + self.eps
        return converse2d(x, kernel, lam, sf, 0, "circular")


class ConverseUSRNet(nn.Module):
    """Kernel-conditioned: per iteration a per-sample Converse2D data step with kernels projected
    from KernelNet(kernel), then the shared 7 alpha blocks; ``forward(x, kernel (N, 7, 7), sf)``."""

    def __init__(self, features: int = 64, num_blocks: int = 7, num_iterations: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, features, 1)
        self.kernelnet = _KernelNet()
        self.convs = nn.ModuleList([nn.Conv2d(16, features, 1) for _ in range(num_iterations)])
        self.d = _DataStep(features)
        self.p = _Stack([ConverseBlock(features, 3, 2, "circular", alpha=True) for _ in range(num_blocks)])
        self.conv2 = nn.Conv2d(features, 3, 1)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor, sf: int = 1) -> torch.Tensor:
        k16 = self.kernelnet(kernel)
        x = self.conv1(x)
        for i, proj in enumerate(self.convs):
            x = self.p.m_body(self.d(x, proj(k16), sf if i == 0 else 1))
        return self.conv2(x)


NETWORKS = {
    "converse_dncnn": ConverseDnCNN,
    "converse_srresnet": ConverseSRResNet,
    "conversenet": ConverseNet,
    "converse_usrnet": ConverseUSRNet,
}
