"""The discriminator of the inpainting line: a multi-scale spectral-norm PatchGAN, as PD-GAN's (num_D 2,
n_layers_D 4, ndf 64, spectral norm). Our own because MMagic's ``SoftMaskPatchDiscriminator`` cannot be initialised
inside an mmengine model in mmagic 1.2.0 (``generation_init_weights`` raises UnboundLocalError on its activations).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS
from torch.nn.utils import spectral_norm


@MODELS.register_module()
class MultiScalePatchDiscriminator(nn.Module):
    """PatchGAN logits at ``num_scales`` scales (the input average-pooled by 2 between scales), flattened and
    concatenated so that MMagic's ``GANLoss`` (LSGAN, hinge, ...) averages over all patches of all scales.

    Each scale: ``num_layers`` x [conv4 stride 2 (the last stride 1) + LeakyReLU(0.2)], widths base_channels x
    1, 2, 4, 8 (capped), then conv4 -> 1. Spectral norm on every conv (PD-GAN's 'spectral' D norm).

    Args:
        in_channels: 3 (image) as MMagic's one-stage inpaintor feeds it.
        base_channels: ndf (64 in PD-GAN).
        num_layers: n_layers_D (4 in PD-GAN).
        num_scales: num_D (2 in PD-GAN).
    Input (N, C, H, W) in [-1, 1]; output (N, P) logits, P = patches over all scales.
    """

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
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outs.append(scale(x).flatten(1))
        return torch.cat(outs, dim=1)
