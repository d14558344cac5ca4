"""The lab's slim SwiftNet: a ResNet-18 encoder with features 16/32/64/64, spatial pyramid pooling and an
upsampling ladder to 1/4 resolution (zhilin007/LightEnhancement, ``net/models/Defined_Network``; SwiftNet,
Orsic et al., CVPR 2019, ``orsic/swiftnet/models/util.py``).

Tensors are ``(N, C, H, W)``. Parameter names and counts follow the lab's modules, so the totals of its
networks are reproduced exactly (see tests/lowlight/test_archs.py).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize to ``size`` (h, w), ``align_corners=False`` as SwiftNet's ladder."""
    return F.interpolate(x, size, mode='bilinear', align_corners=False)


class NormReluConv(nn.Sequential):
    """SwiftNet's pre-activation unit: [BatchNorm(in)] -> ReLU -> Conv(k x k, padding k // 2, bias).

    The lab's ``ReluConv``; ``norm`` adds the BatchNorm (the lab's decoder and SPP use BN, the encoder IN).
    """

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, norm: bool = False):
        super().__init__()
        if norm:
            self.add_module('norm', nn.BatchNorm2d(in_ch))
        self.add_module('relu', nn.ReLU(inplace=False))  # not in place: the input is a skip kept elsewhere
        self.add_module('conv', nn.Conv2d(in_ch, out_ch, k, padding=k // 2))


class SlimBasicBlock(nn.Module):
    """ResNet basic block, convs with bias, InstanceNorm (no affine) when ``norm``.

    Returns ``(skip, out)``: the pre-activation sum (SwiftNet's lateral skip) and its ReLU.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1)
        self.norm1 = nn.InstanceNorm2d(out_ch) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.norm2 = nn.InstanceNorm2d(out_ch) if norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:  # 1x1 strided projection, no norm, no bias (as the lab)
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out = self.norm2(self.conv2(self.relu(self.norm1(self.conv1(x)))))
        skip = out + (x if self.downsample is None else self.downsample(x))
        return skip, F.relu(skip)


class SlimResNet18(nn.Module):
    """ResNet-18 with a 7x7/2 stem (bias, ReLU, no norm: the lab defines a stem norm but never applies it),
    3x3/2 max-pool and four stages of two blocks with ``features`` channels.

    forward: ``(N, in_ch, H, W)`` -> skips at strides 4, 8, 16, 32 (pre-activation sums of each stage).
    """

    def __init__(self, in_ch: int = 4, features: Sequence[int] = (16, 32, 64, 64), norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, features[0], 7, 2, 3, bias=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, prev = [], features[0]
        for i, ch in enumerate(features):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(SlimBasicBlock(prev, ch, stride, norm), SlimBasicBlock(ch, ch, 1, norm)))
            prev = ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.maxpool(F.relu(self.conv1(x), inplace=True))
        skips = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                skip, x = block(x)
            skips.append(skip)
        return skips


class SpatialPyramidPooling(nn.Module):
    """SwiftNet SPP: bottleneck 1x1, ``num_levels`` average-pooled levels (grids 8, 4, 2 rows, columns following
    the aspect ratio), each 1x1 conv + bilinear upsampling, concatenation, fuse 1x1.

    Args:
        in_ch (int): input channels. bt_size (int): bottleneck width (128). out_size (int): output width; each
        level has ``out_size // num_levels`` channels. grids: rows of the pooling grids. norm (bool): BatchNorm.
    """

    def __init__(self, in_ch: int, num_levels: int = 3, bt_size: int = 128, out_size: int = 128,
                 grids: Sequence[int] = (8, 4, 2, 1), norm: bool = False):
        super().__init__()
        level_size = out_size // num_levels
        self.grids = tuple(grids)[:num_levels]
        self.spp = nn.Sequential()  # kept as one Sequential, the lab's layout (state-dict names spp.spp.*)
        self.spp.add_module('spp_bn', NormReluConv(in_ch, bt_size, 1, norm))
        for i in range(num_levels):
            self.spp.add_module(f'spp{i}', NormReluConv(bt_size, level_size, 1, norm))
        self.spp.add_module('spp_fuse', NormReluConv(bt_size + num_levels * level_size, out_size, 1, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        aspect = size[1] / size[0]
        x = self.spp[0](x)
        levels = [x]
        for i, rows in enumerate(self.grids):
            pooled = F.adaptive_avg_pool2d(x, (rows, max(1, round(aspect * rows))))
            levels.append(upsample_to(self.spp[i + 1](pooled), size))
        return self.spp[-1](torch.cat(levels, 1))


class LadderUp(nn.Module):
    """SwiftNet ``_Upsample``: 1x1 on the skip, bilinear upsampling of ``x`` to it, sum, 3x3 blend."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, k: int = 3, norm: bool = False):
        super().__init__()
        self.skip_conv = NormReluConv(skip_ch, in_ch, 1, norm)
        self.blend_conv = NormReluConv(in_ch, out_ch, k, norm)

    def forward(self, skip: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip_conv(skip)
        return self.blend_conv(upsample_to(x, skip.shape[-2:]) + skip)


class LadderDecoder(nn.Module):
    """Three ``LadderUp`` steps from stride 32 to stride 4: widths features[-2], features[-3], features[-4]."""

    def __init__(self, features: Sequence[int] = (16, 32, 64, 64), in_ch: int = 64, norm: bool = False):
        super().__init__()
        self.up1 = LadderUp(in_ch, features[-2], features[-2], norm=norm)
        self.up2 = LadderUp(features[-2], features[-3], features[-3], norm=norm)
        self.up3 = LadderUp(features[-3], features[-4], features[-4], norm=norm)

    def forward(self, x32: torch.Tensor, x16: torch.Tensor, x8: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        return self.up3(x4, self.up2(x8, self.up1(x16, x32)))

