"""Central alignment for TSRN: a thin-plate-spline (TPS) spatial transformer driven by a small CNN (STN head).

TextZoom's LR/HR pairs come from two focal lengths and are not pixel aligned; TSRN learns a TPS warp of the
LR input during training (Wang et al., ECCV 2020, "central alignment module"). Written from the paper and
TextZoom's ``src/model/recognizer/{stn_head,tps_spatial_transformer}.py`` (which come from ASTER).

Coordinates are normalised to [0, 1] x [0, 1] (x to the right, y down). The control points lie on two rows,
``num_control_points / 2`` on the top edge and as many on the bottom edge, at ``margins`` from the border.

Under mixed precision (``train: amp``) the TPS grid and its ``grid_sample`` run in float32 (``full_precision``):
16-bit sampling coordinates would move the warp by fractions of a pixel. The STN head's convolutions do not need it.
"""
import math
from typing import Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..engine.basicsr.mixed_precision import full_precision, wide


def edge_control_points(num_control_points: int, margin_x: float, margin_y: float) -> torch.Tensor:
    """``(num_control_points, 2)`` (x, y) points: a top row then a bottom row, evenly spaced in x."""
    if num_control_points < 4 or num_control_points % 2:
        raise ValueError(f'num_control_points must be an even number >= 4, got {num_control_points}')
    per_side = num_control_points // 2
    xs = torch.linspace(margin_x, 1. - margin_x, per_side, dtype=torch.float64)
    top = torch.stack([xs, torch.full_like(xs, margin_y)], 1)
    bottom = torch.stack([xs, torch.full_like(xs, 1. - margin_y)], 1)
    return torch.cat([top, bottom], 0)


def tps_radial_basis(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r (= 0.5 r^2 log r^2) between ``points (P, 2)`` and ``centres (K, 2)``: ``(P, K)``.

    U(0) = 0 (the limit), written without producing NaN so no masking is needed."""
    d2 = (points[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    return 0.5 * d2 * torch.log(d2.clamp_min(1e-12))


class TPSSpatialTransformer(nn.Module):
    """Warp an image with the TPS that maps the fixed target control points onto predicted source points.

    The TPS system is solved once for the fixed target points (``inverse_kernel``), so a forward pass is two
    matrix products and a ``grid_sample``.

    Args:
        output_size (Sequence[int]): (height, width) of the warped output.
        num_control_points (int): Number of control points (20 in TSRN). Default: 20.
        margins (Sequence[float]): (x, y) margins of the target control points. Default: (0.05, 0.05).

    Shapes:
        image ``(N, C, H, W)``, source points ``(N, K, 2)`` in [0, 1] (x, y) -> ``(N, C, *output_size)``.
    """

    def __init__(self, output_size: Sequence[int], num_control_points: int = 20,
                 margins: Sequence[float] = (0.05, 0.05)):
        super().__init__()
        self.output_size = tuple(int(s) for s in output_size)
        self.num_control_points = num_control_points
        target = edge_control_points(num_control_points, *margins)
        k = num_control_points
        # [[U, 1, P], [1^T, 0, 0], [P^T, 0, 0]] (K + 3) x (K + 3), float64 for a well-conditioned inverse.
        kernel = torch.zeros(k + 3, k + 3, dtype=torch.float64)
        kernel[:k, :k] = tps_radial_basis(target, target)
        kernel[:k, k] = 1
        kernel[k, :k] = 1
        kernel[:k, k + 1:] = target
        kernel[k + 1:, :k] = target.t()
        height, width = self.output_size
        ys, xs = torch.meshgrid(torch.linspace(0, 1, height, dtype=torch.float64),
                                torch.linspace(0, 1, width, dtype=torch.float64), indexing='ij')
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)  # (H*W, 2) in (x, y)
        grid_repr = torch.cat([tps_radial_basis(grid, target), torch.ones(len(grid), 1, dtype=torch.float64), grid], 1)
        self.register_buffer('inverse_kernel', torch.linalg.inv(kernel).float(), persistent=False)
        self.register_buffer('grid_repr', grid_repr.float(), persistent=False)
        self.register_buffer('target_control_points', target.float(), persistent=False)

    def forward(self, image: torch.Tensor, source_points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns the warped image and the sampling grid ``(N, H*W, 2)`` in [0, 1], both float32 for
        16-bit inputs."""
        n, k = source_points.shape[:2]
        if source_points.dim() != 3 or k != self.num_control_points or source_points.shape[2] != 2:
            raise ValueError(f'source_points must be (N, {self.num_control_points}, 2), got {tuple(source_points.shape)}')
        with full_precision(image.device.type):
            source_points, image = wide(source_points), wide(image)
            padded = torch.cat([source_points, source_points.new_zeros(n, 3, 2)], 1)  # (N, K + 3, 2)
            coords = self.grid_repr @ (self.inverse_kernel @ padded)  # (N, H*W, 2)
            # Predicted points may leave the image; clamp as ASTER does, then map [0, 1] to grid_sample's [-1, 1].
            grid = coords.clamp(0, 1).view(n, *self.output_size, 2) * 2 - 1
            return F.grid_sample(image, grid, mode='bilinear', padding_mode='zeros', align_corners=True), coords


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class STNHead(nn.Module):
    """Predicts the TPS source control points from a ``(N, in_ch, 32, 64)`` image.

    Six conv3-BN-ReLU blocks (32-64-128-256-256-256) with five 2x2 max-poolings give a 256 x 1 x 2 map,
    then fc 512 -> 512 (BN, ReLU) and fc 512 -> 2K. The last fc starts at zero weights with the control points
    (margin 0.01) as bias, so the initial warp is close to the identity; its input is scaled by 0.1 (ASTER).

    Shapes: ``(N, in_ch, 32, 64)`` -> ``(N, K, 2)`` (x, y), nominally in [0, 1] (no activation, as TSRN).
    """

    input_size = (32, 64)

    def __init__(self, in_ch: int = 4, num_control_points: int = 20):
        super().__init__()
        chans = [in_ch, 32, 64, 128, 256, 256, 256]
        layers = []
        for i in range(6):
            layers.append(_conv_bn_relu(chans[i], chans[i + 1]))
            if i < 5:
                layers.append(nn.MaxPool2d(2, 2))
        self.convnet = nn.Sequential(*layers)
        self.fc1 = nn.Sequential(nn.Linear(256 * 2, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True))
        self.fc2 = nn.Linear(512, num_control_points * 2)
        self.num_control_points = num_control_points
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He init with fan-out, as ASTER
                nn.init.normal_(m.weight, 0, math.sqrt(2. / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 1e-3)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc2.weight)
        with torch.no_grad():
            self.fc2.bias.copy_(edge_control_points(num_control_points, 0.01, 0.01).float().view(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f'STNHead expects {self.input_size} inputs (H, W), got {tuple(x.shape[-2:])}')
        feat = self.fc1(self.convnet(x).flatten(1))
        return self.fc2(0.1 * feat).view(-1, self.num_control_points, 2)
