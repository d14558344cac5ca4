"""The keys of mmengine checkpoints written under torchrun by models with several networks.

MMagic's GAN-style models (our inpaintors: generator and discriminator, each with its optimizer) train under
``MMSeparateDistributedDataParallel``, which wraps every sub-network in its own ``MMDistributedDataParallel``.
mmengine 0.10.7 saves ``model.state_dict()`` of the model inside the outer wrapper, so the keys carry each inner
wrapper's ``module.``: ``generator.module.net.*``, ``disc.module.*``. Its loader, ``load_state_dict``, unwraps every
wrapper it meets while it walks the model, so it looks for ``generator.net.*`` (the keys of ``get_state_dict``)
whether the model is wrapped or not: resuming such a run under torchrun, ``load_from``, ``tools/test.py`` and
``tools/infer.py`` all missed the weights of every wrapped network, and mmengine's non-strict loading only warned.

``unwrap_ddp_keys`` renames a checkpoint key the model does not have to the one it has when the difference is a
wrapper's ``module.`` segment. Keys the model has as they are stay as they are: ``generator_ema.module.*`` is the
EMA's own module (``ExponentialMovingAverage`` is not a DDP wrapper), and the checkpoints of single-process runs
need no renaming.
"""
from collections import OrderedDict
from typing import Iterable, Mapping

from torch import nn


def expected_keys(model: nn.Module) -> set:
    """The state keys mmengine's loader looks for in ``model`` (its ``get_state_dict``: DDP wrappers unwrapped at
    every level), and the names of the modules that hold them (the metadata keys)."""
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import get_state_dict
    bare = model.module if is_model_wrapper(model) else model
    modules = set()

    def walk(module: nn.Module, prefix: str) -> None:
        if is_model_wrapper(module):
            module = module.module
        modules.add(prefix[:-1])
        for name, child in module._modules.items():
            if child is not None:
                walk(child, f'{prefix}{name}.')

    walk(bare, '')
    return set(get_state_dict(bare).keys()) | modules


def _unwrapped(key: str, known: set, taken: Iterable[str]) -> str:
    """``key`` without the first ``module`` segment whose removal gives a key in ``known`` (and not in ``taken``),
    else ``key`` itself."""
    if key in known:
        return key
    parts = key.split('.')
    for i, part in enumerate(parts):
        if part == 'module':
            candidate = '.'.join(parts[:i] + parts[i + 1:])
            if candidate in known and candidate not in taken:
                return candidate
    return key


def unwrap_ddp_keys(state_dict: Mapping, known: set) -> OrderedDict:
    """``state_dict`` with the keys written through an inner DDP wrapper renamed to the keys ``known`` holds (see
    the module doc); its ``_metadata`` (module versions, which BatchNorm reads) renamed alike."""
    renamed = OrderedDict((_unwrapped(k, known, state_dict), v) for k, v in state_dict.items())
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        renamed._metadata = OrderedDict((_unwrapped(k, known, metadata), v) for k, v in metadata.items())
    return renamed
