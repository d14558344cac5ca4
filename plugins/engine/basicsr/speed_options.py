"""Two training options for speed on a GPU, for every BasicSR model (installed with mixed precision by the
``build_model`` patch of ``plugins/compat/basicsr.py``):

* ``train: channels_last: true``: ``network_g``'s 4-D weights (and its EMA copy's) and the model's 4-D inputs
  (``lq``, ``gt`` after ``feed_data``) in the channels-last memory format (NHWC), which cuDNN's convolutions prefer
  with 16-bit tensor cores (pair it with ``train: amp``). ``network_g`` is converted before BasicSR wraps it in DDP
  (``prepare_network``, from ``model_to_device``), so DDP's gradient buckets follow its layout. The model's other
  networks (a discriminator, a recognizer) keep the default layout and get their 4-D inputs in it (a forward
  pre-hook): BasicSR's VGG-style discriminator flattens its features with ``.view``, which a channels-last tensor
  refuses. Default false.
* ``train: compile: false | true | {backend: ..., mode: ..., dynamic: ..., fullgraph: ...}``: ``network_g`` becomes
  ``torch.compile(network_g, **options)`` (``true``: torch's defaults, the inductor backend). Checkpoints keep plain
  keys: ``get_bare_model`` unwraps the compiled module as it does DDP (``bare_network``), and saving, the EMA update
  and loading all go through it. The first iterations (and each new input size or train/eval switch) compile.
  Models that call sub-networks of ``network_g`` directly (CMDSR's training steps) do not run the compiled forward.
  Default false.
"""
import sys
from typing import Dict, Optional

import torch
from torch.nn.parallel import DataParallel, DistributedDataParallel

CHANNELS_LAST = 'channels_last'
COMPILE = 'compile'
COMPILE_KEYS = ('backend', 'mode', 'dynamic', 'fullgraph')


def option_problem(train_opt: Optional[Dict]) -> Optional[str]:
    """What is wrong with ``train:channels_last`` or ``train:compile`` (one line), or None."""
    train_opt = train_opt or {}
    channels_last = train_opt.get(CHANNELS_LAST, False)
    if not isinstance(channels_last, bool):
        return f'train:{CHANNELS_LAST} must be true or false, got {channels_last!r}'
    value = train_opt.get(COMPILE, False)
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, dict):
        return f'train:{COMPILE} must be false, true or {{backend: ..., mode: ...}}, got {value!r}'
    unknown = [k for k in value if k not in COMPILE_KEYS]
    if unknown:
        return f'train:{COMPILE} has unknown keys {unknown}; it takes {", ".join(COMPILE_KEYS)}'
    if 'backend' in value:
        import torch._dynamo  # noqa: F401  (0.9 s: only when a backend is named)
        backends = torch._dynamo.list_backends(exclude_tags=())
        if value['backend'] not in backends:
            return f'train:{COMPILE}:backend {value["backend"]!r} is not a torch.compile backend ({", ".join(backends)})'
    if 'mode' in value and value['mode'] is not None:
        from torch._inductor import list_mode_options
        modes = list(list_mode_options())
        if value['mode'] not in modes:
            return f'train:{COMPILE}:mode {value["mode"]!r} is not one of {", ".join(modes)}'
    for key in ('dynamic', 'fullgraph'):
        if key in value and not (isinstance(value[key], bool) or (key == 'dynamic' and value[key] is None)):
            return f'train:{COMPILE}:{key} must be true or false, got {value[key]!r}'
    return None


def _train_options(opt: Dict) -> Dict:
    return (opt.get('train') or {}) if opt.get('is_train') else {}


def compile_options(opt: Dict) -> Optional[Dict]:
    """The keyword arguments of ``torch.compile`` that ``train:compile`` asks for, or None (not compiled)."""
    value = _train_options(opt).get(COMPILE, False)
    if value is True:
        return {}
    return dict(value) if isinstance(value, dict) else None


def prepare_network(model, net: torch.nn.Module) -> torch.nn.Module:
    """A network before ``model.model_to_device`` moves it to its device (and wraps it in DDP): channels-last if it
    is ``network_g`` (BasicSR's models assign ``self.net_g`` before that call) and the options ask."""
    if net is getattr(model, 'net_g', None) and _train_options(model.opt).get(CHANNELS_LAST):
        net = net.to(memory_format=torch.channels_last)
    return net


def bare_network(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` without its DataParallel, DistributedDataParallel and ``torch.compile`` wrappers (in any nesting)."""
    eval_frame = sys.modules.get('torch._dynamo.eval_frame')  # not imported: nothing can be compiled
    compiled = (eval_frame.OptimizedModule, ) if eval_frame is not None else ()
    while True:
        if isinstance(net, (DataParallel, DistributedDataParallel)):
            net = net.module
        elif compiled and isinstance(net, compiled):
            net = net._orig_mod
        else:
            return net


def _channels_last(value):
    return value.contiguous(memory_format=torch.channels_last) \
        if isinstance(value, torch.Tensor) and value.dim() == 4 else value


def _default_layout(value):
    return value.contiguous() if isinstance(value, torch.Tensor) and value.dim() == 4 else value


def _inputs_in_default_layout(module, args, kwargs):
    """Forward pre-hook: the 4-D tensor arguments in the default (NCHW-contiguous) layout."""
    return tuple(_default_layout(a) for a in args), {k: _default_layout(v) for k, v in kwargs.items()}


def install_speed_options(model, logger) -> None:
    """Apply ``train:channels_last`` and ``train:compile`` to a built training model (see the module docstring)."""
    train_opt = _train_options(model.opt)
    if train_opt.get(CHANNELS_LAST):
        for name, net in list(vars(model).items()):
            if not (name.startswith('net_') and isinstance(net, torch.nn.Module)):
                continue
            if name in ('net_g', 'net_g_ema'):  # the EMA copy is not built through model_to_device
                bare_network(net).to(memory_format=torch.channels_last)
            else:
                bare_network(net).register_forward_pre_hook(_inputs_in_default_layout, with_kwargs=True)
        feed_data = model.feed_data

        def feed_data_channels_last(data, *args, **kwargs):
            result = feed_data(data, *args, **kwargs)
            for key in ('lq', 'gt'):
                if isinstance(getattr(model, key, None), torch.Tensor):
                    setattr(model, key, _channels_last(getattr(model, key)))
            return result

        model.feed_data = feed_data_channels_last
        logger.info('Channels-last memory format for network_g and the inputs.')
    kwargs = compile_options(model.opt)
    if kwargs is not None:
        model.net_g = torch.compile(model.net_g, **kwargs)
        logger.info(f'network_g compiled with torch.compile({", ".join(f"{k}={v!r}" for k, v in kwargs.items())}).')
