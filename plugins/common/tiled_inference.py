"""Run a super-resolution network on whole images of any size: tiled forward passes and colour handling.

Used by ``tools/infer.py`` (``common/inference.py``) and the classic line's bicubic comparison. ``tile_forward``
runs any network tile by tile so a 4K image needs only the memory of one tile; ``super_resolve`` turns a BGR uint8
image (as ``cv2.imread`` gives) into the super-resolved BGR uint8 image, running 1-channel networks on the Y channel of
YCbCr (BasicSR's ``color: y`` convention) and 3-channel networks on RGB.
"""
from typing import List

import cv2
import numpy as np
import torch
from basicsr.utils import bgr2ycbcr, img2tensor, tensor2img, ycbcr2bgr
from torch import nn

from ..engine.errors import OptionsError


def _starts(length: int, tile: int) -> List[int]:
    """Start offsets of the tiles covering ``range(length)``; the last tile may be shorter."""
    return list(range(0, length, tile))


def tile_forward(net: nn.Module, lr: torch.Tensor, scale: int, tile: int, tile_pad: int,
                 channels_last: bool = False) -> torch.Tensor:
    """Run ``net`` on ``lr`` tile by tile and paste the results into one super-resolved tensor.

    The input is cut into tiles of ``tile`` x ``tile`` pixels (the last row and column of tiles may be smaller).
    Each tile is run with ``tile_pad`` pixels of real image context on every side (less at the image border,
    where the network sees the same border as in a whole-image pass); the centre of the output, i.e. the tile's
    area times ``scale``, is pasted into the result. When ``tile_pad`` covers the network's receptive field
    (in LR pixels) the result equals the whole-image pass up to floating-point rounding.

    Each tile is moved to the device and dtype of the network's first parameter (and to the channels-last memory
    format with ``channels_last``); the result is assembled in float32 on the device of ``lr``, so a large image
    can stay in CPU memory while the network runs on a GPU, and outputs of a half-precision network or of one run
    under ``torch.autocast`` (``tools/infer.py --amp``) come back as float32.

    Args:
        net (nn.Module): A network mapping ``(N, C, h, w)`` to ``(N, C_out, h * scale, w * scale)``, in eval mode.
        lr (Tensor): Low-resolution input ``(N, C, H, W)``, float, usually in [0, 1].
        scale (int): Super-resolution factor of ``net``.
        tile (int): Tile size in LR pixels; 0 runs the whole image at once.
        tile_pad (int): Context in LR pixels added on each side of a tile (the overlap of neighbouring tiles).
        channels_last (bool): Feed the network channels-last inputs (for a network in that memory format).

    Returns:
        Tensor: ``(N, C_out, H * scale, W * scale)`` float32 on ``lr``'s device, in the network's range (not
        clamped).

    Raises:
        ValueError: on a negative tile or pad, or when a tile's output is not ``scale`` times its input.
    """
    if tile < 0 or tile_pad < 0:
        raise ValueError(f'tile and tile_pad must be >= 0, got tile={tile}, tile_pad={tile_pad}')
    param = next(net.parameters(), None)
    device = param.device if param is not None else lr.device
    dtype = param.dtype if param is not None and param.is_floating_point() else lr.dtype
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    n, _, h, w = lr.shape
    if tile == 0 or (tile >= h and tile >= w):
        out = net(lr.to(device, dtype).contiguous(memory_format=memory_format))
        _check_output(out, lr.shape, scale)
        return out.to(lr.device, torch.float32)
    result = None
    for y0 in _starts(h, tile):
        for x0 in _starts(w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(y0 - tile_pad, 0), max(x0 - tile_pad, 0)  # padded tile, clipped to the image
            py1, px1 = min(y1 + tile_pad, h), min(x1 + tile_pad, w)
            part = lr[:, :, py0:py1, px0:px1]
            out = net(part.to(device, dtype).contiguous(memory_format=memory_format))
            _check_output(out, part.shape, scale)
            if result is None:
                result = torch.empty((n, out.shape[1], h * scale, w * scale), dtype=torch.float32, device=lr.device)
            cy, cx = (y0 - py0) * scale, (x0 - px0) * scale  # where the tile's own area starts in `out`
            result[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                out[:, :, cy:cy + (y1 - y0) * scale, cx:cx + (x1 - x0) * scale].to(lr.device)
    return result


def _check_output(out: torch.Tensor, in_shape: torch.Size, scale: int) -> None:
    expected = (in_shape[2] * scale, in_shape[3] * scale)
    if out.dim() != 4 or tuple(out.shape[2:]) != expected:
        raise ValueError(f'the network turned an input of {tuple(in_shape)} into {tuple(out.shape)}, expected '
                         f'height x width {expected[0]} x {expected[1]} for scale {scale}: check `scale` in the '
                         'options file')


def super_resolve(net: nn.Module, img: np.ndarray, scale: int, in_channels: int, tile: int = 0,
                  tile_pad: int = 10, channels_last: bool = False) -> np.ndarray:
    """Super-resolve one colour image.

    1-channel networks run on Y: the image (BGR float in [0, 1]) is converted with BasicSR's ``bgr2ycbcr``
    (ITU-R BT.601, the transform of the ``color: y`` dataset option), the network's Y output is combined with
    the bicubic-upsampled (``cv2.INTER_CUBIC``) Cb and Cr, and ``ycbcr2bgr`` converts back. 3-channel networks
    get RGB in [0, 1] (``img2tensor(bgr2rgb=True)``), as BasicSR's datasets give them.

    Args:
        net (nn.Module): The network, in eval mode, on any device.
        img (ndarray): Input image ``(H, W, 3)`` BGR uint8 (``(H, W)`` grey is accepted).
        scale (int): Super-resolution factor of ``net``.
        in_channels (int): Input channels of ``net``: 1 (Y) or 3 (RGB).
        tile (int): Tile size in LR pixels, 0 for the whole image. Default: 0.
        tile_pad (int): Context in LR pixels around each tile. Default: 10.
        channels_last (bool): Channels-last inputs (``tile_forward``). Default: False.

    Returns:
        ndarray: ``(H * scale, W * scale, 3)`` BGR uint8.
    """
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    img = img.astype(np.float32) / 255.
    h, w = img.shape[:2]
    with torch.inference_mode():
        if in_channels == 1:
            ycbcr = bgr2ycbcr(img, y_only=False)  # float32, [0, 1]
            y = torch.from_numpy(np.ascontiguousarray(ycbcr[..., 0]))[None, None]
            sr_y = tile_forward(net, y, scale, tile, tile_pad, channels_last)[0, 0].clamp_(0, 1).cpu().numpy()
            cbcr = cv2.resize(ycbcr[..., 1:], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
            out = ycbcr2bgr(np.dstack([sr_y, cbcr]).astype(np.float32))
            return (np.clip(out, 0, 1) * 255.).round().astype(np.uint8)
        if in_channels == 3:
            lr = img2tensor(img, bgr2rgb=True, float32=True)[None]
            return tensor2img(tile_forward(net, lr, scale, tile, tile_pad, channels_last), rgb2bgr=True,
                              min_max=(0, 1))
    raise OptionsError(f'the network takes {in_channels} input channels; inference supports 1 (Y) or 3 (RGB)')
