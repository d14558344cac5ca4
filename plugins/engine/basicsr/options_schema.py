"""Unknown option keys, with a close-match suggestion, checked only where the valid keys can be known.

* Sections BasicSR alone reads (``logger``, ``path``, ``dist_params``, ``datasets:*`` loader keys) have fixed keys.
* Top level, ``train`` and ``val`` are read by the model: with one of BasicSR's own models every key is checked;
  with a model of ours or of another package, only a key that is a close misspelling of a BasicSR key and that the
  model's own source never names is reported (a custom model may read keys no schema knows).
* Keyword arguments of a network, loss, optimizer, scheduler or dataset are checked against the registered
  class's constructor signature, or, for BasicSR's own dataset classes (which take one ``opt`` dict), against
  the keys their source reads. Classes that take ``**kwargs`` or a dict of ours are not checked.
"""
import difflib
import inspect
import re
from typing import Dict, Iterable, Set

import torch
from basicsr.models import lr_scheduler
from basicsr.models.base_model import BaseModel
from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from ..errors import OptionsError
from ..signature_check import check_kwargs, suggest
from .optimizers import torch_optimizer_class

# Keys of BasicSR 1.4.2's options (basicsr/utils/options.py, train.py, models/*.py), ours added by this package.
TOP_LEVEL = {'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val', 'logger',
             'dist_params', 'find_unused_parameters', 'is_train', 'dist', 'rank', 'world_size', 'auto_resume',
             'root_path'}
TRAIN = {'ema_decay', 'optim_g', 'optim_d', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt',
         'gan_opt', 'ldl_opt', 'net_d_iters', 'net_d_init_iters', 'nonfinite_patience', 'amp', 'channels_last',
         'compile'}
VAL = {'val_freq', 'save_img', 'metrics', 'pbar', 'suffix'}
LOGGER = {'print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb'}
PATH = {'resume_state', 'ignore_resume_networks', 'experiments_root', 'models', 'training_states', 'log',
        'visualization', 'results_root', 'root'}
PATH_PREFIXES = ('pretrain_network_', 'strict_load_', 'param_key_')
DIST_PARAMS = {'backend', 'port', 'timeout'}  # timeout: ours (engine/basicsr/devices.py)
# Read for every dataset by BasicSR's parse_options / build_dataset / build_dataloader / train_pipeline, and ours.
DATASET = {'name', 'type', 'phase', 'scale', 'batch_size_per_gpu', 'num_worker_per_gpu', 'dataset_enlarge_ratio',
           'pin_memory', 'persistent_workers', 'prefetch_mode', 'num_prefetch_queue', 'use_shuffle',
           'on_data_fault'}
CLOSE = 0.8  # difflib ratio above which an unknown key of a custom class is taken for a misspelling

_OPT_READ = re.compile(r"""opt(?:\[|\.get\(|\.pop\()\s*['"](\w+)['"]|['"](\w+)['"]\s+(?:not\s+)?in\s+(?:self\.)?\w*opt""")


def _is_basicsr(cls) -> bool:
    return getattr(cls, '__module__', '').startswith('basicsr.')


def keys_in_source(cls) -> Set[str]:
    """Option keys that ``cls`` and its bases name in their source (``opt['k']``, ``opt.get('k')``, ``'k' in opt``)."""
    keys = set()
    for klass in inspect.getmro(cls):
        if klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        keys.update(a or b for a, b in _OPT_READ.findall(source))
    return keys


def _check_keys(section: Dict, known: Set[str], where: str, prefix: str, strict: bool,
                prefixes: Iterable[str] = (), suffixes: Iterable[str] = (), also_read: Set[str] = frozenset()):
    for key in section:
        key = str(key)
        if key in known or key.startswith(tuple(prefixes)) or key.endswith(tuple(suffixes)) or key in also_read:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=CLOSE)
        if strict or close:
            hint = f' Did you mean {close[0]!r}?' if close else suggest(key, known)
            raise OptionsError(f'{where}: unknown option {prefix}{key}.{hint}')


def _model_class(opt: Dict):
    name = opt.get('model_type')
    return MODEL_REGISTRY.get(name) if name in MODEL_REGISTRY else None


def _check_dataset(phase: str, dataset: Dict, where: str) -> None:
    cls = DATASET_REGISTRY.get(dataset['type']) if dataset.get('type') in DATASET_REGISTRY else None
    if cls is None:
        return
    if _is_basicsr(cls):  # BasicSR's datasets take one opt dict: their source names every key they read
        known = DATASET | keys_in_source(cls) | {'client_keys', 'db_paths'}
        _check_keys(dataset, known, where, f'datasets:{phase}:', strict=True, prefixes=('dataroot_', ))
    else:
        _check_keys(dataset, DATASET, where, f'datasets:{phase}:', strict=False, prefixes=('dataroot_', ),
                    also_read=keys_in_source(cls))


def _check_training_components(opt: Dict, where: str, model_cls) -> None:
    train = opt.get('train') or {}
    for key, value in train.items():
        if not isinstance(value, dict):
            continue
        key = str(key)
        if key.endswith('_opt') and value.get('type') in LOSS_REGISTRY:
            check_kwargs(LOSS_REGISTRY.get(value['type']), value, where, f'train:{key}:')
        elif key.startswith('optim_') and 'type' in value:
            if model_cls is not None and model_cls.get_optimizer is BaseModel.get_optimizer and value['type'] != 'Adam':
                raise OptionsError(f"{where}: train:{key}:type {value['type']!r}: {model_cls.__name__} (BasicSR 1.4.2's "
                                   "BaseModel.get_optimizer) supports only 'Adam'")
            optim = torch_optimizer_class(value['type'])
            if optim is None:
                by_lower = {n.lower(): n for n in dir(torch.optim) if torch_optimizer_class(n) is not None}
                close = difflib.get_close_matches(str(value['type']).lower(), sorted(by_lower), n=1)
                hint = f' Did you mean {by_lower[close[0]]!r}?' if close else ''  # 'Sgd', 'adamw': case slips
                raise OptionsError(f"{where}: train:{key}:type {value['type']!r} is not an optimizer of torch.optim."
                                   f'{hint}')
            check_kwargs(optim, value, where, f'train:{key}:', ignore=('type', 'params'))
    scheduler = train.get('scheduler')
    if isinstance(scheduler, dict) and model_cls is not None and model_cls.setup_schedulers is BaseModel.setup_schedulers:
        classes = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
                   'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}
        if scheduler.get('type') not in classes:
            raise OptionsError(f"{where}: train:scheduler:type {scheduler.get('type')!r} is not one of BasicSR's "
                               f"schedulers ({', '.join(classes)}).{suggest(scheduler.get('type'), classes)}")
        check_kwargs(classes[scheduler['type']], scheduler, where, 'train:scheduler:', ignore=('type', 'optimizer'))


def check_unknown_keys(opt: Dict, where: str, is_train: bool) -> None:
    """Raise ``OptionsError`` for the first unknown key (see the module docstring)."""
    model_cls = _model_class(opt)
    strict = model_cls is not None and _is_basicsr(model_cls)
    model_keys = keys_in_source(model_cls) if model_cls is not None else set()
    _check_keys(opt, TOP_LEVEL, where, '', strict, prefixes=('network_', ), also_read=model_keys)
    for section, known, prefixes, suffixes in (('train', TRAIN, ('optim_', ), ('_opt', )), ('val', VAL, (), ())):
        if isinstance(opt.get(section), dict):
            _check_keys(opt[section], known, where, f'{section}:', strict, prefixes, suffixes, also_read=model_keys)
    for section, known, prefixes in (('logger', LOGGER, ()), ('path', PATH, PATH_PREFIXES),
                                     ('dist_params', DIST_PARAMS, ())):
        if isinstance(opt.get(section), dict):
            _check_keys(opt[section], known, where, f'{section}:', True, prefixes)
    for phase, dataset in (opt.get('datasets') or {}).items():
        if isinstance(dataset, dict):
            _check_dataset(phase, dataset, where)
    if is_train:
        _check_training_components(opt, where, model_cls)
