"""FSRCNN of seed 002 (Dong, Loy, Tang, ECCV 2016), registered in BasicSR's ``ARCH_REGISTRY``: the paper's form and
the seed's same-size form, with the seed's widened and normalised variants as options."""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY


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
