"""RRDB BaseNet for CMDSR: Real-ESRGAN's generator (BasicSR's ``RRDBNet``) with modulated body convolutions.

This is the lab's variant of the seed ("从real-ESRGAN代码开始"): CMDSR's condition modulates every convolution
of every Residual Dense Block. Parameter names and shapes equal BasicSR's ``RRDBNet``, so Real-ESRGAN / ESRGAN
weights (e.g. RealESRNet_x4plus.pth) load into it with ``strict=False`` (only the modulations are new), and the
unmodulated network gives RRDBNet's output exactly.
"""
from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import default_init_weights, pixel_unshuffle
from basicsr.utils.registry import ARCH_REGISTRY

from .modulated_conv import ModulatedConv2d, Modulations, images_per_task


class ModResidualDenseBlock(nn.Module):
    """BasicSR's ``ResidualDenseBlock`` (5 densely connected convolutions, LeakyReLU 0.2, residual x 0.2) with
    modulated convolutions; ``in_channels`` lists the input channels of its 5 convolutions."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.in_channels = [num_feat + i * num_grow_ch for i in range(5)]
        for i, c in enumerate(self.in_channels):
            setattr(self, f'conv{i + 1}', ModulatedConv2d(c, num_grow_ch if i < 4 else num_feat, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        default_init_weights([getattr(self, f'conv{i + 1}') for i in range(5)], 0.1)

    def forward(self, x: torch.Tensor, mods: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
        feats = [x]
        for i in range(4):
            feats.append(self.lrelu(getattr(self, f'conv{i + 1}')(torch.cat(feats, 1), mods[i])))
        return self.conv5(torch.cat(feats, 1), mods[4]) * 0.2 + x


class ModRRDB(nn.Module):
    """Three ``ModResidualDenseBlock`` and a residual x 0.2 (BasicSR's ``RRDB``)."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.rdb1 = ModResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ModResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ModResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor, mods: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x, mods[0:5]), mods[5:10]), mods[10:15])
        return out * 0.2 + x


@ARCH_REGISTRY.register()
class CMDSRRRDBNet(nn.Module):
    """Real-ESRGAN's RRDBNet whose 15 body convolutions per RRDB are modulated by a CMDSR condition.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): RRDBs in the trunk. Default: 23 (Real-ESRGAN's).
        num_grow_ch (int): Growth channels of the dense blocks. Default: 32.
        upscale (int): 4, or 2 (pixel-unshuffle first, as RRDBNet). Default: 4.
        modulated (bool): Hold ``Modulations`` for the 15 * num_block body convolutions. Default: True.
        cond_dim (int): Length of the condition vector. Default: 128.
        img_range (float): Input [0, 1] multiplied by this, output divided by it (1 = Real-ESRGAN's). Default: 1.

    Shapes:
        x ``(B, num_in_ch, h, w)`` in [0, 1] (h, w even for x2); condition ``(T, cond_dim, 1, 1)`` or None with
        B a multiple of T -> ``(B, num_out_ch, h * upscale, w * upscale)``.
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, upscale: int = 4, modulated: bool = True, cond_dim: int = 128,
                 img_range: float = 1.):
        super().__init__()
        if int(upscale) not in (2, 4):
            # RRDBNet's design: x4 by two nearest x2 stages, x2 by pixel-unshuffle then x4. No x3 there.
            raise ValueError(f'CMDSRRRDBNet: upscale must be 2 or 4 (as Real-ESRGAN\'s RRDBNet), got {upscale}')
        self.upscale, self.img_range = int(upscale), float(img_range)
        self.conv_first = nn.Conv2d(num_in_ch * (4 if self.upscale == 2 else 1), num_feat, 3, 1, 1)
        self.body = nn.ModuleList(ModRRDB(num_feat, num_grow_ch) for _ in range(int(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        channels = [c for block in self.body for rdb in (block.rdb1, block.rdb2, block.rdb3) for c in rdb.in_channels]
        self.modulations = Modulations(channels, cond_dim) if modulated else None

    def forward(self, x: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        mods: List[Optional[torch.Tensor]] = [None] * (15 * len(self.body))
        if self.modulations is not None and condition is not None:
            mods = self.modulations(condition, images_per_task(x.shape[0], condition.shape[0]))
        x = x * self.img_range
        feat = self.conv_first(pixel_unshuffle(x, scale=2) if self.upscale == 2 else x)
        body = feat
        for i, block in enumerate(self.body):
            body = block(body, mods[15 * i:15 * i + 15])
        feat = feat + self.conv_body(body)
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode='nearest')))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode='nearest')))
        return self.conv_last(self.lrelu(self.conv_hr(feat))) / self.img_range
