"""Building blocks of the inpainting generators: SimAM, the norm choice, residual blocks, and PD-GAN's SPDNorm.

Mask convention everywhere in this package: ``mask`` is (N, 1, H, W) float with **1 on holes** and 0 on known
pixels (MMagic's). SPDNorm works internally with ``known = 1 - mask`` as PD-GAN does.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

NORMS = ('BN', 'IN', 'GN', 'none')


def make_norm(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """The normalization layer of the base generator: 'BN' (BatchNorm2d), 'IN' (InstanceNorm2d, affine),
    'GN' (GroupNorm with ``groups`` groups, lowered to a divisor of ``channels``) or 'none'."""
    if kind == 'BN':
        return nn.BatchNorm2d(channels)
    if kind == 'IN':
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == 'GN':
        groups = math.gcd(groups, channels)
        return nn.GroupNorm(groups, channels)
    if kind == 'none':
        return nn.Identity()
    raise ValueError(f'norm={kind!r}: expected one of {NORMS}')


class SimAM(nn.Module):
    """SimAM, the parameter-free attention of Yang et al. (ICML 2021).

    For each channel, with n = H*W - 1, d = (x - mean_HW(x))^2 and the energy
    y = d / (4 * (sum_HW(d) / n + lambda)) + 0.5, the output is x * sigmoid(y).
    Shape-preserving on (N, C, H, W); no parameters.

    Args:
        lam: the regulariser lambda (1e-4 in the paper's CIFAR runs).
    """

    def __init__(self, lam: float = 1e-4):
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        energy = d / (4 * (d.sum(dim=(2, 3), keepdim=True) / n + self.lam)) + 0.5
        return x * torch.sigmoid(energy)

    def extra_repr(self) -> str:
        return f'lam={self.lam}'


SIMAM_POSITIONS = ('after_norm', 'before_norm')


class ResBlock(nn.Module):
    """conv3 (dilation d) - norm - LeakyReLU(0.2) - conv3 - norm, plus the identity. (N, C, H, W) in/out.

    With ``simam``, SimAM sits at the end of the branch, after the second norm (``simam_position='after_norm'``,
    our placement, the one the seed's SimAM row was trained with here), or between the second conv and its norm
    (``'before_norm'``, where the SimAM reference puts it in its ResNet blocks: ZjjConan/SimAM
    networks/cifar/block.py wraps ``conv2`` as Sequential(conv2, simam) ahead of ``bn2``).
    """

    def __init__(self, channels: int, dilation: int = 1, norm: str = 'BN', gn_groups: int = 8, simam: bool = False,
                 simam_lambda: float = 1e-4, simam_position: str = 'after_norm'):
        super().__init__()
        if simam_position not in SIMAM_POSITIONS:
            raise ValueError(f'simam_position={simam_position!r}: expected one of {SIMAM_POSITIONS}')
        attn = SimAM(simam_lambda) if simam else nn.Identity()
        tail = [make_norm(norm, channels, gn_groups), attn]  # body.4 is the norm, as in checkpoints before the option
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation),
            make_norm(norm, channels, gn_groups),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            *(tail[::-1] if simam_position == 'before_norm' else tail))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# ----------------------------------------------------------------------------------------------------------------
# SPDNorm (PD-GAN, Liu et al. CVPR 2021)
# ----------------------------------------------------------------------------------------------------------------
def positional_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Positional normalization: zero mean, unit variance over the channels at each pixel (N, C, H, W)."""
    mean = x.mean(dim=1, keepdim=True)
    std = x.var(dim=1, keepdim=True).add(eps).sqrt()
    return (x - mean) / std


def dilate(known: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Grow the known region (1) of a binary map by one ``kernel_size`` x ``kernel_size`` step.

    A max-pool is the binarised all-ones convolution of PD-GAN's ``MaskGet`` (zero padding: the image border
    does not count as known)."""
    return F.max_pool2d(known, kernel_size, stride=1, padding=kernel_size // 2)


@torch.no_grad()
def hard_spd_map(mask: torch.Tensor, mask_number: int, kernel_size: int = 3) -> torch.Tensor:
    """PD-GAN's hard probabilistic diversity map from a hole mask alone.

    With M_0 = 1 - mask (known pixels) and M_i the known region dilated i times:
    P = M_0 + sum_{i=1..K} (M_i - M_{i-1}) * e^-i + (1 - M_K) * e^-K.
    Known pixels get 1, the i-th ring inside the hole boundary e^-i, the rest of the hole e^-K.

    Args:
        mask: (N, 1, H, W), 1 on holes, 0 on known pixels.
        mask_number: K, the number of rings.
        kernel_size: the dilation step (3 or 5 in PD-GAN).
    Returns:
        (N, 1, H, W) in [e^-K, 1].
    """
    known = 1. - mask
    prev, out = known, known.clone()
    for i in range(1, mask_number + 1):
        grown = dilate(prev, kernel_size)
        out = out + (grown - prev) * math.exp(-i)
        prev = grown
    return out + (1. - prev) * math.exp(-mask_number)


class SPDNorm(nn.Module):
    """Spatially probabilistic diversity normalization.

    out = posnorm(x) * (1 + gamma(prior) * P) + beta(prior) * P, where gamma/beta come from the prior image through
    conv3(3 -> hidden)-ReLU-conv3(hidden -> C) and P is the (hard or soft) probability map.

    Args:
        channels: C of the normalised feature.
        hidden: width of the prior embedding (128 in PD-GAN).
        prior_channels: channels of the prior image (3).
    """

    def __init__(self, channels: int, hidden: int = 128, prior_channels: int = 3):
        super().__init__()
        self.shared = nn.Sequential(nn.Conv2d(prior_channels, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, prior: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W); prior (N, 3, H, W) resized to x; prob (N, 1, H, W)."""
        act = self.shared(prior)
        return positional_norm(x) * (1 + self.gamma(act) * prob) + self.beta(act) * prob


class SPDNormResBlock(nn.Module):
    """PD-GAN's SPDNorm residual block.

    out = conv_s(SPDNorm_soft(x)) + conv_1(LReLU(SPDNorm_hard(conv_0(LReLU(SPDNorm_hard(x))))))

    The hard map comes from the mask (:func:`hard_spd_map`); the soft map is
    sigmoid(conv3(cat[prior_to_feature(prior), x])) in the hole and 1 on known pixels.

    Args:
        fin, fout: input / output channels (the middle is min(fin, fout)).
        mask_number: K rings of the hard map; mask_kernel: its dilation step.
        hidden: SPDNorm embedding width (128 in PD-GAN).
        use_spectral_norm: spectral norm on conv_0, conv_1, conv_s (PD-GAN's norm_G='spectral...').
    """

    def __init__(self, fin: int, fout: int, mask_number: int, mask_kernel: int = 3, hidden: int = 128,
                 use_spectral_norm: bool = True, prior_channels: int = 3):
        super().__init__()
        fmid = min(fin, fout)
        sn = spectral_norm if use_spectral_norm else (lambda m: m)
        self.conv_0 = sn(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(fmid, fout, 3, padding=1))
        self.conv_s = sn(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = SPDNorm(fin, hidden, prior_channels)
        self.norm_1 = SPDNorm(fmid, hidden, prior_channels)
        self.norm_s = SPDNorm(fin, hidden, prior_channels)
        self.mask_number, self.mask_kernel = mask_number, mask_kernel
        self.prior_to_feature = nn.Sequential(
            nn.Conv2d(prior_channels, hidden, 3, padding=1), nn.InstanceNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, fin, 3, padding=1))
        self.soft_conv = nn.Conv2d(2 * fin, fin, 3, padding=1)

    def soft_map(self, x: torch.Tensor, prior: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in (0, 1] on the hole, exactly 1 on known pixels (prior, mask already resized to x)."""
        soft = torch.sigmoid(self.soft_conv(torch.cat([self.prior_to_feature(prior), x], 1)))
        known = 1. - mask
        return mask * soft + known

    def forward(self, x: torch.Tensor, prior: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (N, fin, h, w); prior (N, 3, H, W) in [-1, 1]; mask (N, 1, H, W), 1 = hole. Returns (N, fout, h, w)."""
        prior = F.interpolate(prior, size=x.shape[2:], mode='nearest')
        mask = F.interpolate(mask, size=x.shape[2:], mode='nearest')
        hard = hard_spd_map(mask, self.mask_number, self.mask_kernel)
        soft_out = self.conv_s(self.norm_s(x, prior, self.soft_map(x, prior, mask)))
        hard_out = self.conv_0(F.leaky_relu(self.norm_0(x, prior, hard), 0.2))
        hard_out = self.conv_1(F.leaky_relu(self.norm_1(hard_out, prior, hard), 0.2))
        return soft_out + hard_out


def self_attention(channels: int, use_spectral_norm: bool = False) -> Optional[nn.Module]:
    """SAGAN self-attention (MMagic's BigGAN ``SelfAttentionBlock``: 1x1 theta/phi/g, softmax over positions,
    learned gate initialised at 0). Needs even H and W (phi and g are max-pooled by 2)."""
    from mmagic.models.editors.biggan.biggan_modules import SelfAttentionBlock
    return SelfAttentionBlock(channels, with_spectral_norm=use_spectral_norm, sn_style='torch')
