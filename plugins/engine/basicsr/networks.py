"""Build a network from BasicSR options (BasicSR's ``ARCH_REGISTRY``) and load checkpoints into it, with clear errors.

Shared by ``tools/infer.py``, ``tools/benchmark.py`` and the options check of ``tools/train.py``. The networks of
the research lines are registered by ``import plugins``, which the tools do first.
"""
import difflib
import os.path as osp
from copy import deepcopy
from typing import Dict, Tuple, Union

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from ..checkpoint_files import load_error_reason
from ..errors import OptionsError
from ..signature_check import check_kwargs
from .options import load_options


def build_network_from_options(opt: Union[str, Dict], key: str = 'network_g', source: str = None) -> nn.Module:
    """Build ``opt[key]`` (``type`` + keyword arguments) from BasicSR's ``ARCH_REGISTRY``.

    Args:
        opt: an options dict or the path of an options file.
        key: which network of the options to build. Default: 'network_g'.
        source: the file name used in error messages. Default: the path, when ``opt`` is one.
    """
    if isinstance(opt, str):
        source, opt = opt, load_options(opt)
    where = source or 'options'
    net_opt = opt.get(key)
    if not isinstance(net_opt, dict) or 'type' not in net_opt:
        raise OptionsError(f'{where}: `{key}` must be a mapping with a `type`, got {net_opt!r}')
    net_opt = deepcopy(dict(net_opt))
    net_type = net_opt.pop('type')
    if net_type not in ARCH_REGISTRY:
        close = difflib.get_close_matches(str(net_type), list(ARCH_REGISTRY._obj_map), n=3)
        hint = f' Did you mean: {", ".join(close)}?' if close else ''
        raise OptionsError(f'{where}: {key}.type {net_type!r} is not a registered network.{hint}')
    check_kwargs(ARCH_REGISTRY.get(net_type), net_opt, where, f'{key}:')  # unknown arguments, with a suggestion
    try:
        return ARCH_REGISTRY.get(net_type)(**net_opt)
    except TypeError as err:  # unknown or missing constructor argument
        raise OptionsError(f'{where}: cannot build {key} ({net_type}): {err}') from err


def read_state_dict(ckpt_path: str, param_key: str = 'auto') -> Tuple[Dict[str, torch.Tensor], str]:
    """Read a network state dict from a BasicSR checkpoint.

    Args:
        ckpt_path: a ``net_g_*.pth`` of BasicSR (``{'params': ..., 'params_ema': ...}``) or a bare state dict.
        param_key: 'params_ema', 'params', or 'auto' (``params_ema`` when present, else ``params``,
            else the file itself). Default: 'auto'.

    Returns:
        (state dict without any DDP ``module.`` prefix, the key that was used or '' for a bare state dict).
    """
    if not osp.isfile(ckpt_path):
        raise FileNotFoundError(f'checkpoint not found: {ckpt_path}')
    try:
        ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated file, not a torch file, or pickled objects
        raise OptionsError(f'cannot read checkpoint {ckpt_path}: {load_error_reason(err)}') from err
    if not isinstance(ckpt, dict):
        raise OptionsError(f'checkpoint {ckpt_path} holds a {type(ckpt).__name__}, expected a state dict')
    if param_key == 'auto':
        param_key = next((k for k in ('params_ema', 'params') if k in ckpt), '')
    if param_key:
        if param_key not in ckpt:
            raise OptionsError(f'checkpoint {ckpt_path} has no {param_key!r} entry (it has: {sorted(ckpt)})')
        ckpt = ckpt[param_key]
    state = {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in ckpt.items()}
    return state, param_key


def check_state_dict_matches(net: nn.Module, state: Dict[str, torch.Tensor], ckpt_path: str, what: str = 'network'):
    """Raise ``OptionsError`` naming the checkpoint and the first mismatching keys unless ``state`` fits ``net``."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [f'{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(own[k].shape)}' for k in own
                   if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        if wrong_shape:
            parts.append('shape mismatch ' + '; '.join(wrong_shape[:3]))
        if missing:
            parts.append(f'missing keys {missing[:5]}')
        if unexpected:
            parts.append(f'unexpected keys {unexpected[:5]}')
        raise OptionsError(f'checkpoint {ckpt_path} does not match {what} ({type(net).__name__}): '
                           + ', '.join(parts))


def load_network_weights(net: nn.Module, ckpt_path: str, param_key: str = 'auto', what: str = 'network') -> str:
    """Load a checkpoint into ``net`` strictly, with a clear error on mismatch; returns the key used."""
    state, used = read_state_dict(ckpt_path, param_key)
    check_state_dict_matches(net, state, ckpt_path, what)
    net.load_state_dict(state, strict=True)
    return used
