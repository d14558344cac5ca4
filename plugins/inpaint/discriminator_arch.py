"""Discriminators of the inpainting line.

``MultiScalePatchDiscriminator`` is our own design (the seed names no discriminator): PD-GAN's multi-scale layout
(num_D scales, n_layers_D convs, ndf widths) on the image alone, spectral norm on every conv and no normalization
layer, one flattened tensor of patch logits. ``PDGANDiscriminator`` is PD-GAN's (KumapowerLIU/PD-GAN,
models/network/Discriminator.py with norm_D='spectralinstance', input_nc_D 6): mask and image concatenated,
spectral norm + InstanceNorm on the middle convs only, every layer's features returned for the feature-matching
loss. Both are ours because MMagic's ``SoftMaskPatchDiscriminator`` cannot be initialised inside an mmengine model in
mmagic 1.2.0 (``generation_init_weights`` raises UnboundLocalError on its activations).
"""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS
from torch.nn.utils import spectral_norm


def downsample(x: torch.Tensor) -> torch.Tensor:
    """The input of the next scale: 3x3 average pooling with stride 2 (PD-GAN's, padding not counted)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


@MODELS.register_module()
class MultiScalePatchDiscriminator(nn.Module):
    """Our PatchGAN: logits at ``num_scales`` scales (the input average-pooled by 2 between scales), flattened and
    concatenated so that MMagic's ``GANLoss`` (LSGAN, hinge, ...) averages over all patches of all scales.

    Each scale: ``num_layers`` x [conv4 stride 2 (the last stride 1) + LeakyReLU(0.2)], widths base_channels x
    1, 2, 4, 8 (capped), then conv4 -> 1. Spectral norm on every conv, no normalization layer. Not PD-GAN's
    discriminator (that is :class:`PDGANDiscriminator`): PD-GAN sees the mask too (6 input channels), puts spectral
    norm + InstanceNorm on the middle convs only, and averages its loss per scale; here the larger scale, having more
    patches, weighs more.

    Args:
        in_channels: 3 (image) as MMagic's one-stage inpaintor feeds it.
        base_channels: widths of the first conv.
        num_layers: stride-2/1 convs before the logits.
        num_scales: scales.
    Input (N, C, H, W) in [-1, 1]; output (N, P) logits, P = patches over all scales.
    """

    takes_mask = False

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_layers: int = 4, num_scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(self._one_scale(in_channels, base_channels, num_layers)
                                    for _ in range(num_scales))

    @staticmethod
    def _one_scale(cin: int, ndf: int, num_layers: int) -> nn.Sequential:
        layers, ch = [], cin
        for i in range(num_layers):
            cout = ndf * min(2 ** i, 8)
            stride = 1 if i == num_layers - 1 else 2
            layers += [spectral_norm(nn.Conv2d(ch, cout, 4, stride, padding=2)), nn.LeakyReLU(0.2, inplace=True)]
            ch = cout
        layers.append(spectral_norm(nn.Conv2d(ch, 1, 4, 1, padding=2)))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = downsample(x)
            outs.append(scale(x).flatten(1))
        return torch.cat(outs, dim=1)


@MODELS.register_module()
class PDGANDiscriminator(nn.Module):
    """PD-GAN's multi-scale discriminator, on cat[mask, image] (the mask repeated to ``mask_channels``).

    Each scale (the input average-pooled by 2 between scales, :func:`downsample`) is a PatchGAN of ``num_layers`` + 1
    layers, each a conv4 (padding 2):
      layer 0: in_channels -> base_channels, stride 2, no normalization, LeakyReLU(0.2);
      layers 1 .. num_layers-1: width x2 (at most 512), stride 2 (the last stride 1), spectral norm, no bias,
        InstanceNorm (no affine parameters) when ``norm='IN'``, LeakyReLU(0.2);
      last layer: -> 1 channel of logits, stride 1, no normalization.
    PD-GAN's settings: num_D 2 = ``num_scales``, n_layers_D 4 = ``num_layers``, ndf 64 = ``base_channels``,
    norm_D 'spectralinstance', input_nc_D 6 (3 mask channels, 1 = hole, then the RGB image).

    Args:
        img_channels, mask_channels: the input is (N, img_channels + mask_channels, H, W).
        base_channels, num_layers, num_scales: as above.
        norm: 'IN' (PD-GAN's) or 'none' (spectral norm alone on the middle layers).
    Input: img (N, 3, H, W) in [-1, 1], mask (N, 1, H, W) with 1 on holes. Output: one list per scale of the
    ``num_layers`` + 1 layer outputs, (N, C_l, h_l, w_l) each; the last of each list is the patch logits
    (N, 1, h, w). Use the last entries for the GAN loss and the others for the feature-matching loss
    (:class:`~plugins.inpaint.inpaint_loss.DiscFeatureMatchingLoss`).
    """

    takes_mask = True

    def __init__(self, img_channels: int = 3, mask_channels: int = 3, base_channels: int = 64, num_layers: int = 4,
                 num_scales: int = 2, norm: str = 'IN'):
        super().__init__()
        if norm not in ('IN', 'none'):
            raise ValueError(f"PDGANDiscriminator: norm={norm!r}, expected 'IN' or 'none'")
        if num_layers < 1 or num_scales < 1:
            raise ValueError(f'PDGANDiscriminator: num_layers={num_layers}, num_scales={num_scales}: both must be >= 1')
        self.img_channels, self.mask_channels = img_channels, mask_channels
        self.scales = nn.ModuleList(
            self._one_scale(img_channels + mask_channels, base_channels, num_layers, norm) for _ in range(num_scales))

    @staticmethod
    def _one_scale(cin: int, ndf: int, num_layers: int, norm: str) -> nn.ModuleList:
        layers = [nn.Sequential(nn.Conv2d(cin, ndf, 4, 2, padding=2), nn.LeakyReLU(0.2))]
        ch = ndf
        for i in range(1, num_layers):
            cout = min(ch * 2, 512)
            stride = 1 if i == num_layers - 1 else 2
            block = [spectral_norm(nn.Conv2d(ch, cout, 4, stride, padding=2, bias=False))]
            if norm == 'IN':
                block.append(nn.InstanceNorm2d(cout, affine=False))
            layers.append(nn.Sequential(*block, nn.LeakyReLU(0.2)))
            ch = cout
        layers.append(nn.Conv2d(ch, 1, 4, 1, padding=2))
        return nn.ModuleList(layers)

    def forward(self, img: torch.Tensor, mask: Optional[torch.Tensor] = None) -> List[List[torch.Tensor]]:
        if mask is None or img.shape[1] != self.img_channels or mask.shape[1] != 1 or \
                mask.shape[0] != img.shape[0] or mask.shape[2:] != img.shape[2:]:
            raise ValueError(f'PDGANDiscriminator: expected an image (N, {self.img_channels}, H, W) and its mask '
                             f'(N, 1, H, W), got {tuple(img.shape)} and '
                             f'{None if mask is None else tuple(mask.shape)}')
        x = torch.cat([mask.expand(-1, self.mask_channels, -1, -1).to(img.dtype), img], dim=1)
        outs = []
        for i, scale in enumerate(self.scales):
            if i:
                x = downsample(x)
            feats, h = [], x
            for layer in scale:
                h = layer(h)
                feats.append(h)
            outs.append(feats)
        return outs
