"""SRCNN of seed 002, registered in BasicSR's ``ARCH_REGISTRY``.

SRCNN (Dong et al., ECCV 2014 / TPAMI 2016): three convolutions on a bicubic-upsampled image.
The seed trains the 9-5-5 form (64/32 channels) on the Y channel: 57,281 parameters.
"""
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class SRCNN(nn.Module):
    """SRCNN: patch extraction, non-linear mapping and reconstruction convolutions.

    The input is the low-resolution image; the network upsamples it with bicubic interpolation
    (torch's, not MATLAB's) by ``upscale`` before the first convolution, so it plugs into BasicSR's
    ``SRModel`` like any other SR network. With ``upscale=1`` it takes an already-upsampled image,
    as the seed's dataset did.

    Args:
        num_in_ch (int): Input channels: 1 for the Y channel (the papers and the seed), 3 for RGB. Default: 1.
        num_out_ch (int | None): Output channels. Default: None (same as ``num_in_ch``).
        num_feat (Sequence[int]): Channels after the first and second convolution. Default: (64, 32).
        kernel_sizes (Sequence[int]): Kernel sizes of the three convolutions: (9, 5, 5) is the TPAMI
            setting used by the seed, (9, 1, 5) the ECCV base setting. Default: (9, 5, 5).
        upscale (int): Bicubic pre-upsampling factor applied inside the network. Default: 2.

    Shapes:
        input ``(N, num_in_ch, h, w)`` in [0, 1]; output ``(N, num_out_ch, h * upscale, w * upscale)``,
        not clamped (BasicSR clamps when converting to an image).
    """

    def __init__(self,
                 num_in_ch: int = 1,
                 num_out_ch: int = None,
                 num_feat: Sequence[int] = (64, 32),
                 kernel_sizes: Sequence[int] = (9, 5, 5),
                 upscale: int = 2):
        super().__init__()
        if len(num_feat) != 2 or len(kernel_sizes) != 3:
            raise ValueError(f'SRCNN needs num_feat of length 2 and kernel_sizes of length 3, '
                             f'got num_feat={list(num_feat)} and kernel_sizes={list(kernel_sizes)}')
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f'SRCNN kernel_sizes must be odd to keep the image size, got {list(kernel_sizes)}')
        if int(upscale) < 1:
            raise ValueError(f'SRCNN upscale must be >= 1, got {upscale}')
        num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.upscale = int(upscale)
        k1, k2, k3 = kernel_sizes
        # 'same' padding: the seed's summary keeps the 63x47 input size through all three layers.
        self.extract = nn.Conv2d(num_in_ch, num_feat[0], k1, padding=k1 // 2)
        self.mapping = nn.Conv2d(num_feat[0], num_feat[1], k2, padding=k2 // 2)
        self.reconstruct = nn.Conv2d(num_feat[1], num_out_ch, k3, padding=k3 // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upscale > 1:
            x = F.interpolate(x, scale_factor=self.upscale, mode='bicubic', align_corners=False)
        x = F.relu(self.extract(x), inplace=True)
        x = F.relu(self.mapping(x), inplace=True)
        return self.reconstruct(x)
