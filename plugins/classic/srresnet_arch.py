"""SRResNet with the seed's InstanceNorm placements (seed 002, section "SRGAN系列"), registered in BasicSR.

SRResNet (Ledig et al., CVPR 2017) is the generator of SRGAN. The seed replaces its BatchNorm by InstanceNorm
and compares three placements of the norm layers (torchsummary tables of the seed, x4, 64 features, 16 blocks):

    placement                               norm_in_blocks  norm_after_trunk  parameters (x4)
    IN inside every block and after trunk   true            true              1,546,883
    no IN                                   false           false             1,542,659
    IN after the trunk only                 false           true              1,542,787

BasicSR's own ``MSRResNet`` (ESRGAN's authors) has no norm layers and adds a bicubic skip; this one follows
the seed's tables layer by layer instead (see ``SRResNetIN``).
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY


def _norm(num_feat: int, enabled: bool) -> nn.Module:
    """InstanceNorm2d with a learnable affine transform (128 parameters for 64 features), or nothing."""
    return nn.InstanceNorm2d(num_feat, affine=True) if enabled else nn.Identity()


class ResidualBlockIN(nn.Module):
    """conv3x3 (no bias) -> [IN] -> LeakyReLU -> conv3x3 (no bias) -> [IN], plus the identity skip.

    The convolutions have no bias even without IN, as in the seed's tables (36,864 parameters each).

    Args:
        num_feat (int): Channels in and out.
        norm (bool): Whether to put an affine InstanceNorm2d after each convolution.
        negative_slope (float): Slope of the LeakyReLU for negative inputs.
    """

    def __init__(self, num_feat: int, norm: bool, negative_slope: float):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False)
        self.norm1 = _norm(num_feat, norm)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=False)
        self.norm2 = _norm(num_feat, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


@ARCH_REGISTRY.register()
class SRResNetIN(nn.Module):
    """SRResNet of seed 002 with switchable InstanceNorm placements.

    Layers (the seed's torchsummary order)::

        conv9x9 (bias) -> LeakyReLU                                             head, output f
        num_block x ResidualBlockIN                                             trunk
        conv3x3 (bias) -> [IN if norm_after_trunk], then + f                    long skip
        per x2 stage: conv3x3 (no bias, C -> 4C) -> PixelShuffle(2) -> LeakyReLU
        (x3: one conv3x3 C -> 9C -> PixelShuffle(3) -> LeakyReLU)
        conv9x9 (bias) -> output                                                no activation, no bicubic skip

    PyTorch's default initialisation is kept (the seed's); the seed does not state the LeakyReLU slope, its
    tables only name the layer, so ``negative_slope`` defaults to 0.2 (SRGAN's discriminator and ESRGAN's).

    Args:
        num_in_ch (int): Input channels. Default: 3 (RGB).
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Feature channels of the trunk. Default: 64.
        num_block (int): Number of residual blocks. Default: 16.
        upscale (int): 2, 4 or 8 (one x2 PixelShuffle stage each), or 3 (one x3 stage). Default: 4.
        norm_in_blocks (bool): Affine InstanceNorm2d after both convolutions of every block. Default: True.
        norm_after_trunk (bool): Affine InstanceNorm2d after the convolution that closes the trunk. Default: True.
        negative_slope (float): LeakyReLU slope for negative inputs. Default: 0.2.

    Shapes:
        input ``(N, num_in_ch, h, w)``, an LR image in [0, 1]; output ``(N, num_out_ch, h * upscale, w * upscale)``,
        not clamped (BasicSR clamps when converting to an image). With InstanceNorm, ``h`` and ``w`` must be
        at least 2 (IN needs more than one value per channel).
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 64,
                 num_block: int = 16,
                 upscale: int = 4,
                 norm_in_blocks: bool = True,
                 norm_after_trunk: bool = True,
                 negative_slope: float = 0.2):
        super().__init__()
        upscale = int(upscale)
        if upscale == 3:
            stages = [3]
        elif upscale >= 2 and upscale & (upscale - 1) == 0:
            stages = [2] * (upscale.bit_length() - 1)
        else:
            raise ValueError(f'SRResNetIN upscale must be 2, 3, 4 or 8, got {upscale}')
        if int(num_block) < 0:
            raise ValueError(f'SRResNetIN num_block must be >= 0, got {num_block}')
        self.upscale = upscale

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 9, padding=4)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.body = nn.Sequential(
            *[ResidualBlockIN(num_feat, norm_in_blocks, negative_slope) for _ in range(int(num_block))])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.norm_after_body = _norm(num_feat, norm_after_trunk)
        layers = []
        for s in stages:
            layers += [
                nn.Conv2d(num_feat, num_feat * s * s, 3, padding=1, bias=False),
                nn.PixelShuffle(s),
                nn.LeakyReLU(negative_slope, inplace=True)
            ]
        self.upsample = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.act(self.conv_first(x))
        out = self.norm_after_body(self.conv_after_body(self.body(feat))) + feat
        return self.conv_last(self.upsample(out))
