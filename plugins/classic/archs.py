"""Classic SR networks of seed 002, registered in BasicSR's ``ARCH_REGISTRY``.

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


@ARCH_REGISTRY.register()
class FSRCNN(nn.Module):
    """FSRCNN (Dong, Loy, Tang, ECCV 2016): feature extraction, shrinking, mapping, expanding, deconvolution.

    Two forms, chosen by ``form``:

    * ``'paper'``: the network works on the LR image and the final 9x9 deconvolution has stride ``upscale``.
    * ``'seed'``: the seed's same-size form (seed 002 trained on SRCNN's pre-upsampled data, so its
      ``ConvTranspose2d`` has no stride): the network bicubic-upsamples the LR input by ``upscale`` (torch's
      bicubic, as :class:`SRCNN`) and every layer keeps that size. With ``upscale=1`` the input must already be
      upsampled. The parameter count is the same as the paper's form.

    The seed's variants are options: widened (``d=64, s=32``: 48,321 parameters for one channel) and
    normalised (``d=64, s=32, mapping_kernel=1, norm='instance'``: an affine InstanceNorm after each mapping
    convolution, before its PReLU: 15,809). The default (``d=56, s=12, m=4``) has 12,809.

    Args:
        num_in_ch (int): Input channels (1 = Y, as the paper and the seed). Default: 1.
        num_out_ch (int | None): Output channels. Default: None (= ``num_in_ch``).
        d (int): Feature channels after extraction and expanding. Default: 56.
        s (int): Channels after shrinking (the mapping width). Default: 12.
        m (int): Number of mapping convolutions. Default: 4.
        mapping_kernel (int): Kernel size of the mapping convolutions (3 in the paper). Default: 3.
        norm (str | None): None, or 'instance' for an affine InstanceNorm after each mapping conv. Default: None.
        upscale (int): Scale factor. Default: 2.
        form (str): 'paper' or 'seed', see above. Default: 'paper'.

    Shapes:
        input ``(N, num_in_ch, h, w)`` in [0, 1]; output ``(N, num_out_ch, h * upscale, w * upscale)``.
    """

    def __init__(self,
                 num_in_ch: int = 1,
                 num_out_ch: int = None,
                 d: int = 56,
                 s: int = 12,
                 m: int = 4,
                 mapping_kernel: int = 3,
                 norm: str = None,
                 upscale: int = 2,
                 form: str = 'paper'):
        super().__init__()
        if form not in ('paper', 'seed'):
            raise ValueError(f"FSRCNN form must be 'paper' or 'seed', got {form!r}")
        if norm not in (None, 'instance'):
            raise ValueError(f"FSRCNN norm must be None or 'instance', got {norm!r}")
        if mapping_kernel % 2 == 0 or int(upscale) < 1:
            raise ValueError(f'FSRCNN needs an odd mapping_kernel and upscale >= 1, got {mapping_kernel}, {upscale}')
        num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.upscale, self.form = int(upscale), form

        def conv_prelu(cin, cout, k, with_norm=False):
            layers = [nn.Conv2d(cin, cout, k, padding=k // 2)]
            if with_norm:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            return layers + [nn.PReLU(cout)]

        body = conv_prelu(num_in_ch, d, 5) + conv_prelu(d, s, 1)
        for _ in range(m):
            body += conv_prelu(s, s, mapping_kernel, with_norm=norm == 'instance')
        body += conv_prelu(s, d, 1)
        self.body = nn.Sequential(*body)
        stride = self.upscale if form == 'paper' else 1
        # padding 4 and output_padding stride-1 give exactly h * stride for the 9x9 deconvolution.
        self.deconv = nn.ConvTranspose2d(d, num_out_ch, 9, stride=stride, padding=4, output_padding=stride - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == 'seed' and self.upscale > 1:
            x = F.interpolate(x, scale_factor=self.upscale, mode='bicubic', align_corners=False)
        return self.deconv(self.body(x))
