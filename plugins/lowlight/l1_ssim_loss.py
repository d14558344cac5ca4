"""L1 + (1 - SSIM), the seed's training loss (``--l1loss --ssimloss``).

SSIM is ``pytorch_msssim.ssim`` (Gaussian window 11, sigma 1.5, K = (0.01, 0.03), as Wang et al. and the lab's
``ssim_loss.py``), differentiable, on images in [0, 1]. Under mixed precision (``train: amp``) the loss is computed in
float32 (``full_precision``): SSIM's local variances ``mean(x^2) - mean(x)^2`` cancel catastrophically in 16 bits.
"""
import torch
from torch import nn

from basicsr.utils.registry import LOSS_REGISTRY

from ..engine.basicsr.mixed_precision import full_precision, wide


@LOSS_REGISTRY.register()
class L1SSIMLoss(nn.Module):
    """``l1_weight * mean|x - y| + ssim_weight * (1 - SSIM(x, y))`` on ``(N, C, H, W)`` images in [0, 1].

    Args:
        l1_weight (float): Default: 1. ssim_weight (float): Default: 1 (the lab sums both with weight 1).
        win_size (int): SSIM window; both image sides must be at least this. Default: 11.
        loss_weight (float): factor on the whole loss. Default: 1.
    """

    def __init__(self, l1_weight: float = 1.0, ssim_weight: float = 1.0, win_size: int = 11,
                 loss_weight: float = 1.0):
        super().__init__()
        if win_size < 3 or win_size % 2 == 0:
            raise ValueError(f'L1SSIMLoss: win_size must be an odd number >= 3, got {win_size}')
        self.l1_weight, self.ssim_weight, self.win_size, self.loss_weight = l1_weight, ssim_weight, win_size, loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from pytorch_msssim import ssim
        if min(pred.shape[-2:]) < self.win_size:
            raise ValueError(f'L1SSIMLoss: images of {tuple(pred.shape[-2:])} are smaller than the SSIM window '
                             f'{self.win_size}')
        with full_precision(pred.device.type):
            pred, target = wide(pred), wide(target)
            loss = self.l1_weight * (pred - target).abs().mean()
            if self.ssim_weight:
                loss = loss + self.ssim_weight * (1 - ssim(pred, target, data_range=1.0, win_size=self.win_size))
            return self.loss_weight * loss
