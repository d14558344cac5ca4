"""Generators: the seed's base encoder-decoder (norm choice, SimAM, self-attention) and PD-GAN's SPDNorm generator.

Images are (N, 3, H, W) in [-1, 1]; masks (N, 1, H, W) with 1 on holes.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS

from .inpaint_blocks import NORMS, ResBlock, SPDNormResBlock, make_norm, self_attention


@MODELS.register_module()
class InpaintEncoderDecoder(nn.Module):
    """The base inpainting generator: a convolutional encoder-decoder with dilated residual blocks. Our design: the
    seed's notes show only its results ("Base", with the norm, SimAM and loss rows as changes to it), not its layers.

    cat[masked image, mask] (N, 4, H, W) -> conv7 -> ``num_down`` stride-2 convs (channels x2 each) ->
    ``len(dilations)`` residual blocks (dilation d each, optional SimAM at the end of each branch) ->
    optional SAGAN self-attention -> ``num_down`` x (nearest x2 + conv3) -> conv7 -> tanh: (N, 3, H, W) in [-1, 1].
    H and W must be multiples of 2**num_down (2**(num_down+1) with self-attention).

    Args:
        in_channels: 4 (RGB masked image + mask, MMagic's one-stage input).
        base_channels: width after the first conv.
        num_down: number of downsamplings.
        dilations: one residual block per entry, with that dilation.
        norm: 'BN' | 'IN' | 'GN' | 'none' (the seed's ablation: BN base, GroupNorm row).
        gn_groups: GroupNorm groups (lowered to a divisor of each width).
        simam: SimAM in every residual block (the seed's attention row); simam_lambda its lambda;
            simam_position 'after_norm' (ours, the branch's end) or 'before_norm' (the SimAM reference's: after the
            last conv, before its norm), see :class:`~plugins.inpaint.inpaint_blocks.ResBlock`.
        self_attn: SAGAN self-attention after the residual blocks.
    """

    def __init__(self, in_channels: int = 4, out_channels: int = 3, base_channels: int = 32, num_down: int = 2,
                 dilations: Sequence[int] = (1, 2, 4, 8), norm: str = 'BN', gn_groups: int = 8,
                 simam: bool = False, simam_lambda: float = 1e-4, simam_position: str = 'after_norm',
                 self_attn: bool = False):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f'InpaintEncoderDecoder: norm={norm!r}, expected one of {NORMS}')

        def conv_norm_act(cin, cout, k, stride=1):
            return [nn.Conv2d(cin, cout, k, stride, padding=k // 2), make_norm(norm, cout, gn_groups),
                    nn.LeakyReLU(0.2, inplace=True)]

        ch = base_channels
        layers = conv_norm_act(in_channels, ch, 7)
        for _ in range(num_down):
            layers += conv_norm_act(ch, ch * 2, 3, stride=2)
            ch *= 2
        layers += [ResBlock(ch, d, norm, gn_groups, simam, simam_lambda, simam_position) for d in dilations]
        if self_attn:
            layers.append(self_attention(ch))
        for _ in range(num_down):
            layers += [nn.Upsample(scale_factor=2, mode='nearest')] + conv_norm_act(ch, ch // 2, 3)
            ch //= 2
        layers += [nn.Conv2d(ch, out_channels, 7, padding=3), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.multiple = 2 ** (num_down + int(self_attn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 4, H, W), cat[masked image in [-1, 1], mask]. Returns (N, 3, H, W) in [-1, 1]."""
        if x.shape[1] != self.in_channels or x.shape[2] % self.multiple or x.shape[3] % self.multiple:
            raise ValueError(f'InpaintEncoderDecoder: input {tuple(x.shape)}, expected (N, {self.in_channels}, H, W) '
                             f'with H and W multiples of {self.multiple}')
        return self.net(x)


# PD-GAN's SPDNormGenerator at 256x256, ngf=64: z_dim 256 -> fc -> 1024 x 4 x 4, then six units.
PDGAN_CHANNELS = (1024, 1024, 1024, 512, 256, 128, 64)
PDGAN_MASK_NUMBERS = (2, 3, 4, 5, 6, 7)
PDGAN_MASK_KERNELS = (3, 3, 3, 3, 5, 5)


@MODELS.register_module()
class SPDNormGenerator(nn.Module):
    """PD-GAN's generator: a noise vector, modulated by a prior image through SPDNorm, becomes a completion.

    z (N, z_dim) -> fc -> (N, channels[0], s, s), s = ``latent_size``; unit i = SPDNormResBlock(channels[i] ->
    channels[i+1], mask_numbers[i] rings, mask_kernels[i]) + ConvTranspose2d(4, 2, 1) (x2); then LeakyReLU(0.2),
    conv3 -> 3, tanh. The output size is s * 2**len(mask_numbers) (256 with PD-GAN's defaults, 64 with 4 units).

    Args:
        z_dim: noise size (256).
        latent_size: s (4).
        channels: widths, one more than the number of units (PD-GAN: 16,16,16,8,4,2,1 x ngf 64).
        mask_numbers, mask_kernels: per-unit hard-map rings and dilation step.
        hidden: SPDNorm embedding width (128).
        use_spectral_norm: spectral norm on the residual blocks' convs (PD-GAN: yes).
        self_attn_after: add a SAGAN self-attention after this unit (0-based); None for none. The seed's variant
            ("结合self-Attention GAN"); PD-GAN has none.
    """

    def __init__(self, z_dim: int = 256, latent_size: int = 4, channels: Sequence[int] = PDGAN_CHANNELS,
                 mask_numbers: Sequence[int] = PDGAN_MASK_NUMBERS, mask_kernels: Sequence[int] = PDGAN_MASK_KERNELS,
                 hidden: int = 128, use_spectral_norm: bool = True, self_attn_after: Optional[int] = None):
        super().__init__()
        if not len(channels) == len(mask_numbers) + 1 == len(mask_kernels) + 1:
            raise ValueError(f'SPDNormGenerator: channels needs one entry more than mask_numbers and mask_kernels, '
                             f'got {len(channels)}, {len(mask_numbers)}, {len(mask_kernels)}')
        self.z_dim, self.latent_size, self.c0 = z_dim, latent_size, channels[0]
        self.fc = nn.Linear(z_dim, channels[0] * latent_size * latent_size)
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for cin, cout, k, ks in zip(channels[:-1], channels[1:], mask_numbers, mask_kernels):
            self.blocks.append(SPDNormResBlock(cin, cout, k, ks, hidden, use_spectral_norm))
            self.ups.append(nn.ConvTranspose2d(cout, cout, 4, stride=2, padding=1))
        self.attn_index = self_attn_after
        self.attn = self_attention(channels[self_attn_after + 1]) if self_attn_after is not None else None
        self.conv_img = nn.Conv2d(channels[-1], 3, 3, padding=1)
        self.out_size = latent_size * 2 ** len(mask_numbers)

    def forward(self, z: torch.Tensor, prior: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z (N, z_dim); prior (N, 3, S, S) in [-1, 1]; mask (N, 1, S, S), 1 = hole; S = ``out_size``.
        Returns (N, 3, S, S) in [-1, 1] (the raw output: composite it with the known pixels)."""
        if z.shape[1:] != (self.z_dim,):
            raise ValueError(f'SPDNormGenerator: noise of shape {tuple(z.shape)}, expected (N, {self.z_dim})')
        if tuple(prior.shape[2:]) != (self.out_size, self.out_size) or mask.shape[2:] != prior.shape[2:]:
            raise ValueError(f'SPDNormGenerator: prior {tuple(prior.shape)} and mask {tuple(mask.shape)} must be '
                             f'{self.out_size}x{self.out_size} (latent_size * 2**units)')
        out = self.fc(z).view(-1, self.c0, self.latent_size, self.latent_size)
        for i, (block, up) in enumerate(zip(self.blocks, self.ups)):
            out = up(block(out, prior, mask))
            if i == self.attn_index:
                out = self.attn(out)
        return torch.tanh(self.conv_img(F.leaky_relu(out, 0.2)))
