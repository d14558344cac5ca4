"""The full-resolution tail of the guided-filter networks at inference, row block by row block.

At full resolution the networks only compute ``out = up(A) * G(x) + up(b)``, with ``G`` the guidance map (two 1x1
convs and a ReLU, AdaptiveNorm folded in) and ``up`` a bilinear upsampling (``align_corners=True``). Done layer by
layer this writes and re-reads a 16-channel and two 3-channel full-resolution tensors; here it runs on blocks of
``chunk`` rows that stay in cache: ``G`` as two small matrix products, ``up`` as a horizontal interpolation of the
low-resolution rows (done once, on 1/4 of the rows) and a vertical ``lerp`` of the two source rows per block.
Only the rows and columns of the unpadded output are computed. The result equals the layer-by-layer path up to
float rounding (tests/lowlight/test_archs.py). It runs in float32 whatever the autocast state (``full_precision``):
A and b are large and of opposite signs where the guide has little variance, so ``A * G + b`` needs float32.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

from ..engine.basicsr.mixed_precision import full_precision, wide


def _source_rows(out_rows: int, in_rows: int, height: int, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the first ``out_rows`` rows of an ``in_rows`` -> ``height`` align_corners upsampling: the two source rows
    and the weight of the second."""
    scale = (in_rows - 1) / (height - 1) if height > 1 else 0.
    pos = torch.arange(out_rows, device=device, dtype=torch.float32) * scale
    i0 = pos.floor().long().clamp_(max=in_rows - 1)
    return i0, (i0 + 1).clamp_(max=in_rows - 1), pos - i0


def guided_output(a: torch.Tensor, b: torch.Tensor, guide: torch.Tensor, weights, out_hw: Tuple[int, int],
                  chunk: int = 64) -> torch.Tensor:
    """``up(a) * G(guide) + up(b)`` cropped to ``out_hw``.

    Args:
        a, b: ``(N, C, h, w)`` low-resolution coefficients.
        guide: ``(N, Cg, H, W)`` full-resolution input of the guidance map.
        weights: ``(w1 (16, Cg), c1 (16, 1), w2 (C, 16), c2 (C, 1))`` of G (``GuidedMap.folded()``).
        out_hw: rows and columns of the output (<= H, W): the unpadded image.
        chunk: rows per block. Default: 64 (32-64 measured fastest at 1080p; fewer blocks, fewer thread syncs).

    Returns:
        ``(N, C, out_hw[0], out_hw[1])``, contiguous, float32 (float64 for float64 inputs).
    """
    with full_precision(a.device.type):
        return _guided_output(wide(a), wide(b), wide(guide), [wide(w) for w in weights], out_hw, chunk)


def _guided_output(a, b, guide, weights, out_hw, chunk):
    w1, c1, w2, c2 = weights
    n, c, h, _ = a.shape
    height, width = guide.shape[-2:]
    oh, ow = out_hw
    ab = F.interpolate(torch.cat([a, b], 1), (h, width), mode='bilinear', align_corners=True)[..., :ow]
    i0, i1, t = _source_rows(oh, h, height, a.device)
    out = a.new_empty((n, c, oh, ow))
    for k in range(n):
        ab_k = ab[k]
        for r0 in range(0, oh, chunk):
            r1 = min(r0 + chunk, oh)
            x = guide[k, :, r0:r1, :ow].reshape(guide.shape[1], -1)  # a view when ow == W
            g = torch.addmm(c2, w2, torch.addmm(c1, w1, x).clamp_(min=0)).view(c, r1 - r0, ow)
            rows = torch.lerp(ab_k[:, i0[r0:r1]], ab_k[:, i1[r0:r1]], t[r0:r1].view(1, -1, 1))
            out[k, :, r0:r1] = g.mul_(rows[:c]).add_(rows[c:])
    return out
