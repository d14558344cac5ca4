"""TSRN (Wang et al., "Scene Text Image Super-Resolution in the Wild", ECCV 2020), registered in BasicSR.

Written from the paper and TextZoom's ``src/model/tsrn.py`` (layer for layer, so parameter counts match):

    x (N, 4, 16, 64) RGB + binary text mask in [0, 1]
    [training, stn=True] resize to 32x64 -> STNHead -> TPS warp back to 16x64
    block1: conv9x9(4 -> 64) + PReLU
    5 x sequential residual block (SRB): conv3-BN-Mish-conv3-BN -> BiGRU along the height -> + x -> BiGRU along
        the width (each BiGRU = conv1x1 + GRU(64, 32, bidirectional))
    conv3x3 + BN, added to block1 (global skip)
    upsampler: [conv3(64 -> 256) -> PixelShuffle(2) -> Mish] x n -> conv9x9(64 -> 4) -> tanh
    output (N, 4, 32, 128)

The code uses BiGRUs and Mish where the paper's text speaks of BLSTMs and ReLU; we follow the code.

Deviation, opt-in (``bicubic_skip: true``, default off = TextZoom's TSRN): add the bicubic upsampling of the
(aligned) input to the tanh output, so the network learns a residual over bicubic. TSRN has no such skip and
starts from a random image (about 6 dB on the synthetic data); on a CPU budget of a few hundred iterations it
stays several dB below bicubic (docs/textsr.md), while with the skip it passes bicubic within ~100 iterations.
Used by the CPU test that shows training works on held-out data; not part of any TextZoom options file.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY

from .stn import STNHead, TPSSpatialTransformer


class BiGRUAlongWidth(nn.Module):
    """conv1x1 then a bidirectional GRU over each row of the map (the sequence runs along the width).

    Shapes: ``(N, C, H, W)`` -> ``(N, C, H, W)``; C even. Transpose H and W around it for the height direction.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f'BiGRU channels must be even, got {channels}')
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.gru = nn.GRU(channels, channels // 2, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        n, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(n * h, w, c)
        rows, _ = self.gru(rows)
        return rows.reshape(n, h, w, c).permute(0, 3, 1, 2)


class SequentialResidualBlock(nn.Module):
    """TSRN's SRB: conv3-BN-Mish-conv3-BN, a BiGRU along the height, the residual sum, a BiGRU along the width."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.Mish(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.gru_height = BiGRUAlongWidth(channels)
        self.gru_width = BiGRUAlongWidth(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.gru_height(self.body(x).transpose(-1, -2)).transpose(-1, -2)
        return self.gru_width(x + res)


@ARCH_REGISTRY.register()
class TSRN(nn.Module):
    """TextSR network (TSRN).

    Args:
        scale (int): Upscaling factor, a power of two (TextZoom: 2). Default: 2.
        in_ch (int): 4 for RGB + text mask (TextZoom's ``--mask``), 3 for RGB. Output has the same channels.
        num_feat (int): Feature channels (TextZoom: 2 x hidden_units = 64). Default: 64.
        num_block (int): Sequential residual blocks (TextZoom ``--srb``: 5). Default: 5.
        stn (bool): Use the TPS/STN central alignment during training (TextZoom ``--STN``). Default: True.
        lr_size (Sequence[int]): (height, width) of the LR input that the STN warps to. Default: (16, 64).
        num_pixelshuffle (int): 1 (TSRN) or 2, the seed's second variant. With 2, the upsampler has one
            PixelShuffle(2) stage more than the scale needs (x2 scale -> x4 features) and the 9x9 output conv has
            stride 2, so the output keeps the TextZoom size (the seed's notes do not say how its two-shuffle
            variant kept 128x32; this is the smallest change that does). Default: 1.
        bicubic_skip (bool): Not in TSRN (see the module doc): output = tanh(...) + bicubic(input). Default: False.

    Shapes:
        ``(N, in_ch, h, w)`` in [0, 1] -> ``(N, in_ch, h * scale, w * scale)`` in (-1, 1) (tanh; the targets
        are in [0, 1], as in TextZoom; about (-1.1, 2.1) with ``bicubic_skip``, clamped by the metrics).
        ``forward_features`` also returns the ``(N, num_feat, h, w)`` features before the upsampler, used by the
        joint model's feature-level bridges.
    """

    def __init__(self, scale: int = 2, in_ch: int = 4, num_feat: int = 64, num_block: int = 5, stn: bool = True,
                 lr_size=(16, 64), num_pixelshuffle: int = 1, bicubic_skip: bool = False):
        super().__init__()
        if scale < 1 or math.log2(scale) % 1:
            raise ValueError(f'TSRN scale must be a power of two, got {scale}')
        if num_pixelshuffle not in (1, 2):
            raise ValueError(f'TSRN num_pixelshuffle must be 1 or 2, got {num_pixelshuffle}')
        self.scale, self.num_feat, self.num_pixelshuffle = scale, num_feat, num_pixelshuffle
        self.bicubic_skip = bicubic_skip
        self.head = nn.Sequential(nn.Conv2d(in_ch, num_feat, 9, padding=4), nn.PReLU())
        self.blocks = nn.Sequential(*[SequentialResidualBlock(num_feat) for _ in range(num_block)])
        self.body_tail = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.BatchNorm2d(num_feat))
        num_up = int(math.log2(scale)) + (num_pixelshuffle - 1)
        up = []
        for _ in range(num_up):
            up += [nn.Conv2d(num_feat, num_feat * 4, 3, padding=1), nn.PixelShuffle(2), nn.Mish()]
        self.upsampler = nn.Sequential(*up)
        self.out_conv = nn.Conv2d(num_feat, in_ch, 9, stride=num_pixelshuffle, padding=4)
        self.stn = stn
        if stn:
            self.stn_head = STNHead(in_ch, num_control_points=20)
            self.tps = TPSSpatialTransformer(tuple(lr_size), num_control_points=20, margins=(0.05, 0.05))

    def align(self, x: torch.Tensor) -> torch.Tensor:
        """TPS-warp ``x`` to ``lr_size`` with the predicted control points (training only, as TextZoom)."""
        small = F.interpolate(x, STNHead.input_size, mode='bilinear', align_corners=True)
        warped, _ = self.tps(small, self.stn_head(small))
        return warped

    def forward_features(self, x: torch.Tensor):
        """Returns (SR image ``(N, C, sh, sw)``, features ``(N, num_feat, h, w)``)."""
        if self.stn and self.training:
            x = self.align(x)
        head = self.head(x)
        feat = head + self.body_tail(self.blocks(head))
        sr = torch.tanh(self.out_conv(self.upsampler(feat)))
        if self.bicubic_skip:
            sr = sr + F.interpolate(x, scale_factor=self.scale, mode='bicubic', align_corners=False)
        return sr, feat

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """SR image, or (SR image, features) with ``return_features`` (one entry point for DDP wrappers)."""
        sr, feat = self.forward_features(x)
        return (sr, feat) if return_features else sr


@ARCH_REGISTRY.register()
class TextBicubic(nn.Module):
    """The bicubic baseline of TextZoom's tables as a network: ``(N, C, h, w)`` -> ``(N, C, h * scale, w * scale)``.

    torch's bicubic (a = -0.75), as TextZoom's ``src/model/bicubic.py`` (``F.interpolate``, not PIL) on the LR
    tensor that its data loader resized to 64x16 with PIL bicubic (our dataset does the same).

    Args:
        scale (int): Upscaling factor. Default: 2.
        align_corners (bool): TextZoom's baseline uses ``align_corners=True``, which maps the corner pixel centres
            onto each other and so stretches the image by (w - 1)/(w*scale - 1) against the pixel grid the LR was
            made on (up to half an HR pixel at the borders). Default: False (pixel-area aligned, our fix);
            the TextZoom options set ``true``.
        clamp (bool): Clamp the output to [0, 1] (bicubic overshoots at edges). TextZoom does not clamp, and its
            metrics score the overshoot. Default: True; the TextZoom options set ``false``.
    """

    def __init__(self, scale: int = 2, align_corners: bool = False, clamp: bool = True):
        super().__init__()
        self.scale, self.align_corners, self.clamp = scale, align_corners, clamp

    def forward(self, x: torch.Tensor, return_features: bool = False):
        sr = F.interpolate(x, scale_factor=self.scale, mode='bicubic', align_corners=self.align_corners)
        if self.clamp:
            sr = sr.clamp(0, 1)
        return (sr, None) if return_features else sr
