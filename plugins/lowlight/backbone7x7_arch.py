"""The lab's real-time low-light enhancers (seed 000): Backbone7x7 and the two Gen_Y variants.

Every network takes ``(N, 4, H, W)``: RGB in [0, 1] and a brightness plane (see plugins/lowlight/brightness.py),
and returns the enhanced RGB ``(N, 3, H, W)`` (unclamped; [0, 1] when trained). Inside, the RGB is normalised with
the LOL low-light statistics (the lab normalised in its data loader) and the input is reflect-padded at the
bottom/right to a multiple of ``divisor`` (the lab padded its evaluation images to 16 in the loader); the output is
cropped back, so any size from ``min_size`` up works.

Layer-by-layer the modules follow zhilin007/LightEnhancement ``net/models/Defined_Network/`` (state-dict names
included), with the parameter counts of the lab's final code: Backbone7x7 427,556 (427,540 with the RGB-only
guidance map of SwiftNetSlim_GFLAndMap_BN2), Gen_Y_Backbone7x7 853,458, Gen_Y_Backbone7x7_Share 494,981.
"""
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

from .swiftnet_blocks import LadderDecoder, NormReluConv, SlimResNet18, SpatialPyramidPooling
from .guided_fast_path import guided_output
from .guided_filter import AdaptiveNorm, ConvGuidedFilter, run_folded

LOL_LOW_MEAN = (0.0629, 0.0606, 0.0558)  # mean / std of LOL's low-light images (the lab's data_utils.py)
LOL_LOW_STD = (0.0430, 0.0412, 0.0425)


class GuidedMap(nn.Sequential):
    """The learned guidance map: Conv1x1(in -> 16, no bias), AdaptiveNorm, ReLU, Conv1x1(16 -> 3).

    (The lab's change to DGF: ReLU instead of LeakyReLU.) In eval mode AdaptiveNorm is an affine map per channel
    and is folded into the first conv, so the full-resolution pass is two 1x1 convs and a ReLU.
    """

    def __init__(self, in_ch: int, hidden: int = 16, out_ch: int = 3):
        super().__init__(nn.Conv2d(in_ch, hidden, 1, bias=False), AdaptiveNorm(hidden), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, out_ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if self.training else run_folded(self, x)

    def folded(self):
        """Eval-mode weights as matrices ``(w1 (16, in), c1 (16, 1), w2 (3, 16), c2 (3, 1))``."""
        scale, shift = self[1].affine()
        return (self[0].weight.flatten(1) * scale[:, None], shift[:, None], self[3].weight.flatten(1),
                self[3].bias[:, None])


class _EnhanceCore(nn.Module):
    """Encoder + SPP + ladder decoder + 1x1 post to 3 channels at 1/4 resolution, then the ConvGuidedFilter
    restores full resolution guided by ``guided_map`` of the input (the lab's Backbone7x7 / Gen_O).

    forward: normalised, padded ``(N, in_ch, H, W)`` (H, W multiples of 4), and the output size ``out_hw``
    (default H, W) -> ``(out_x4 (N, 3, H/4, W/4), out (N, 3, *out_hw))``. In eval mode without autograd the
    full-resolution tail runs row block by row block (plugins/lowlight/guided_fast_path.py).
    """

    def __init__(self, in_ch: int = 4, out_ch: int = 3, features: Sequence[int] = (16, 32, 64, 64),
                 spp_dim: int = 64, norm: bool = True, guide_rgb_only: bool = False):
        super().__init__()
        self.guide_rgb_only = guide_rgb_only
        self.encoder = SlimResNet18(in_ch, features, norm)
        self.spp = SpatialPyramidPooling(features[-1], out_size=spp_dim, norm=norm)
        self.decoder = LadderDecoder(features, spp_dim, norm)
        self.post = NormReluConv(features[0], out_ch, 1, norm)
        self.filter = ConvGuidedFilter(1, channels=out_ch, norm=AdaptiveNorm)
        self.guided_map = GuidedMap(3 if guide_rgb_only else in_ch, 16, out_ch)

    def forward(self, x: torch.Tensor, out_hw=None):
        x4, x8, x16, x32 = self.encoder(x)
        out_x4 = self.post(self.decoder(self.spp(x32), x16, x8, x4))
        guide = x[:, :3] if self.guide_rgb_only else x
        guide_lr = F.interpolate(guide, out_x4.shape[-2:], mode='bilinear', align_corners=False)
        out_hw = tuple(out_hw or x.shape[-2:])
        if self.training or torch.is_grad_enabled():
            out = self.filter(self.guided_map(guide_lr), out_x4, self.guided_map(guide))
            return out_x4, out[..., :out_hw[0], :out_hw[1]]
        a, b = self.filter.coefficients(self.guided_map(guide_lr), out_x4)
        return out_x4, guided_output(a, b, guide, self.guided_map.folded(), out_hw)


class _LowLightNet(nn.Module):
    """Input checks, normalisation and padding shared by the three networks (subclasses set ``min_size``)."""

    min_size = 33  # the stride-32 features (InstanceNorm) need more than one pixel

    def _init_io(self, divisor: int, rgb_mean: Sequence[float], rgb_std: Sequence[float]):
        if not isinstance(divisor, int) or divisor < 4 or divisor % 4:
            raise ValueError(f'{type(self).__name__}: divisor must be a multiple of 4, got {divisor!r}')
        self.divisor = divisor
        self.register_buffer('rgb_mean', torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer('rgb_std', torch.tensor(rgb_std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``x`` (N, 4, H, W), normalise its RGB and reflect-pad it to a multiple of ``divisor``."""
        name = type(self).__name__
        if x.dim() != 4 or x.shape[1] != 4:
            raise ValueError(f'{name} takes (N, 4, H, W) = RGB + a brightness plane, got {tuple(x.shape)}; for a '
                             '3-channel image add the plane (plugins.lowlight.brightness.add_brightness_plane, '
                             'or --brightness in tools/infer.py)')
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            raise ValueError(f'{name}: the image is {h}x{w}; both sides must be at least {self.min_size} pixels')
        # Checked in eval mode (inference, validation), where the plane comes from the user. In training it is made
        # from the data and a non-finite one gives a non-finite loss, which the non-finite guard catches: no check
        # there, since reading its result would wait for the device at every training step.
        if not self.training and not torch.isfinite(x[:, 3:]).all():
            raise ValueError(f'{name}: the brightness plane (channel 4) has non-finite values')
        pad_h, pad_w = -h % self.divisor, -w % self.divisor
        # pad first (a new tensor either way), then normalise the RGB in place: two passes instead of four
        x = F.pad(x, (0, pad_w, 0, pad_h), mode='reflect') if pad_h or pad_w else x.clone()
        rgb = x[:, :3]
        if torch.is_grad_enabled() and x.requires_grad:
            return torch.cat([(rgb - self.rgb_mean) / self.rgb_std, x[:, 3:]], 1)
        rgb.sub_(self.rgb_mean).div_(self.rgb_std)
        return x


@ARCH_REGISTRY.register()
class Backbone7x7(_LowLightNet, _EnhanceCore):
    """The lab's final network: slim SwiftNet (ResNet-18 7x7 stem, 16/32/64/64, SPP, ladder) at 1/4 resolution +
    learned guidance map + ConvGuidedFilter. 427,556 parameters (427,540 with ``guide_rgb_only``).

    Args:
        in_ch (int): input channels, RGB + brightness plane. Default: 4.
        out_ch (int): Default: 3. features: encoder widths. Default: (16, 32, 64, 64). spp_dim: Default: 64.
        norm (bool): InstanceNorm in the encoder, BatchNorm in SPP/decoder (the seed's ``--norm``). Default: True.
        guide_rgb_only (bool): guidance map from the RGB channels only (SwiftNetSlim_GFLAndMap_BN2, the variant the
            seed's 427,534 was measured on). Default: False (from all 4 channels, as the final code).
        divisor (int): pad H, W to a multiple of this inside. Default: 16 (the seed's ``--divisor``).
        rgb_mean, rgb_std: normalisation of the RGB. Default: LOL low-light statistics.

    forward(x (N, 4, H, W), return_aux=False) -> out (N, 3, H, W), or (out_x4 (N, 3, ceil(H/4), ceil(W/4)) of
    the padded input, out) with ``return_aux``.
    """

    def __init__(self, in_ch: int = 4, out_ch: int = 3, features: Sequence[int] = (16, 32, 64, 64),
                 spp_dim: int = 64, norm: bool = True, guide_rgb_only: bool = False, divisor: int = 16,
                 rgb_mean: Sequence[float] = LOL_LOW_MEAN, rgb_std: Sequence[float] = LOL_LOW_STD):
        if in_ch != 4:
            raise ValueError(f'Backbone7x7: in_ch must be 4 (RGB + brightness plane), got {in_ch}')
        _EnhanceCore.__init__(self, in_ch, out_ch, features, spp_dim, norm, guide_rgb_only)
        self._init_io(divisor, rgb_mean, rgb_std)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        out_x4, out = _EnhanceCore.forward(self, self._prepare(x), x.shape[-2:])
        return (out_x4, out) if return_aux else out


class _BrightnessBranch(nn.Module):
    """Decoder2 + post2 of the Gen_Y networks: a 1-channel brightness (Y) map at 1/4 of its input."""

    def __init__(self, features: Sequence[int], spp_dim: int, norm: bool, in_ch: int = 0):
        super().__init__()
        if in_ch:  # own encoder + SPP (Gen_Y_Backbone7x7's genY; the lab's module order)
            self.encoder = SlimResNet18(in_ch, features, norm)
            self.spp = SpatialPyramidPooling(features[-1], out_size=spp_dim, norm=norm)
        self.decoder2 = LadderDecoder(features, spp_dim, norm)
        self.post2 = NormReluConv(features[0], 1, 1, norm)


class _GenYMixin(_LowLightNet):
    """Two passes: at ``scale_factor`` of the input, predict the Y map (bilinearly upsampled to H x W); then run the
    enhancer on cat[RGB, Y.detach()] (the lab detaches: the Y head is trained by its own L1 only)."""

    def _gen_y_io(self, scale_factor: float, divisor: int, rgb_mean, rgb_std):
        if not 0 < scale_factor <= 1:
            raise ValueError(f'{type(self).__name__}: scale_factor must be in (0, 1], got {scale_factor}')
        self.scale_factor = scale_factor
        self.min_size = math.ceil(_LowLightNet.min_size / scale_factor)
        self._init_io(divisor, rgb_mean, rgb_std)

    def _predict_y(self, encoder, spp, branch, x: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(x, scale_factor=self.scale_factor, mode='bilinear', align_corners=False)
        x4, x8, x16, x32 = encoder(small)
        y = branch.post2(branch.decoder2(spp(x32), x16, x8, x4))
        return F.interpolate(y, x.shape[-2:], mode='bilinear', align_corners=False)

    y_path_modules: Sequence[str] = ()  # the modules the Y map depends on (subclasses)
    output_path_modules: Sequence[str] = ()  # the modules the output depends on, given the (detached) Y map

    def path_parameters(self):
        """``{'y': [...], 'output': [...]}``: the parameters of the Y path and of the enhancement path (the lab's
        ``optimizer_y`` and ``optimizer_net`` groups); a shared encoder + SPP is in both."""
        return {path: [p for name in names for p in getattr(self, name).parameters()]
                for path, names in (('y', self.y_path_modules), ('output', self.output_path_modules))}

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        """x (N, 4, H, W) = RGB + brightness plane -> out (N, 3, H, W), or (Y (N, 1, H, W), out)."""
        h, w = x.shape[-2:]
        x = self._prepare(x)
        y = self._predict_y_map(x)
        _, out = self._enhance(torch.cat([x[:, :3], y.detach()], 1), (h, w))
        y = y[..., :h, :w]
        return (y, out) if return_aux else out


@ARCH_REGISTRY.register()
class Gen_Y_Backbone7x7(_GenYMixin):  # noqa: N801  (the lab's name)
    """Gen_Y with two separate networks: ``genY`` (encoder + SPP + decoder2 + post2) predicts Y at
    ``scale_factor``; ``genO`` (a full Backbone7x7 core on RGB + Y) enhances. 853,458 parameters.

    Args: as Backbone7x7, plus ``scale_factor`` (float): resolution of the Y pass. Default: 0.25.
    """

    y_path_modules, output_path_modules = ('genY', ), ('genO', )

    def __init__(self, in_ch: int = 4, out_ch: int = 3, features: Sequence[int] = (16, 32, 64, 64),
                 spp_dim: int = 64, norm: bool = True, scale_factor: float = 0.25, divisor: int = 16,
                 rgb_mean: Sequence[float] = LOL_LOW_MEAN, rgb_std: Sequence[float] = LOL_LOW_STD):
        super().__init__()
        if in_ch != 4:
            raise ValueError(f'Gen_Y_Backbone7x7: in_ch must be 4 (RGB + brightness plane), got {in_ch}')
        self.genY = _BrightnessBranch(features, spp_dim, norm, in_ch)  # noqa: N815  (the lab's attribute names)
        self.genO = _EnhanceCore(4, out_ch, features, spp_dim, norm)  # noqa: N815
        self._gen_y_io(scale_factor, divisor, rgb_mean, rgb_std)

    def _predict_y_map(self, x):
        return self._predict_y(self.genY.encoder, self.genY.spp, self.genY, x)

    def _enhance(self, x, out_hw):
        return self.genO(x, out_hw)


@ARCH_REGISTRY.register()
class Gen_Y_Backbone7x7_Share(_GenYMixin, _EnhanceCore):  # noqa: N801  (the lab's name)
    """Gen_Y sharing encoder + SPP between the Y pass and the enhancement pass; own decoder2/post2 for Y.
    494,981 parameters.

    Args: as Gen_Y_Backbone7x7.
    """

    # the lab's optimizer_y and optimizer_net groups (Gen_Y_Share_train_tensorboard.py): encoder + SPP in both
    y_path_modules = ('encoder', 'spp', 'decoder2', 'post2')
    output_path_modules = ('encoder', 'spp', 'decoder', 'post', 'filter', 'guided_map')

    def __init__(self, in_ch: int = 4, out_ch: int = 3, features: Sequence[int] = (16, 32, 64, 64),
                 spp_dim: int = 64, norm: bool = True, scale_factor: float = 0.25, divisor: int = 16,
                 rgb_mean: Sequence[float] = LOL_LOW_MEAN, rgb_std: Sequence[float] = LOL_LOW_STD):
        if in_ch != 4:
            raise ValueError(f'Gen_Y_Backbone7x7_Share: in_ch must be 4 (RGB + brightness plane), got {in_ch}')
        _EnhanceCore.__init__(self, 4, out_ch, features, spp_dim, norm)
        branch = _BrightnessBranch(features, spp_dim, norm)
        self.decoder2, self.post2 = branch.decoder2, branch.post2
        self._gen_y_io(scale_factor, divisor, rgb_mean, rgb_std)

    def _predict_y_map(self, x):
        return self._predict_y(self.encoder, self.spp, self, x)

    def _enhance(self, x, out_hw):
        return _EnhanceCore.forward(self, x, out_hw)
