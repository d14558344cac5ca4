"""The brightness plane: the 4th input channel of the low-light networks.

The lab (``net/tools.py::get_illumination``) feeds a constant plane holding a brightness in [0, 1]:

* ``gt``: the mean luminance (0.299 R + 0.587 G + 0.114 B) of the normal-light target, per image (the seed's
  ``--incolor=4``, "known GT brightness"); training and validation with ground truth only;
* ``imagenet``: the constant 0.458971 (the seed's ``--incolor=3``, "ImageNet brightness");
* ``target``: a value chosen by the user at inference (``tools/infer.py --brightness 0.5``): the exposure knob.
  Gen_Y networks predict the Y map themselves from the plane at 1/4 scale, so the knob applies to them too.

Images are RGB tensors ``(N, 3, H, W)`` in [0, 1]; planes are ``(N, 1, H, W)``.
"""
import math
from typing import Dict, Optional, Union

import torch

IMAGENET_BRIGHTNESS = 0.458971  # the lab's "ImageNet brightness"
MODES = ('gt', 'imagenet', 'target')


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B of ``(N, 3, H, W)`` RGB, as ``(N, 1, H, W)`` (the Gen_Y target)."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f'luminance expects (N, 3, H, W) RGB, got {tuple(rgb.shape)}')
    r, g, b = rgb.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def mean_luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Mean luminance per image, ``(N, 1, 1, 1)``."""
    return luminance(rgb).mean((2, 3), keepdim=True)


def check_brightness(value: float, what: str = 'brightness') -> float:
    """``value`` as a float in [0, 1], or ValueError naming ``what``."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{what} must be a number in [0, 1], got {value!r}') from None
    if not math.isfinite(value) or not 0. <= value <= 1.:
        raise ValueError(f'{what} must be a finite number in [0, 1] (mean luminance of the wanted output), '
                         f'got {value}')
    return value


def add_brightness_plane(rgb: torch.Tensor, brightness: Union[float, torch.Tensor]) -> torch.Tensor:
    """``cat[rgb, plane]``: ``(N, 3, H, W)`` -> ``(N, 4, H, W)``; ``brightness`` a float or an ``(N, 1, 1, 1)``
    tensor in [0, 1]. A float is checked here; a tensor (made from the data, e.g. the targets' mean luminance) is not,
    as reading the check would wait for the device at every training step: the networks check the plane in eval
    mode, and in training a non-finite plane gives a non-finite loss, which the non-finite guard catches."""
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f'add_brightness_plane expects (N, 3, H, W) RGB, got {tuple(rgb.shape)}')
    if not torch.is_tensor(brightness):
        brightness = rgb.new_full((rgb.shape[0], 1, 1, 1), check_brightness(brightness))
    n, _, h, w = rgb.shape
    return torch.cat([rgb, brightness.to(rgb).expand(n, 1, h, w)], 1)


def parse_brightness_option(opt: Optional[Dict], where: str = 'brightness') -> Dict:
    """Check a ``brightness: {mode: gt|imagenet|target, value: float}`` option (``value`` for ``target`` only).

    Returns ``{'mode': ..., 'value': float or None}``; default ``{'mode': 'gt'}`` (the seed's main rows).
    """
    opt = dict(opt or {'mode': 'gt'})
    mode = opt.get('mode')
    if mode not in MODES:
        raise ValueError(f'{where}.mode must be one of {MODES}, got {mode!r}')
    unknown = set(opt) - {'mode', 'value'}
    if unknown:
        raise ValueError(f'{where}: unknown keys {sorted(unknown)}; expected mode and (for target) value')
    if mode == 'target':
        return {'mode': mode, 'value': check_brightness(opt.get('value'), f'{where}.value')}
    if opt.get('value') is not None:
        raise ValueError(f'{where}.value is only used with mode: target (mode is {mode!r})')
    return {'mode': mode, 'value': IMAGENET_BRIGHTNESS if mode == 'imagenet' else None}


def brightness_for(mode_opt: Dict, lq: torch.Tensor, gt: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The ``(N, 1, 1, 1)`` brightness of a batch for a parsed option (``gt`` mode needs the targets)."""
    if mode_opt['mode'] == 'gt':
        if gt is None:
            raise ValueError("brightness mode 'gt' needs the normal-light target; without ground truth use "
                             "mode: target with a value, or mode: imagenet")
        return mean_luminance(gt)
    return lq.new_full((lq.shape[0], 1, 1, 1), mode_opt['value'])
