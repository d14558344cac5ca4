"""CMDSR networks: the ConditionNet (support set -> condition vector), the BaseNet (SRResNet-10 with modulated
residual convolutions) and ``CMDSR``, the two together, registered in BasicSR's ``ARCH_REGISTRY``.

Parameter counts in the paper's form (x4, 64 channels, 10 blocks, support 20), equal to the official code's:

    CMDSRBaseNet, modulated                1,202,627   (of which 20 modulations: 165,120)
    CMDSRBaseNet, plain                    1,037,507
    CMDSRConditionNet, stacked, support 20   292,992   (set form: 260,160, for any support size)
    CMDSR                                  1,495,619

Value range: the official code works on [0, 255] pixels with no mean shift; BasicSR's data are [0, 1]. Every
network here takes [0, 1] and multiplies by ``img_range`` (default 255) inside, so the official behaviour (and
the scale of the condition vectors) is kept while the rest of BasicSR sees [0, 1].
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

from .cmdsr_rrdb_arch import CMDSRRRDBNet
from .modulated_conv import ModulatedConv2d, Modulations, images_per_task

CONDITION_FORMS = ('stacked', 'set')


def upsample_stages(upscale: int, what: str) -> List[int]:
    """PixelShuffle factors for ``upscale``: x2/x4/x8 as x2 stages, x3 as one stage."""
    upscale = int(upscale)
    if upscale == 3:
        return [3]
    if upscale >= 2 and upscale & (upscale - 1) == 0:
        return [2] * int(math.log2(upscale))
    raise ValueError(f'{what}: upscale must be 2, 3, 4 or 8, got {upscale}')


def check_support(support: torch.Tensor, num_in_ch: int, what: str) -> None:
    """Raise ``ValueError`` unless ``support`` is a ``(T, S, C, h, w)`` support batch with C = ``num_in_ch``."""
    if support.dim() != 5:
        raise ValueError(f'{what}: the support set must be (tasks, support size, channels, h, w), '
                         f'got shape {tuple(support.shape)}')
    if support.shape[2] != num_in_ch:
        raise ValueError(f'{what}: support images have {support.shape[2]} channels, the network takes {num_in_ch}')
    if min(support.shape[-2:]) < 2:
        raise ValueError(f'{what}: support patches must be at least 2x2 pixels, got {tuple(support.shape[-2:])}')


@ARCH_REGISTRY.register()
class CMDSRConditionNet(nn.Module):
    """ConditionNet: a support set of LR patches sharing one degradation -> one condition vector per task.

    VGG19's prefix up to conv2_2 (the official ``conv_index='22'``), no batch norm::

        conv3x3(in -> 64) ReLU conv3x3(64 -> 64) ReLU AvgPool2 conv3x3(64 -> 128) ReLU conv3x3(128 -> 128) ReLU
        global average pooling -> (T, 128, 1, 1)

    Forms (``form``):
        'stacked': the paper's; the support patches are stacked on the channel axis, so the first convolution
            takes ``support_size * num_in_ch`` channels and the support size is fixed when built.
        'set': every support patch is encoded on its own (first convolution ``num_in_ch -> 64``) and the
            features are averaged over the set, so any support size works at inference.

    The official code pools with ``avg_pool2d(kernel_size=h, stride=w)``, wrong for non-square patches with
    w < h; here the global average is taken over both axes, so any patch shape works. Convolutions start with
    Kaiming-normal weights x 0.1 and zero biases (the official ``initialize_weights(..., 0.1)``).

    Args:
        num_in_ch (int): Channels of one support image. Default: 3.
        support_size (int): Support images per task ('stacked' only; ignored by 'set'). Default: 20.
        form (str): 'stacked' or 'set'. Default: 'stacked'.
        num_feat (int): Channels of the first two convolutions. Default: 64.
        cond_dim (int): Length of the condition vector (channels of the last two). Default: 128.
        img_range (float): The support images in [0, 1] are multiplied by this first. Default: 255.

    Shapes:
        support ``(T, S, num_in_ch, h, w)`` in [0, 1] (T tasks, S support images each; h, w >= 2) ->
        ``(T, cond_dim, 1, 1)``.
    """

    def __init__(self, num_in_ch: int = 3, support_size: int = 20, form: str = 'stacked', num_feat: int = 64,
                 cond_dim: int = 128, img_range: float = 255.):
        super().__init__()
        if form not in CONDITION_FORMS:
            raise ValueError(f'CMDSRConditionNet: form must be one of {CONDITION_FORMS}, got {form!r}')
        if form == 'stacked' and (not isinstance(support_size, int) or support_size < 1):
            raise ValueError(f'CMDSRConditionNet: support_size must be a positive integer, got {support_size!r}')
        self.num_in_ch, self.form, self.cond_dim, self.img_range = num_in_ch, form, cond_dim, float(img_range)
        self.support_size = support_size if form == 'stacked' else None
        first_in = num_in_ch * support_size if form == 'stacked' else num_in_ch
        self.body = nn.Sequential(
            nn.Conv2d(first_in, num_feat, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(inplace=True),
            nn.AvgPool2d(2, 2),
            nn.Conv2d(num_feat, cond_dim, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(cond_dim, cond_dim, 3, padding=1), nn.ReLU(inplace=True))
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode='fan_in')
                m.weight.data.mul_(0.1)
                m.bias.data.zero_()

    def forward(self, support: torch.Tensor) -> torch.Tensor:
        check_support(support, self.num_in_ch, type(self).__name__)
        t, s, c, h, w = support.shape
        support = support * self.img_range
        if self.form == 'stacked':
            if s != self.support_size:
                raise ValueError(f'{type(self).__name__}: built for support size {self.support_size} (stacked form, '
                                 f'the support images are stacked on the channel axis), got {s} support images; '
                                 "give exactly that many, or use form: set for any support size")
            feat = self.body(support.reshape(t, s * c, h, w))
            return feat.mean(dim=(2, 3), keepdim=True)
        feat = self.body(support.reshape(t * s, c, h, w)).mean(dim=(2, 3))  # (T * S, cond_dim)
        return feat.reshape(t, s, -1).mean(dim=1)[..., None, None]


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, both modulated, plus the identity skip (``res * res_scale + x``)."""

    def __init__(self, num_feat: int, res_scale: float, official_bias: bool = False):
        super().__init__()
        self.conv1 = ModulatedConv2d(num_feat, num_feat, 3, padding=1, equalized=True, official_bias=official_bias)
        self.conv2 = ModulatedConv2d(num_feat, num_feat, 3, padding=1, equalized=True, official_bias=official_bias)
        self.act = nn.ReLU(inplace=True)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor, mods: Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x, mods[0])), mods[1]) * self.res_scale


@ARCH_REGISTRY.register()
class CMDSRBaseNet(nn.Module):
    """CMDSR's BaseNet, the official ``SRResNet_10``, with optional modulation of its residual convolutions.

    Layers (all convolutions equalised-LR ``ModulatedConv2d``, 3x3, with bias)::

        input conv (in -> F)
        num_block x ResBlock (conv, ReLU, conv; both modulated when ``modulated``)
        + the input conv's output (global skip, x res_scale on the trunk)
        upsampler: per x2 stage conv(F -> 4F) + PixelShuffle(2); x3: conv(F -> 9F) + PixelShuffle(3); no activation
        output conv (F -> out)

    The official ``initialize_weights(..., 0.1)`` calls skip ``BaseConv2d`` (it is not an ``nn.Conv2d``), so its
    convolutions really start at N(0, 1) x the equalised scale; kept here, and ``res_init_scale`` < 1 multiplies
    the residual convolutions' initial weights (the official code's apparent intent) when wanted.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_out_ch (int): Output channels. Default: 3.
        num_feat (int): Feature channels. Default: 64.
        num_block (int): Residual blocks. Default: 10.
        upscale (int): 2, 3, 4 or 8. Default: 4.
        res_scale (float): Scale of the residual branches and of the trunk (official ``residual_lr``). Default: 1.
        modulated (bool): Hold ``Modulations`` for the 2 * num_block residual convolutions (the official code
            keeps them inside the BaseNet, so the BaseNet optimizer trains them). Default: True.
        cond_dim (int): Length of the condition vector. Default: 128.
        img_range (float): Input [0, 1] is multiplied by this, the output divided by it. Default: 255.
        res_init_scale (float): Multiplier of the residual convolutions' initial weights. Default: 1 (official).
        official_bias (bool): The official code's bias bug in the modulated convolutions (image ``b`` of a batch
            of B, channel ``o`` gets ``bias[(b * F + o) // B]``; ``modulated_conv.official_bias_map``), so that
            converted official weights (``tools/convert_checkpoint.py --from cmdsr``) give the official outputs
            for any batch. Default: False (our fix, ``bias[o]``; the same for B = 1).

    Shapes:
        x ``(B, num_in_ch, h, w)`` in [0, 1]; condition ``(T, cond_dim, 1, 1)`` or None, with B a multiple of T
        and the batch grouped by task (T = 1: one condition for all images). Output
        ``(B, num_out_ch, h * upscale, w * upscale)``, not clamped. A modulated net given no condition runs
        unmodulated (as a plain BaseNet with the same weights).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 10,
                 upscale: int = 4, res_scale: float = 1., modulated: bool = True, cond_dim: int = 128,
                 img_range: float = 255., res_init_scale: float = 1., official_bias: bool = False):
        super().__init__()
        stages = upsample_stages(upscale, type(self).__name__)
        self.upscale, self.img_range, self.res_scale = int(upscale), float(img_range), float(res_scale)
        self.input_conv = ModulatedConv2d(num_in_ch, num_feat, 3, padding=1, equalized=True)
        self.backbone = nn.ModuleList(ResBlock(num_feat, res_scale, official_bias) for _ in range(int(num_block)))
        layers = []
        for s in stages:
            layers += [ModulatedConv2d(num_feat, num_feat * s * s, 3, padding=1, equalized=True), nn.PixelShuffle(s)]
        self.upsampler = nn.Sequential(*layers)
        self.output_conv = ModulatedConv2d(num_feat, num_out_ch, 3, padding=1, equalized=True)
        if res_init_scale != 1:
            with torch.no_grad():
                for block in self.backbone:
                    block.conv1.weight.mul_(res_init_scale)
                    block.conv2.weight.mul_(res_init_scale)
        self.modulations = Modulations([num_feat] * 2 * int(num_block), cond_dim) if modulated else None

    def forward(self, x: torch.Tensor, condition: Optional[torch.Tensor] = None) -> torch.Tensor:
        mods = [None] * (2 * len(self.backbone))
        if self.modulations is not None and condition is not None:
            mods = self.modulations(condition, images_per_task(x.shape[0], condition.shape[0]))
        feat = self.input_conv(x * self.img_range)
        out = feat
        for i, block in enumerate(self.backbone):
            out = block(out, mods[2 * i:2 * i + 2])
        out = out * self.res_scale + feat
        return self.output_conv(self.upsampler(out)) / self.img_range


def build_sr_net(base: str, **kwargs) -> nn.Module:
    """The BaseNet named by ``base`` ('srresnet': ``CMDSRBaseNet``; 'rrdb': ``CMDSRRRDBNet``)."""
    nets = {'srresnet': CMDSRBaseNet, 'rrdb': CMDSRRRDBNet}
    if base not in nets:
        raise ValueError(f'CMDSR: base must be one of {sorted(nets)}, got {base!r}')
    return nets[base](**kwargs)


@ARCH_REGISTRY.register()
class CMDSR(nn.Module):
    """CMDSR: ``condition_net`` (support set -> condition) modulating ``sr_net`` (the BaseNet).

    Args:
        base (str): 'srresnet' (the paper's BaseNet, ``CMDSRBaseNet``) or 'rrdb' (Real-ESRGAN's generator,
            ``CMDSRRRDBNet``). Default: 'srresnet'.
        condition (str): ConditionNet form, 'stacked' (the paper's) or 'set'. Default: 'stacked'.
        support_size (int): Support images per task of the stacked ConditionNet. Default: 20.
        num_in_ch (int): Image channels (LR, support and output). Default: 3.
        cond_dim (int): Condition vector length. Default: 128.
        img_range (float): Internal pixel range of both nets (255: official; 1: Real-ESRGAN's). Default: 255.
        **sr_opt: The BaseNet's own arguments (upscale, num_feat, num_block, res_scale, num_grow_ch, ...;
            ``official_bias: true`` for converted official weights, see ``CMDSRBaseNet``).

    Shapes:
        x ``(B, C, h, w)`` in [0, 1], grouped by task; support ``(T, S, C, hs, ws)`` in [0, 1] with B a multiple
        of T -> ``(B, C, h * upscale, w * upscale)``.
    """

    def __init__(self, base: str = 'srresnet', condition: str = 'stacked', support_size: int = 20,
                 num_in_ch: int = 3, cond_dim: int = 128, img_range: float = 255., **sr_opt):
        super().__init__()
        self.num_in_ch = num_in_ch
        # sr_net first: its input convolution is then the first convolution of the network (what tools read as
        # the input channel count), not the ConditionNet's stacked one.
        self.sr_net = build_sr_net(base, num_in_ch=num_in_ch, num_out_ch=num_in_ch, modulated=True, cond_dim=cond_dim,
                                   img_range=img_range, **sr_opt)
        self.condition_net = CMDSRConditionNet(num_in_ch, support_size, condition, cond_dim=cond_dim,
                                               img_range=img_range)
        self.upscale = self.sr_net.upscale

    @property
    def support_size(self) -> Optional[int]:
        """Support images per task the network needs, or None for the set form (any number)."""
        return self.condition_net.support_size

    def forward(self, x: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        if support is None:
            raise ValueError('CMDSR needs a support set: LR patches with the same degradation as the input')
        return self.sr_net(x, self.condition_net(support))
