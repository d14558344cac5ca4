"""The model of an mmengine config with the weights of an mmengine checkpoint, for the tools that run a network
outside the Runner (``tools/infer.py``, ``tools/benchmark.py``).

``read_config`` reads the config as the Runner would (its ``custom_imports`` are imported, which registers the
config's components and the inference adapters of its line); ``build_config_model`` builds ``cfg.model`` in the
config's scope (MMagic's by default) and loads a checkpoint written by ``tools/train.py`` (``state_dict`` with the
model's keys, e.g. ``generator.*``) strictly; ``image_network`` turns an image-to-image model (MMagic's
``BaseEditModel`` and the like) into the network ``tools/infer.py``'s super-resolution path runs: RGB in [0, 1] in
and out, with the model's ``DataPreprocessor`` normalisation and channel order applied around the generator.
"""
import os.path as osp
from typing import Optional, Tuple

import torch
from torch import nn

from ..checkpoint_files import load_error_reason
from ..errors import OptionsError
from .checkpoint_keys import expected_keys, unwrap_ddp_keys


def read_config(path: str):
    """mmengine's ``Config`` of ``path`` (``custom_imports`` imported); ``OptionsError`` for a missing file or a
    syntax error (naming the file and line)."""
    from .runner import read_config as read
    if not osp.isfile(path):
        raise OptionsError(f'config file {path!r} not found (expected an mmengine config such as '
                           'options/mmagic/classic/srcnn_x2_demo.py)')
    return read(path)


def build_config_model(cfg, source: str, checkpoint: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` in the config's default scope (MMagic's when it names none) and load ``checkpoint``.

    Returns the model in eval mode on the CPU. ``OptionsError`` for a config without ``model``, a model that cannot
    be built (one line with the cause), or a checkpoint that is missing, unreadable or does not fit."""
    from mmengine.registry import MODELS, init_default_scope
    if not isinstance(cfg.get('model'), dict):
        raise OptionsError(f'{source}: the config has no `model` dict to build')
    init_default_scope(cfg.get('default_scope') or 'mmagic')
    try:
        model = MODELS.build(cfg.model)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as err:
        raise OptionsError(f'{source}: cannot build the model ({type(err).__name__}: {err})') from err
    if checkpoint:
        load_config_checkpoint(model, checkpoint, source)
    return model.eval()


def load_config_checkpoint(model: nn.Module, checkpoint: str, source: str) -> None:
    """Load an mmengine checkpoint (``{'state_dict': ..., 'meta': ...}``, or a bare state dict of the whole model)
    into ``model`` strictly, on the CPU; ``OptionsError`` naming the file and the first keys that do not fit."""
    from mmengine.runner import CheckpointLoader
    if not osp.isfile(checkpoint):
        raise OptionsError(f'checkpoint {checkpoint!r} not found (expected a .pth written by tools/train.py for '
                           f'{source}, e.g. work_dirs/<config stem>/iter_<n>.pth)')
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger='silent')
    except Exception as err:  # noqa: BLE001 - truncated file, not a torch file
        raise OptionsError(f'cannot read checkpoint {checkpoint}: {load_error_reason(err)}') from err
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise OptionsError(f'checkpoint {checkpoint} holds a {type(ckpt).__name__}, expected an mmengine checkpoint')
    state = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}  # DDP-saved
    state = unwrap_ddp_keys(state, expected_keys(model))  # generator.module.* of multi-network torchrun runs
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}' for k in own
             if k in state and hasattr(state[k], 'shape') and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = [f'{what} {", ".join(keys[:3])}{" ..." if len(keys) > 3 else ""} ({len(keys)})'
                 for what, keys in (('shape mismatch', wrong), ('missing', missing), ('unexpected', unexpected))
                 if keys]
        raise OptionsError(f'checkpoint {checkpoint} does not fit the model of {source}: {"; ".join(parts)}')
    model.load_state_dict(state, strict=True)


def generator_of(model: nn.Module) -> nn.Module:
    """The network a model runs at test time: its ``inference_generator()`` (our inpaintors: the EMA one), else the
    module of its ``generator_ema`` (mmengine's ``ExponentialMovingAverage``), else its ``generator``, else itself."""
    if hasattr(model, 'inference_generator'):
        return model.inference_generator()
    ema = getattr(model, 'generator_ema', None)
    if isinstance(ema, nn.Module):
        return getattr(ema, 'module', ema)
    generator = getattr(model, 'generator', None)
    return generator if isinstance(generator, nn.Module) else model


def _load_order(cfg, key: str = 'img') -> str:
    """Channel order ('rgb' or 'bgr') in which the config's test (else val, else train) pipeline loads ``key``:
    mmagic's ``LoadImageFromFile`` loads BGR unless ``channel_order`` says otherwise."""
    for loader in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset') or {}
        for step in dataset.get('pipeline') or []:
            if isinstance(step, dict) and step.get('type') == 'LoadImageFromFile' and step.get('key') == key:
                return str(step.get('channel_order', 'bgr')).lower()
    return 'bgr'


class PreprocessedNetwork(nn.Module):
    """A generator as its model's ``DataPreprocessor`` feeds it, as a plain image network.

    ``forward``: ``(N, 3, H, W)`` RGB in [0, 1] -> to the network's channel order, times 255, normalised with the
    preprocessor's mean and std (0-255 units) -> generator -> mean and std undone, divided by 255, back to RGB:
    ``(N, 3, sH, sW)`` RGB, about [0, 1] (not clamped). With mean 0 and std 255 (our SRCNN config) it is the bare
    generator."""

    def __init__(self, generator: nn.Module, mean: Optional[torch.Tensor], std: Optional[torch.Tensor],
                 bgr: bool):
        super().__init__()
        self.generator, self.bgr = generator, bgr
        self.register_buffer('mean', (mean if mean is not None else torch.zeros(1)).float().view(1, -1, 1, 1) / 255.,
                             persistent=False)
        self.register_buffer('std', (std if std is not None else torch.ones(1)).float().view(1, -1, 1, 1) / 255.,
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        out = self.generator((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        out = out * self.std.to(out.dtype) + self.mean.to(out.dtype)
        return out.flip(1) if self.bgr else out


def image_network(model: nn.Module, cfg) -> Tuple[nn.Module, nn.Module]:
    """(network for ``tools/infer.py``'s SR path, the bare generator) of an image-to-image model: see
    ``PreprocessedNetwork``. Normalisation and channel order come from ``model.data_preprocessor`` and the config's
    pipeline; a generator of other than 3 input channels is returned as it is."""
    generator = generator_of(model)
    processor = getattr(model, 'data_preprocessor', None)
    normalise = bool(getattr(processor, '_enable_normalize', False))
    order = (getattr(processor, 'output_channel_order', None) or _load_order(cfg)).lower()
    first = next((m for m in generator.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if first is not None and first.in_channels != 3:
        return generator, generator
    mean = getattr(processor, 'mean', None) if normalise else None
    std = getattr(processor, 'std', None) if normalise else None
    return PreprocessedNetwork(generator, mean, std, bgr=order == 'bgr').eval(), generator


def config_scale(cfg, net: nn.Module, channels: Optional[int], source: str) -> int:
    """The SR factor of an image network: the config's top-level ``scale`` when it is a positive int, else measured
    on a 16 x 16 input (1 for an image-to-image network of the same size)."""
    scale = cfg.get('scale')
    if isinstance(scale, int) and scale >= 1:
        return scale
    param = next(net.parameters(), None)
    x = torch.zeros(1, channels or 3, 16, 16, device=param.device if param is not None else 'cpu')
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as err:  # noqa: BLE001 - a network that is not a one-input image network
        raise OptionsError(f'{source}: cannot find the network\'s scale (no top-level `scale` in the config, and a '
                           f'16x16 input fails: {type(err).__name__}: {err})') from err
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[-1] % 16 or out.shape[-2] != out.shape[-1]:
        raise OptionsError(f'{source}: cannot find the network\'s scale from its output on a 16x16 input; set a '
                           'top-level `scale` in the config')
    return out.shape[-1] // 16
