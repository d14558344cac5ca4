"""Check a BasicSR options file before any work starts, so a bad option stops the run with one clear message
naming the file and the key, instead of a traceback minutes into training.

Checked: the experiment name (a plain folder name under experiments/), the types of BasicSR's numeric and boolean
options and the ones that must be positive (budgets, frequencies, batch and patch sizes, learning rates),
``train:amp``/``channels_last``/``compile``, ``num_gpu`` against the visible GPUs and the launcher, the network's
upscaling factor against ``scale`` and its input channels against ``color: y``, registered ``type`` names (model,
networks, datasets, losses, metrics), metrics whose optional extra is not installed (``requires_extra``), logging to
wandb or TensorBoard without the package, data roots
on disk, and a pretrained checkpoint that does not fit ``network_g``.
"""
import difflib
import inspect
import os
import os.path as osp
from numbers import Number
from typing import Dict, Iterable, List

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from PIL import Image

from ..data_faults import OPTION as DATA_FAULT_OPTION, POLICIES
from .. import optional_packages
from ..errors import OptionsError
from .devices import device_problem
from .networks import build_network_from_options, check_state_dict_matches, read_state_dict
from . import mixed_precision, speed_options
from .nonfinite_guard import OPTION as NONFINITE_OPTION
from .options import apply_force_yml, load_options
from .options_schema import check_unknown_keys

INT = (int, )
NUM = (Number, )
BOOL = (bool, )
STR = (str, )

# Options whose type BasicSR relies on without checking. Paths are ':'-joined keys, '*' matches any dataset.
TYPED_OPTIONS = {
    'name': STR,
    'model_type': STR,
    'scale': INT,
    'manual_seed': INT,
    'datasets:*:gt_size': INT,
    'datasets:*:batch_size_per_gpu': INT,
    'datasets:*:num_worker_per_gpu': INT,
    'datasets:*:dataset_enlarge_ratio': NUM,
    'datasets:*:use_hflip': BOOL,
    'datasets:*:use_rot': BOOL,
    'train:total_iter': INT,
    'train:warmup_iter': INT,
    'train:nonfinite_patience': INT,
    'train:ema_decay': NUM,
    'train:optim_g:lr': NUM,
    'train:optim_d:lr': NUM,
    'train:optim_g:weight_decay': NUM,
    'val:val_freq': INT,
    'val:save_img': BOOL,
    'logger:print_freq': INT,
    'logger:save_checkpoint_freq': INT,
    'logger:use_tb_logger': BOOL,
}
TYPE_NAMES = {INT: 'an integer', NUM: 'a number', BOOL: 'true or false', STR: 'a string'}


def _lookup(opt: Dict, pattern: str) -> Iterable:
    """Yield (concrete key path, value) for every option matching a ':'-joined pattern with '*' wildcards."""
    nodes = [('', opt)]
    for part in pattern.split(':'):
        nxt = []
        for path, node in nodes:
            if not isinstance(node, dict):
                continue
            keys = list(node) if part == '*' else ([part] if part in node else [])
            nxt += [(f'{path}:{k}' if path else str(k), node[k]) for k in keys]
        nodes = nxt
    return nodes


def _check_types(opt: Dict, where: str) -> None:
    for pattern, types in TYPED_OPTIONS.items():
        for path, value in _lookup(opt, pattern):
            if value is None:
                continue
            ok = isinstance(value, types) and not (types != BOOL and isinstance(value, bool))
            if not ok:
                hint = ''
                if types == NUM and isinstance(value, str):
                    hint = f" (YAML reads {value!r} as a string; write it as !!float {value})"
                raise OptionsError(f'{where}: {path} must be {TYPE_NAMES[types]}, got {value!r} '
                                   f'({type(value).__name__}){hint}')
    for path, value in _lookup(opt, f'datasets:*:{DATA_FAULT_OPTION}'):
        if value not in POLICIES:
            raise OptionsError(f'{where}: {path} must be one of {", ".join(POLICIES)}, got {value!r}')
    for path, value in _lookup(opt, f'train:{NONFINITE_OPTION}'):
        if isinstance(value, int) and value < 0:
            raise OptionsError(f'{where}: {path} must be >= 0 (0 turns the non-finite guard off), got {value}')
    if isinstance(opt.get('train'), dict):  # train:amp, train:channels_last, train:compile
        problem = mixed_precision.option_problem(opt['train']) or speed_options.option_problem(opt['train'])
        if problem:
            raise OptionsError(f'{where}: {problem}')
    num_gpu = opt.get('num_gpu', 0)
    if not (num_gpu == 'auto' or (isinstance(num_gpu, int) and not isinstance(num_gpu, bool) and num_gpu >= 0)):
        raise OptionsError(f"{where}: num_gpu must be 0 (CPU), a number of GPUs or 'auto', got {num_gpu!r}")


# Options that must be > 0 (0 or less trains nothing, or fails later: BasicSR's `current_iter % 0`, an empty crop).
POSITIVE_OPTIONS = ('train:total_iter', 'val:val_freq', 'logger:save_checkpoint_freq', 'logger:print_freq',
                    'datasets:*:batch_size_per_gpu', 'datasets:*:gt_size', 'train:optim_*:lr', 'scale')
# Network arguments that name the upscaling factor (SRCNN, FSRCNN, SRResNet, CMDSR: upscale; TSRN: scale).
SCALE_ARGUMENTS = ('upscale', 'upscale_factor', 'scale')
# Network arguments that name the number of input channels.
IN_CHANNEL_ARGUMENTS = ('num_in_ch', 'in_ch', 'in_channels')


def _check_name(name: str, where: str) -> None:
    """The experiment's folder is experiments/<name> (results/<name> for tests): a name with a path separator,
    ``..`` or an absolute path would put it, and what BasicSR archives or overwrites there, elsewhere."""
    if name in ('.', '..') or '/' in name or '\\' in name or os.sep in name or osp.isabs(name):
        raise OptionsError(f'{where}: name {name!r} must be a plain folder name (no path separator, not . or ..): '
                           'the run writes to experiments/<name>')


def _check_positive(opt: Dict, where: str) -> None:
    for pattern in POSITIVE_OPTIONS:
        matches = []
        if pattern == 'train:optim_*:lr':
            for key, value in (opt.get('train') or {}).items():
                if str(key).startswith('optim_') and isinstance(value, dict) and 'lr' in value:
                    matches.append((f'train:{key}:lr', value['lr']))
        else:
            matches = _lookup(opt, pattern)
        for path, value in matches:
            if isinstance(value, Number) and not isinstance(value, bool) and value <= 0:
                raise OptionsError(f'{where}: {path} must be > 0, got {value!r}' + (
                    ' (a run with no iterations trains nothing)' if path == 'train:total_iter' else ''))


def _network_argument(net_opt: Dict, names, cls):
    """(name, value) of the first of ``names`` that ``net_opt`` sets, else that ``cls``'s constructor has with a
    default; (None, None) when neither."""
    for name in names:
        if name in net_opt:
            return name, net_opt[name]
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None, None
    for name in names:
        if name in params and params[name].default is not inspect.Parameter.empty:
            return name, params[name].default
    return None, None


def _network_class(net_opt):
    if isinstance(net_opt, dict) and net_opt.get('type') in ARCH_REGISTRY:
        return ARCH_REGISTRY.get(net_opt['type'])
    return None


def _check_network_scale(opt: Dict, where: str) -> None:
    """A network whose upscaling factor differs from ``scale`` fails at the first loss (sizes differ) or trains
    at the wrong scale."""
    scale = opt.get('scale')
    if not isinstance(scale, int) or isinstance(scale, bool):
        return
    for key in [k for k in opt if str(k).startswith('network_')]:
        cls = _network_class(opt[key])
        if cls is None:
            continue
        name, value = _network_argument(opt[key], SCALE_ARGUMENTS, cls)
        if isinstance(value, int) and not isinstance(value, bool) and value != scale:
            given = 'is' if name in opt[key] else f'defaults to (in {cls.__name__})'
            raise OptionsError(f'{where}: {key}:{name} {given} {value} but scale is {scale}: set {key}:{name}: {scale}')


def _check_color_channels(opt: Dict, where: str) -> None:
    """A dataset read with ``color: y`` gives one channel: a network that takes more fails at its first layer."""
    y_phases = [phase for phase, dataset in (opt.get('datasets') or {}).items()
                if isinstance(dataset, dict) and dataset.get('color') == 'y']
    net_opt = opt.get('network_g')
    cls = _network_class(net_opt)
    if not y_phases or cls is None:
        return
    name, value = _network_argument(net_opt, IN_CHANNEL_ARGUMENTS, cls)
    if isinstance(value, int) and not isinstance(value, bool) and value != 1:
        raise OptionsError(f'{where}: network_g:{name} is {value} but datasets:{y_phases[0]}:color: y gives one '
                           f'channel (Y): set network_g:{name}: 1, or remove color: y to read RGB')


def _check_registered(registry, name, key: str, where: str) -> None:
    if name not in registry:
        close = difflib.get_close_matches(str(name), list(registry._obj_map), n=3)
        hint = f' Did you mean: {", ".join(close)}?' if close else ''
        raise OptionsError(f'{where}: {key} {name!r} is not registered in BasicSR\'s {registry._name} '
                           f'registry.{hint}')


def _check_data_roots(opt: Dict, where: str) -> None:
    for phase, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict):
            raise OptionsError(f'{where}: datasets:{phase} must be a mapping, got {dataset!r}')
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        for key in [k for k in dataset if str(k).startswith('dataroot')]:
            root = dataset[key]
            if root is None:
                continue
            paths = root if isinstance(root, list) else [root]
            for path in paths:
                path = osp.expanduser(str(path))
                if not osp.exists(path):
                    raise OptionsError(f'{where}: datasets:{phase}:{key} {path!r} does not exist '
                                       f'(relative paths are read from {osp.abspath(".")}). '
                                       'For the demo data run: python tools/data/make_demo_data.py')
                if backend == 'lmdb' and not osp.isfile(osp.join(path, 'meta_info.txt')):
                    raise OptionsError(f'{where}: datasets:{phase}:{key} {path!r} is not a BasicSR LMDB '
                                       '(no meta_info.txt); make one with tools/data/make_lmdb.py')


def _check_scheduler(opt: Dict, where: str) -> None:
    """BasicSR's CosineAnnealingRestartLR fails with a TypeError deep in training once the iteration passes
    the sum of its periods (e.g. after raising total_iter for a resume)."""
    train = opt.get('train') or {}
    scheduler = train.get('scheduler') or {}
    if scheduler.get('type') == 'CosineAnnealingRestartLR' and isinstance(train.get('total_iter'), int):
        periods = scheduler.get('periods') or []
        if sum(periods) < train['total_iter']:
            raise OptionsError(f'{where}: train:scheduler:periods {list(periods)} sum to {sum(periods)}, fewer than '
                               f"train:total_iter {train['total_iter']}; CosineAnnealingRestartLR has no learning "
                               'rate after its last period. Make the periods cover total_iter.')


def _check_weights_paths(opt: Dict, where: str) -> None:
    """Losses that need pretrained weights (``*weights_path`` options) take them from a local file: nothing is
    downloaded at run time, so a missing file must stop the run here with a way to get it."""
    for key, value in (opt.get('train') or {}).items():
        if not (str(key).endswith('_opt') and isinstance(value, dict)):
            continue
        for option, path in value.items():
            if str(option).endswith('weights_path') and not (isinstance(path, str) and osp.isfile(path)):
                raise OptionsError(
                    f'{where}: train:{key}:{option} {path!r} is not a file. This loss needs pretrained weights and '
                    'never downloads them: fetch them on a machine with internet (for VGG19, torchvision\'s '
                    "vgg19-dcbb9e9d.pth: python -c \"import torchvision; torchvision.models.vgg19(weights='DEFAULT')\""
                    f' puts it in ~/.cache/torch/hub/checkpoints/), copy the file to {path!r}, or remove train:{key}.')


def _check_patch_sizes(opt: Dict, where: str) -> None:
    scale = opt.get('scale')
    for phase, dataset in (opt.get('datasets') or {}).items():
        gt_size = dataset.get('gt_size') if isinstance(dataset, dict) else None
        if isinstance(scale, int) and isinstance(gt_size, int) and gt_size % scale:
            raise OptionsError(f'{where}: datasets:{phase}:gt_size {gt_size} is not divisible by scale {scale}; '
                               f'the LR patch would be {gt_size / scale:g} pixels. Use a multiple of {scale}.')


def _first_pair_sizes(dataset: Dict):
    """((lq path, (w, h)), (gt path, (w, h))) of the first GT image and its LQ partner, read from the file headers
    (disk) or ``meta_info.txt`` (BasicSR LMDB); None when the layout is not one this check knows."""
    gt_root, lq_root = str(dataset['dataroot_gt']), str(dataset['dataroot_lq'])
    if (dataset.get('io_backend') or {}).get('type', 'disk') == 'lmdb':
        sizes = []
        for root in (lq_root, gt_root):
            with open(osp.join(root, 'meta_info.txt')) as f:
                name, shape = f.readline().split()[:2]
            h, w = (int(v) for v in shape.strip('()').split(',')[:2])
            sizes.append((f'{root}:{osp.splitext(name)[0]}', (w, h)))
        return tuple(sizes)
    if dataset.get('meta_info_file') or not osp.isdir(gt_root) or not osp.isdir(lq_root):
        return None
    gt_files = sorted(f for f in os.listdir(gt_root) if osp.isfile(osp.join(gt_root, f)))
    lq_files = [f for f in os.listdir(lq_root) if osp.isfile(osp.join(lq_root, f))]
    if len(gt_files) != len(lq_files):
        raise OptionsError(f'dataroot_gt {gt_root!r} has {len(gt_files)} files but dataroot_lq {lq_root!r} has '
                           f'{len(lq_files)}: paired data needs one LQ image per GT image')
    if not gt_files:
        raise OptionsError(f'dataroot_gt {gt_root!r} is empty')
    stem, ext = osp.splitext(gt_files[0])
    lq_name = f"{dataset.get('filename_tmpl', '{}').format(stem)}{ext}"
    gt_path, lq_path = osp.join(gt_root, gt_files[0]), osp.join(lq_root, lq_name)
    if not osp.isfile(lq_path):
        raise OptionsError(f'dataroot_lq {lq_root!r} has no {lq_name!r} for GT image {gt_path!r} '
                           f"(filename_tmpl {dataset.get('filename_tmpl', '{}')!r})")
    sizes = []
    for path in (lq_path, gt_path):
        try:
            with Image.open(path) as img:
                sizes.append((path, img.size))
        except OSError as err:
            raise OptionsError(f'cannot read image {path!r}: {err}') from err
    return tuple(sizes)


def _check_data_matches_scale(opt: Dict, where: str) -> None:
    """For BasicSR's paired datasets (and subclasses): GT = scale x LQ on the first pair, and gt_size fits it."""
    scale = opt.get('scale', 1)
    for phase, dataset in (opt.get('datasets') or {}).items():
        cls = DATASET_REGISTRY.get(dataset['type']) if dataset.get('type') in DATASET_REGISTRY else None
        if not (cls and issubclass(cls, PairedImageDataset) and dataset.get('dataroot_gt') and dataset.get('dataroot_lq')):
            continue
        try:
            pair = _first_pair_sizes(dataset)
        except OptionsError as err:
            raise OptionsError(f'{where}: datasets:{phase}: {err}') from err
        if pair is None:
            continue
        (lq, (w, h)), (gt, (gw, gh)) = pair
        if (gw, gh) != (w * scale, h * scale):
            ratio = f'x{gw / w:g}' if gw / w == gh / h else 'not a whole scale'
            raise OptionsError(f'{where}: scale {scale} does not match datasets:{phase}: LQ {lq} is {w}x{h} and GT '
                               f'{gt} is {gw}x{gh} ({ratio}). Set scale to the data\'s, or point dataroot_lq to the '
                               f'x{scale} images.')
        gt_size = dataset.get('gt_size')
        if isinstance(gt_size, int) and dataset.get('phase', phase).startswith('train') and gt_size > min(gw, gh):
            raise OptionsError(f'{where}: datasets:{phase}:gt_size {gt_size} is larger than the GT image {gt} '
                               f'({gw}x{gh}); BasicSR would fail on the first crop. Use at most {min(gw, gh)}.')


def _check_components(opt: Dict, where: str, is_train: bool) -> None:
    if 'model_type' in opt:
        _check_registered(MODEL_REGISTRY, opt['model_type'], 'model_type', where)
    for phase, dataset in (opt.get('datasets') or {}).items():
        if 'type' in dataset:
            _check_registered(DATASET_REGISTRY, dataset['type'], f'datasets:{phase}:type', where)
    for key, value in (opt.get('train') or {}).items() if is_train else []:
        if str(key).endswith('_opt') and isinstance(value, dict) and 'type' in value:
            _check_registered(LOSS_REGISTRY, value['type'], f'train:{key}:type', where)
    for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        if isinstance(metric, dict) and 'type' in metric:
            _check_registered(METRIC_REGISTRY, metric['type'], f'val:metrics:{name}:type', where)
            install = missing_extra(METRIC_REGISTRY.get(metric['type']))
            if install:
                raise OptionsError(f"{where}: val:metrics:{name}:type {metric['type']!r} needs an optional extra "
                                   f'that is not installed: {install} (or remove val:metrics:{name})')


def missing_extra(component) -> str:
    """The install line of the optional extra a registered component declares (``component.requires_extra =
    (module names, install line)``) when one of its modules cannot be imported; '' when all can, or none is declared.
    Only looks the modules up (``importlib.util.find_spec``), imports nothing."""
    modules, install = getattr(component, 'requires_extra', ((), ''))
    return install if not all(optional_packages.is_installed(m) for m in modules) else ''


def _check_loggers(opt: Dict, where: str) -> None:
    """``logger:wandb:project`` logs to Weights & Biases (``wandb``, an optional extra), which BasicSR feeds from the
    TensorBoard logs (it asserts ``use_tb_logger: true``); ``use_tb_logger`` needs ``tensorboard``."""
    logger = opt.get('logger') or {}
    wandb = logger.get('wandb')
    if isinstance(wandb, dict) and wandb.get('project') is not None and 'debug' not in str(opt.get('name')):
        optional_packages.require('wandb', 'logger:wandb:project', where, 'set logger:wandb:project: ~')
        if logger.get('use_tb_logger') is not True:
            raise OptionsError(f'{where}: logger:wandb needs logger:use_tb_logger: true (BasicSR sends the TensorBoard '
                               'logs to wandb)')
    if logger.get('use_tb_logger'):
        optional_packages.require('tensorboard', 'logger:use_tb_logger', where, 'set logger:use_tb_logger: false')


def _check_networks(opt: Dict, where: str) -> None:
    for key in [k for k in opt if str(k).startswith('network_')]:
        net = build_network_from_options(opt, key, source=where)
        suffix = key[len('network_'):]
        ckpt = (opt.get('path') or {}).get(f'pretrain_network_{suffix}')
        if ckpt:
            ckpt = osp.expanduser(ckpt)
            if not osp.isfile(ckpt):
                raise OptionsError(f'{where}: path:pretrain_network_{suffix} {ckpt!r} does not exist')
            if (opt.get('path') or {}).get(f'strict_load_{suffix}', True):
                param_key = (opt.get('path') or {}).get(f'param_key_{suffix}', 'params')
                state, _ = read_state_dict(ckpt, param_key)
                check_state_dict_matches(net, state, ckpt, what=f'{key} of {where}')


def _check_devices(opt: Dict, where: str, launcher: str) -> None:
    problem = device_problem(opt, launcher)
    if problem:
        raise OptionsError(f'{where}: {problem}')


def check_basicsr_options(path: str, is_train: bool = True, force_yml: List[str] = (), launcher: str = 'none') -> Dict:
    """Check a BasicSR options file (after ``--force_yml`` overrides); raise ``OptionsError`` on the first problem.

    ``launcher``: BasicSR's ``--launcher`` (``num_gpu`` is checked against it and the visible GPUs).

    The registries must hold the research lines' components (``import plugins``, as the tools do first).
    Returns the options dict as checked.
    """
    if path is None:
        raise OptionsError('no options file given (-opt X.yml)')
    opt = apply_force_yml(load_options(path), list(force_yml), path)
    for key in ('name', 'model_type', 'datasets', 'path') + (('train', ) if is_train else ()):
        if key not in opt:
            raise OptionsError(f'{path}: the required option {key!r} is missing')
    if not isinstance(opt['name'], str) or not opt['name']:  # e.g. a row that forgot its name over a base's `name: ~`
        raise OptionsError(f'{path}: name must be the experiment\'s name (a non-empty string), got {opt["name"]!r}')
    _check_name(opt['name'], path)
    _check_types(opt, path)
    _check_positive(opt, path)
    _check_devices(opt, path, launcher)
    _check_components(opt, path, is_train)
    _check_patch_sizes(opt, path)
    if is_train:
        _check_scheduler(opt, path)
        _check_weights_paths(opt, path)
    _check_data_roots(opt, path)
    _check_data_matches_scale(opt, path)
    check_unknown_keys(opt, path, is_train)
    _check_loggers(opt, path)
    _check_networks(opt, path)
    _check_network_scale(opt, path)
    _check_color_channels(opt, path)
    return opt
