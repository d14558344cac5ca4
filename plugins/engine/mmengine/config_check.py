"""Checks of an mmengine config before the Runner builds anything, as ``engine/basicsr/options_check.py`` does for
BasicSR options: a ``type`` that no registry holds and an argument that the named class does not take (each with the
closest name), data folders that do not exist, the values of the reliability settings (``on_data_fault``, the
non-finite guard's patience) and of the distributed ones (``sync_bn``, ``env_cfg.dist_cfg.timeout``), a training
budget that is not positive (``train_cfg.max_iters``), a visualizer backend whose package is missing (wandb,
TensorBoard), dataloader keys that neither mmengine nor torch's
``DataLoader`` takes (``batch_sze``), and optimizer arguments that must be numbers (``lr='1e-3'``) or positive. Each
problem is one ``OptionsError`` naming the config entry.

Which registry a ``type`` is looked up in follows mmengine's Runner: ``model`` and everything inside it in MODELS,
``dataset``/``datasets`` in DATASETS, ``pipeline`` in TRANSFORMS, ``sampler`` in DATA_SAMPLERS, ``metrics`` in
METRICS, and so on. Classes that take ``**kwargs`` (most MMagic models) are not checked argument by argument.
"""
import difflib
import os.path as osp
from numbers import Number
from typing import Any, Dict, Optional

import mmagic.registry

from .. import optional_packages
from ..data_faults import OPTION as DATA_FAULT_OPTION, POLICIES
from ..errors import OptionsError
from ..nonfinite import valid_patience
from ..signature_check import check_kwargs

# Top-level config entries -> registry name (None: a plain dict whose children may name a registry).
TOP_LEVEL = {
    'model': 'MODELS', 'train_dataloader': None, 'val_dataloader': None, 'test_dataloader': None,
    'val_evaluator': 'EVALUATORS', 'test_evaluator': 'EVALUATORS', 'optim_wrapper': 'OPTIM_WRAPPERS',
    'param_scheduler': 'PARAM_SCHEDULERS', 'default_hooks': 'HOOKS', 'custom_hooks': 'HOOKS',
    'train_cfg': 'LOOPS', 'val_cfg': 'LOOPS', 'test_cfg': 'LOOPS', 'model_wrapper_cfg': 'MODEL_WRAPPERS',
}
# A key inside any entry -> the registry of the dicts under it.
CHILD_KEYS = {
    'dataset': 'DATASETS', 'datasets': 'DATASETS', 'pipeline': 'TRANSFORMS', 'transforms': 'TRANSFORMS',
    'sampler': 'DATA_SAMPLERS', 'batch_sampler': 'DATA_SAMPLERS', 'metrics': 'METRICS',
    'optimizer': 'OPTIMIZERS', 'data_preprocessor': 'MODELS',
}
# Read by mmengine's builders and the Runner themselves, not passed to the class.
NOT_CLASS_ARGUMENTS = {'type', '_scope_', 'constructor', 'paramwise_cfg', 'convert_to_iter_based', 'priority'}


def _registries() -> Dict[str, Any]:
    return {name: getattr(mmagic.registry, name) for name in set(TOP_LEVEL.values()) | set(CHILD_KEYS.values()) if name}


def _known_names(registry) -> set:
    names = set()
    while registry is not None:
        names |= set(registry.module_dict)
        registry = registry.parent
    return names


def _check_node(node: Any, path: str, registry, registries: Dict, where: str) -> None:
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            _check_node(item, f'{path}[{index}]', registry, registries, where)
        return
    if not isinstance(node, dict):
        return
    if registry is not None and 'type' in node:
        _check_class(node, path, registry, where)
    if registry is not None and registry.name == 'dataset':
        _check_data_folders(node, path, where)
    for key, value in node.items():
        child = CHILD_KEYS.get(str(key))
        _check_node(value, f'{path}.{key}', registries[child] if child else registry, registries, where)


def _check_class(node: Dict, path: str, registry, where: str) -> None:
    cls = node['type']
    if isinstance(cls, str):
        name = cls.split('.')[-1]  # a scoped name, 'mmengine.OptimWrapper', is looked up without its scope
        cls = registry.get(cls)
        if cls is None:
            close = difflib.get_close_matches(name, sorted(_known_names(registry)), n=3)
            hint = f' Did you mean: {", ".join(close)}?' if close else ''
            raise OptionsError(f'{where}: {path}.type {name!r} is not registered in the {registry.scope}::'
                               f'{registry.name} registry.{hint}')
    kwargs = {k: v for k, v in node.items() if k not in NOT_CLASS_ARGUMENTS}
    check_kwargs(cls, kwargs, where, prefix=f'{path}.')


def _check_data_folders(dataset: Dict, path: str, where: str) -> None:
    root = dataset.get('data_root')
    if not isinstance(root, str) or not root:
        return
    folders = [(f'{path}.data_root', root)] + [
        (f'{path}.data_prefix.{key}', osp.join(root, sub))
        for key, sub in (dataset.get('data_prefix') or {}).items() if isinstance(sub, str) and sub]
    for entry, folder in folders:
        if not osp.exists(osp.expanduser(folder)):
            hint = ('For the demo data run: python tools/data/make_demo_data.py' if 'demo' in folder else
                    'datasets/README.md gives the layout of each data set')
            raise OptionsError(f'{where}: {entry}: {folder!r} does not exist (relative paths are read from '
                               f'{osp.abspath(".")}). {hint}')


def _check_reliability_values(cfg, where: str) -> None:
    """``on_data_fault`` of every dataloader and the non-finite guard's patience."""
    for phase in ('train', 'val', 'test'):
        loaders = cfg.get(f'{phase}_dataloader')
        for index, loader in enumerate(loaders if isinstance(loaders, (list, tuple)) else [loaders]):
            value = loader.get(DATA_FAULT_OPTION, 'stop') if isinstance(loader, dict) else 'stop'
            if value not in POLICIES:
                entry = f'{phase}_dataloader' + (f'[{index}]' if isinstance(loaders, (list, tuple)) else '')
                raise OptionsError(f'{where}: {entry}.{DATA_FAULT_OPTION} must be one of {", ".join(POLICIES)}, '
                                   f'got {value!r}')
    guard = (cfg.get('default_hooks') or {}).get('nonfinite_guard') or {}
    patience = guard.get('patience', 0)
    if not valid_patience(patience):
        raise OptionsError(f'{where}: default_hooks.nonfinite_guard.patience must be an integer >= 0 (0 turns the '
                           f'guard off), got {patience!r}')


SYNC_BN = ('torch', 'mmcv')  # what mmengine's convert_sync_batchnorm takes


def _check_distributed_values(cfg, where: str) -> None:
    """``sync_bn`` (mmengine reads it only under a launcher, so a misspelt value would pass unnoticed on one
    process) and the collective timeout, in seconds."""
    sync_bn = cfg.get('sync_bn')
    if sync_bn is not None and sync_bn not in SYNC_BN:
        raise OptionsError(f"{where}: sync_bn must be 'torch' (torch.nn.SyncBatchNorm), 'mmcv' or None, got "
                           f'{sync_bn!r}')
    timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise OptionsError(f'{where}: env_cfg.dist_cfg.timeout must be a number of seconds > 0 (how long a rank waits '
                           f'in a collective, e.g. 1800), got {timeout!r}')


# Dataloader keys mmengine's Runner.build_dataloader reads itself (the rest go to torch's DataLoader), and ours.
RUNNER_DATALOADER_KEYS = {'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
                          'num_batch_per_epoch', 'disable_subprocess_warning', DATA_FAULT_OPTION}
# Optimizer arguments that must be positive numbers.
POSITIVE_OPTIMIZER_ARGUMENTS = ('lr', )


def _dataloaders(cfg, phases):
    """(config entry, dataloader dict) of every dataloader of ``phases``."""
    for phase in phases:
        loaders = cfg.get(f'{phase}_dataloader')
        for index, loader in enumerate(loaders if isinstance(loaders, (list, tuple)) else [loaders]):
            if isinstance(loader, dict):
                yield f'{phase}_dataloader' + (f'[{index}]' if isinstance(loaders, (list, tuple)) else ''), loader


def _check_dataloader_arguments(cfg, where: str, phases) -> None:
    """A dataloader's keys against what mmengine reads plus torch's ``DataLoader`` signature (a misspelt
    ``batch_sze`` would otherwise reach ``DataLoader`` as a TypeError once the Runner builds it), and a batch size
    that is a positive integer."""
    from torch.utils.data import DataLoader
    for entry, loader in _dataloaders(cfg, phases):
        check_kwargs(DataLoader, {k: v for k, v in loader.items() if k not in RUNNER_DATALOADER_KEYS}, where,
                     f'{entry}.', ignore=())
        size = loader.get('batch_size')
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
            raise OptionsError(f'{where}: {entry}.batch_size must be an integer > 0, got {size!r}')


def _check_budget(cfg, where: str) -> None:
    """``train_cfg.max_iters`` / ``max_epochs``: a run of 0 or fewer trains nothing and still exits 0."""
    train_cfg = cfg.get('train_cfg') or {}
    for key in ('max_iters', 'max_epochs', 'val_interval'):
        value = train_cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise OptionsError(f'{where}: train_cfg.{key} must be an integer > 0, got {value!r}'
                               + (' (a run with no iterations trains nothing)' if key != 'val_interval' else ''))


def _check_optimizer_numbers(node: Any, path: str, where: str) -> None:
    """Every ``optimizer`` dict under ``optim_wrapper``: arguments whose default in the optimizer's signature is a
    number must be numbers (``lr='1e-3'`` is a string that torch would compare with 0 and fail), and ``lr`` > 0."""
    if isinstance(node, dict):
        optimizer = node.get('optimizer')
        if isinstance(optimizer, dict):
            _check_optimizer(optimizer, f'{path}.optimizer', where)
        for key, value in node.items():
            if key != 'optimizer' and isinstance(value, dict):
                _check_optimizer_numbers(value, f'{path}.{key}', where)


def _check_optimizer(optimizer: Dict, path: str, where: str) -> None:
    import inspect
    cls = optimizer.get('type')
    if isinstance(cls, str):
        cls = mmagic.registry.OPTIMIZERS.get(cls)
    try:
        params = inspect.signature(cls).parameters if cls is not None else {}
    except (TypeError, ValueError):
        params = {}
    for key, value in optimizer.items():
        default = params[key].default if key in params else None
        numeric = key in POSITIVE_OPTIMIZER_ARGUMENTS or (isinstance(default, Number) and not isinstance(default, bool))
        if not numeric or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, Number):
            hint = ' (write it without quotes)' if isinstance(value, str) else ''
            raise OptionsError(f'{where}: {path}.{key} must be a number, got {value!r} ({type(value).__name__}){hint}')
        if key in POSITIVE_OPTIMIZER_ARGUMENTS and value <= 0:
            raise OptionsError(f'{where}: {path}.{key} must be > 0, got {value!r}')


VIS_BACKEND_PACKAGES = {'WandbVisBackend': 'wandb', 'TensorboardVisBackend': 'tensorboard'}


def _check_vis_backends(cfg, where: str) -> None:
    """A visualizer backend whose package is missing (``WandbVisBackend``: wandb, an optional extra;
    ``TensorboardVisBackend``: tensorboard) would fail when the Runner builds its visualizer."""
    visualizer = cfg.get('visualizer') or {}
    for path, backends in (('visualizer.vis_backends', visualizer.get('vis_backends')),
                           ('vis_backends', cfg.get('vis_backends'))):
        for index, backend in enumerate(backends or []):
            module = VIS_BACKEND_PACKAGES.get(backend.get('type')) if isinstance(backend, dict) else None
            if module:
                optional_packages.require(module, f"{path}[{index}] ({backend['type']})", where,
                                          f'remove it from {path}')


def check_mmengine_config(cfg, where: str, phases: Optional[tuple] = None) -> None:
    """Raise ``OptionsError`` for the first problem of ``cfg`` (an mmengine ``Config``). ``phases`` limits the data
    checks to some dataloaders (``('test',)`` for tools/test.py); every class is checked anyway."""
    _check_reliability_values(cfg, where)
    _check_distributed_values(cfg, where)
    _check_vis_backends(cfg, where)
    if phases is None or 'train' in phases:
        _check_budget(cfg, where)
    _check_dataloader_arguments(cfg, where, phases or ('train', 'val', 'test'))
    _check_optimizer_numbers(cfg.get('optim_wrapper'), 'optim_wrapper', where)
    registries = _registries()
    for key, registry_name in TOP_LEVEL.items():
        if key not in cfg or cfg[key] is None:
            continue
        if key.endswith('_dataloader') and phases is not None and key.split('_')[0] not in phases:
            continue
        _check_node(cfg[key], key, registries[registry_name] if registry_name else None, registries, where)
