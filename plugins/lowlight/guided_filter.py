"""Guided-filter layers of "Fast End-to-End Trainable Guided Filter" (Wu et al., CVPR 2018), any channel count.

All tensors are ``(N, C, H, W)`` floats. With ``x`` the guide and ``y`` the image to filter, the guided filter fits a
local linear model ``y ~ A * x + b`` in every (2r+1) x (2r+1) window:

    A = cov(x, y) / (var(x) + eps),  b = mean(y) - A * mean(x)

``GuidedFilter`` applies it at one resolution (A and b box-averaged once more, as He et al.); ``FastGuidedFilter``
fits A and b at low resolution and applies their bilinear upsampling to the high-resolution guide (DGF_b);
``ConvGuidedFilter`` learns the box filter (a dilated depthwise 3x3) and predicts A from (cov, var) with 1x1 convs
(DGF^c, the head of the lab's Backbone7x7).

Under mixed precision (``train: amp``) the local statistics (``var = mean(x^2) - mean(x)^2`` cancels catastrophically
in 16 bits) and the output ``A * x + b`` are computed in float32 (``full_precision``); ConvGuidedFilter's 1x1 convs
that predict A run in the autocast dtype. Outputs are float32 (float64 for float64 inputs).
"""
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.basicsr.mixed_precision import full_precision, wide


def _window_sum(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over the window [i - r, i + r] along ``dim`` (clipped at the borders), from one cumulative sum."""
    size = x.shape[dim]
    cum = x.cumsum(dim)
    # upper end min(i + r, size - 1), lower end i - r - 1 (nothing to subtract while it is < 0)
    upper = torch.cat([cum.narrow(dim, r, size - r),
                       cum.narrow(dim, size - 1, 1).expand_as(cum.narrow(dim, 0, r))], dim)
    lower = torch.cat([torch.zeros_like(cum.narrow(dim, 0, r + 1)), cum.narrow(dim, 0, size - r - 1)], dim)
    return upper - lower


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sum of ``x`` over (2r+1) x (2r+1) windows clipped at the image borders, in O(1) per pixel whatever ``r``.

    Args:
        x: ``(N, C, H, W)``, with ``H, W > 2r + 1``.
        r: the radius, >= 1.

    Returns:
        ``(N, C, H, W)`` window sums (divide by ``box_filter(ones, r)`` for means).
    """
    if r < 1:
        raise ValueError(f'box_filter: radius must be >= 1, got {r}')
    h, w = x.shape[-2:]
    if h <= 2 * r + 1 or w <= 2 * r + 1:
        raise ValueError(f'box_filter: the image ({h}x{w}) must be larger than the window 2r+1 = {2 * r + 1}')
    return _window_sum(_window_sum(x, r, -2), r, -1)


def _check_channels(lr_x: torch.Tensor, lr_y: torch.Tensor, hr_x: torch.Tensor = None) -> None:
    cx, cy = lr_x.shape[1], lr_y.shape[1]
    if hr_x is not None and hr_x.shape[1] != cx:
        raise ValueError(f'guided filter: low-res guide has {cx} channels, high-res guide {hr_x.shape[1]}')
    if cx != 1 and cx != cy:
        raise ValueError(f'guided filter: the guide must have 1 channel or as many as the image ({cy}), got {cx}')
    if lr_x.shape[-2:] != lr_y.shape[-2:]:
        raise ValueError(f'guided filter: guide {tuple(lr_x.shape[-2:])} and image {tuple(lr_y.shape[-2:])} '
                         'must have the same size')


def _linear_coefficients(x: torch.Tensor, y: torch.Tensor, r: int, eps: float):
    """(A, b) of the local linear model y ~ A x + b over clipped box windows of radius ``r``, and the window sizes
    (float32: call inside ``full_precision`` with float32 ``x``, ``y``)."""
    n = box_filter(x.new_ones((1, 1) + x.shape[-2:]), r)
    mean_x, mean_y = box_filter(x, r) / n, box_filter(y, r) / n
    cov_xy = box_filter(x * y, r) / n - mean_x * mean_y
    var_x = box_filter(x * x, r) / n - mean_x * mean_x
    a = cov_xy / (var_x + eps)
    return a, mean_y - a * mean_x, n


class GuidedFilter(nn.Module):
    """He et al.'s guided filter at one resolution: ``mean(A) * x + mean(b)``.

    Args:
        r (int): box radius. eps (float): regulariser of var(x). Default: 1e-8.
    """

    def __init__(self, r: int, eps: float = 1e-8):
        super().__init__()
        self.r, self.eps = r, eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: guide ``(N, 1|C, H, W)``; y: image ``(N, C, H, W)``. Returns ``(N, C, H, W)``."""
        _check_channels(x, y)
        with full_precision(x.device.type):
            x, y = wide(x), wide(y)
            a, b, n = _linear_coefficients(x, y, self.r, self.eps)
            return box_filter(a, self.r) / n * x + box_filter(b, self.r) / n


class FastGuidedFilter(nn.Module):
    """DGF_b: A and b fitted at low resolution, bilinearly upsampled (align_corners=True) to the guide's size.

    Args:
        r (int): box radius at low resolution. eps (float): regulariser of var(x). Default: 1e-8.
    """

    def __init__(self, r: int, eps: float = 1e-8):
        super().__init__()
        self.r, self.eps = r, eps

    def forward(self, lr_x: torch.Tensor, lr_y: torch.Tensor, hr_x: torch.Tensor) -> torch.Tensor:
        """lr_x ``(N, 1|C, h, w)``, lr_y ``(N, C, h, w)``, hr_x like lr_x at ``(H, W)``. Returns ``(N, C, H, W)``."""
        _check_channels(lr_x, lr_y, hr_x)
        with full_precision(hr_x.device.type):
            a, b, _ = _linear_coefficients(wide(lr_x), wide(lr_y), self.r, self.eps)
            size = hr_x.shape[-2:]
            a = F.interpolate(a, size, mode='bilinear', align_corners=True)
            b = F.interpolate(b, size, mode='bilinear', align_corners=True)
            return a * wide(hr_x) + b


class AdaptiveNorm(nn.Module):
    """``w0 * x + w1 * BatchNorm(x)`` with learnable scalars w0, w1 (DGF's "adaptive normalisation").

    DGF initialises w0 = 1, w1 = 0; the lab's Backbone7x7 uses w0 = 0, w1 = 1 (plain BN at the start), the default
    here. ``momentum=0.999`` is DGF's TF-port value and the lab's: in PyTorch it makes the running statistics
    almost exactly those of the last training batch. Kept for fidelity; pass another ``momentum`` to change it.

    Args:
        num_features (int): channels. w0, w1 (float): initial weights. momentum, eps: of the BatchNorm.
    """

    def __init__(self, num_features: int, w0: float = 0., w1: float = 1., momentum: float = 0.999,
                 eps: float = 1e-3):
        super().__init__()
        self.w_0 = nn.Parameter(torch.tensor([float(w0)]))
        self.w_1 = nn.Parameter(torch.tensor([float(w1)]))
        self.bn = nn.BatchNorm2d(num_features, momentum=momentum, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_0 * x + self.w_1 * self.bn(x)

    def affine(self):
        """(scale, shift) per channel, shape ``(C,)``, equal to this layer in eval mode (running statistics)."""
        bn = self.bn
        inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return self.w_0 + self.w_1 * inv, self.w_1 * (bn.bias - bn.running_mean * inv)


def run_folded(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run ``seq`` with every (Conv2d without bias, AdaptiveNorm) pair fused into one conv with bias.

    Equal to ``seq(x)`` in eval mode (AdaptiveNorm uses its running statistics there); one pass over the tensor
    instead of four (conv, BN, two scalings and a sum). Use in eval mode only.
    """
    layers, i = list(seq), 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, nn.Conv2d) and layer.bias is None and isinstance(nxt, AdaptiveNorm):
            scale, shift = nxt.affine()
            x = F.conv2d(x, layer.weight * scale.view(-1, 1, 1, 1), shift, layer.stride, layer.padding,
                         layer.dilation, layer.groups)
            i += 2
        else:
            x = layer(x)
            i += 1
    return x


class ConvGuidedFilter(nn.Module):
    """DGF^c: learnable dilated box filter, A predicted from ``cat[cov_xy, var_x]`` by three 1x1 convs.

    Args:
        radius (int): dilation of the 3x3 depthwise box filter (weights initialised to 1). Default: 1.
        channels (int): channels of guide and image (the lab: 3). Default: 3.
        hidden (int): width of the 1x1 convs. Default: 32.
        norm (callable): ``norm(num_features)`` after the two hidden 1x1 convs. Default: AdaptiveNorm.
    """

    def __init__(self, radius: int = 1, channels: int = 3, hidden: int = 32,
                 norm: Callable[[int], nn.Module] = AdaptiveNorm):
        super().__init__()
        self.box_filter = nn.Conv2d(channels, channels, 3, padding=radius, dilation=radius, bias=False,
                                    groups=channels)
        nn.init.ones_(self.box_filter.weight)
        self.conv_a = nn.Sequential(
            nn.Conv2d(2 * channels, hidden, 1, bias=False), norm(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1, bias=False), norm(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False))

    def coefficients(self, x_lr: torch.Tensor, y_lr: torch.Tensor):
        """(A, b), each ``(N, C, h, w)``, from the low-res guide ``x_lr`` and image ``y_lr`` (both ``(N, C, h, w)``).
        A is in the autocast dtype under mixed precision, b float32."""
        _check_channels(x_lr, y_lr)
        with full_precision(x_lr.device.type):  # the box statistics in float32
            x_lr, y_lr = wide(x_lr), wide(y_lr)
            n = self.box_filter(x_lr.new_ones((1, x_lr.shape[1]) + x_lr.shape[-2:]))
            mean_x, mean_y = self.box_filter(x_lr) / n, self.box_filter(y_lr) / n
            cov_xy = self.box_filter(x_lr * y_lr) / n - mean_x * mean_y
            var_x = self.box_filter(x_lr * x_lr) / n - mean_x * mean_x
            cov_var = torch.cat([cov_xy, var_x], dim=1)
        a = self.conv_a(cov_var) if self.training else run_folded(self.conv_a, cov_var)
        with full_precision(x_lr.device.type):
            return a, mean_y - wide(a) * mean_x

    def forward(self, x_lr: torch.Tensor, y_lr: torch.Tensor, x_hr: torch.Tensor) -> torch.Tensor:
        """Returns ``A_up * x_hr + b_up`` at the size of ``x_hr`` ``(N, C, H, W)``."""
        a, b = self.coefficients(x_lr, y_lr)
        with full_precision(x_hr.device.type):
            ab = F.interpolate(torch.cat([wide(a), b], 1), x_hr.shape[-2:], mode='bilinear', align_corners=True)
            return torch.addcmul(ab[:, a.shape[1]:], ab[:, :a.shape[1]], wide(x_hr))
