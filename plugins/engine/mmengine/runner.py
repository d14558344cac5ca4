"""mmengine/MMagic entry points behind ``tools/train.py`` and ``tools/test.py`` for ``*.py`` configs.

The flags are those of MMagic's own ``tools/train.py`` and ``tools/test.py``; the training, validation, checkpoints,
resume and distributed launch are mmengine's ``Runner``::

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp [--amp-dtype {float16,bfloat16}]]
                                 [--auto-scale-lr] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
                                 [--local_rank N] [--allow-fresh-start]
    python tools/test.py CONFIG CHECKPOINT [--out METRICS.json] [--work-dir DIR] [--cfg-options k=v ...]
                                 [--launcher ...]      (``--checkpoint CHECKPOINT`` works too)

``--auto-scale-lr`` turns on the config's ``auto_scale_lr`` (``base_batch_size``: the total batch its learning
rates are for); mmengine's Runner then multiplies every optimizer's learning rate by (processes x batch size) /
``base_batch_size``. MMagic 1.2's own ``tools/train.py`` accepts the flag but never reads it (OpenMMLab's other
toolboxes set ``auto_scale_lr.enable``, as here). ``--out`` writes the test metrics to a JSON, YAML or pickle file
(by its extension) as MMagic's ``tools/test.py`` does, with ``mmengine.dump``.

``--amp`` makes every optimizer wrapper of the config a ``DeviceAmpOptimWrapper`` (``optim_wrappers.py``):
MMagic's own ``tools/train.py`` sets ``optim_wrapper.type = 'AmpOptimWrapper'`` at the top of the config, which
``MultiOptimWrapperConstructor`` (our inpaintors' generator + discriminator) cannot build.

The research lines' MMagic-side components register when a config's ``custom_imports`` imports them (every config
under ``options/mmagic/`` names the modules it needs); our hooks (``engine/mmengine/hooks.py``) and optimizer
wrappers are imported here.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .. import resume_policy
from ..errors import OptionsError
from . import hooks  # noqa: F401  (registers NonFiniteGuardHook and TorchRandomStateHook)
from .config_check import check_mmengine_config
from .optim_wrappers import AMP_DTYPES, DeviceAmpOptimWrapper

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('config', help='mmengine config file (.py), e.g. options/mmagic/classic/srcnn_x2_demo.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: the config\'s work_dir, '
                        'else ./work_dirs/<config stem>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_iters=10 '
                        'train_dataloader.batch_size=4 (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher: pytorch under torchrun, slurm under srun, mpi under mpirun')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def _load_config(args: argparse.Namespace, phases: Tuple[str, ...]):
    """Read the config, apply the command line over it, and check what can be checked before the Runner starts
    (the data folders of the dataloaders of ``phases`` only)."""
    if not osp.isfile(args.config):
        raise OptionsError(f'config file {args.config!r} not found (expected an mmengine config such as '
             'options/mmagic/classic/srcnn_x2_demo.py)')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = read_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    # The configs under options/mmagic set it too; a config without it would build from mmengine's registries.
    cfg.default_scope = cfg.get('default_scope') or 'mmagic'
    check_mmengine_config(cfg, args.config, phases)
    return cfg


def read_config(path: str):
    """mmengine's ``Config.fromfile``, with a Python syntax error in the config or one of its ``_base_`` files
    reported as ``OptionsError`` naming that file and line (mmengine's own message says ``<unknown>``)."""
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        raise OptionsError(_syntax_error_line(path, err)) from err


def _syntax_error_line(path: str, err: SyntaxError, seen: tuple = ()) -> str:
    """``file:line: ...`` for the first file of ``path``'s ``_base_`` chain (itself first) that does not parse."""
    import ast
    try:
        with open(path, encoding='utf-8') as f:
            ast.parse(f.read(), filename=path)
    except SyntaxError as own:
        return f'{path}:{own.lineno}: Python syntax error in the config: {own.msg}' + (
            f' ({own.text.strip()})' if own.text and own.text.strip() else '')
    except OSError:
        pass
    else:
        try:
            bases = Config._get_base_files(path)
        except Exception:  # noqa: BLE001 - the base list itself cannot be read: report the file
            bases = []
        for base in bases:
            base_path = osp.normpath(osp.join(osp.dirname(path), base)) if '::' not in base else None
            if base_path and osp.isfile(base_path) and base_path not in seen:
                line = _syntax_error_line(base_path, err, seen + (path, ))
                if line:
                    return line
        if seen:
            return ''
    return f'{path}: Python syntax error in the config or one of its _base_ files: {err.msg} (line {err.lineno})'


def _build_runner(cfg):
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def _optim_wrapper_entries(optim_wrapper) -> List[Tuple[str, dict]]:
    """(config entry, wrapper config) of each optimizer wrapper: the one of a plain ``optim_wrapper`` (it names an
    ``optimizer``), else every sub-dict that names one (``MultiOptimWrapperConstructor``'s ``generator``, ``disc``
    ...)."""
    if 'optimizer' in optim_wrapper:
        return [('optim_wrapper', optim_wrapper)]
    return [(f'optim_wrapper.{name}', sub) for name, sub in optim_wrapper.items()
            if isinstance(sub, dict) and 'optimizer' in sub]


def enable_amp(cfg, dtype: Optional[str] = None) -> None:
    """``--amp``: every optimizer wrapper of ``cfg`` becomes a ``DeviceAmpOptimWrapper`` in ``dtype`` (None: the
    config's own ``dtype`` if it has one, else float16). Wrappers of other types than ``OptimWrapper`` and
    ``AmpOptimWrapper`` are refused."""
    entries = _optim_wrapper_entries(cfg.get('optim_wrapper') or {})
    if not entries:
        raise OptionsError('--amp: the config has no optim_wrapper with an optimizer to wrap')
    amp_types = ('AmpOptimWrapper', DeviceAmpOptimWrapper.__name__)
    for entry, wrapper in entries:
        kind = wrapper.get('type', 'OptimWrapper')
        if kind not in ('OptimWrapper', *amp_types):
            raise OptionsError(f'--amp works with OptimWrapper (and AmpOptimWrapper) optimizer wrappers; {entry}.type '
                               f'is {kind!r}')
        if kind in amp_types:
            print(f'AMP training is already enabled in the config ({entry}.type {kind}).', flush=True)
        wrapper.type = DeviceAmpOptimWrapper.__name__
        wrapper.dtype = dtype or str(wrapper.get('dtype') or 'float16').replace('torch.', '')
        wrapper.setdefault('loss_scale', 'dynamic')


def _check_devices(cfg, args: argparse.Namespace) -> None:
    """What the machine must have for the config and the flags, checked before the Runner starts."""
    distributed = args.launcher != 'none'
    if cfg.get('sync_bn') and distributed and not torch.cuda.is_available():
        raise OptionsError(f"sync_bn={cfg.sync_bn!r} needs GPUs: torch's SyncBatchNorm runs on CUDA only; on CPU "
                           'processes leave it out (--cfg-options sync_bn=None)')
    if args.amp_dtype == 'bfloat16' and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise OptionsError('--amp-dtype bfloat16: this GPU has no bfloat16 support (compute capability < 8.0); use '
                           'float16')


def train_main(argv: List[str]) -> None:
    """``tools/train.py CONFIG ...``: train with mmengine's Runner."""
    parser = argparse.ArgumentParser(prog='tools/train.py', description='Train an mmengine/MMagic config.')
    _common_args(parser)
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir (model, optimizer, iteration); '
                        'starts from scratch when there is none')
    parser.add_argument('--amp', action='store_true',
                        help='mixed-precision training: autocast on the model\'s device (GPU or CPU) for every '
                        'optimizer of the config (generator and discriminator too), float16 with a dynamic loss scaler')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES,
                        help='the autocast dtype of --amp (implies --amp): float16 (default) or bfloat16 (no loss '
                        'scaling; GPUs of compute capability >= 8.0, and the useful one on a CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rates by (processes x batch size) / auto_scale_lr.base_batch_size '
                        'of the config (mmengine\'s auto_scale_lr)')
    parser.add_argument(resume_policy.FLAG, action='store_true',
                        help='with --resume: when checkpoints exist but none can be read, start again from iteration '
                        '0 (without it the run stops and lists them)')
    args = parser.parse_args(argv)
    resume_policy.take_flag(argv)  # read by the resume of plugins/compat/mmengine.py
    cfg = _load_config(args, ('train', 'val'))
    _check_devices(cfg, args)
    if args.amp or args.amp_dtype:
        enable_amp(cfg, args.amp_dtype)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg, args.config)
    if args.resume:
        # With load_from unset, the Runner resumes from the work dir's last_checkpoint (mmengine's resume='auto').
        cfg.resume = True

    runner = _build_runner(cfg)
    print(f'Working directory: {cfg.work_dir}', flush=True)
    runner.train()


def enable_auto_scale_lr(cfg, source: str) -> None:
    """``--auto-scale-lr``: ``cfg.auto_scale_lr.enable = True``; ``OptionsError`` when the config has no
    ``auto_scale_lr`` with a positive ``base_batch_size``."""
    scale = cfg.get('auto_scale_lr')
    base = scale.get('base_batch_size') if isinstance(scale, dict) else None
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        found = 'has no auto_scale_lr' if scale is None else f'has auto_scale_lr={scale!r}'
        raise OptionsError(f'--auto-scale-lr: config {source!r} {found}; it needs auto_scale_lr = dict('
                           'base_batch_size=N), N the total batch size its learning rates are for (add it to the '
                           'config or give --cfg-options auto_scale_lr.base_batch_size=N)')
    scale.enable = True


DUMP_FORMATS = ('.json', '.yaml', '.yml', '.pkl', '.pickle')


class DumpMetricsHook(Hook):
    """``tools/test.py --out FILE``: write the test metrics to ``FILE`` with ``mmengine.dump`` (the format from the
    extension), on the main process, as MMagic's ``tools/test.py`` does."""

    priority = 'LOWEST'

    def __init__(self, path: str):
        self.path = path

    def after_test_epoch(self, runner, metrics=None) -> None:
        import mmengine
        from mmengine.dist import is_main_process
        if metrics is not None and is_main_process():
            folder = osp.dirname(osp.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            mmengine.dump({k: (v.item() if hasattr(v, 'item') else v) for k, v in metrics.items()}, self.path)
            runner.logger.info(f'Test metrics written to {self.path}')


def test_main(argv: List[str]) -> None:
    """``tools/test.py CONFIG CHECKPOINT ...`` (or ``--checkpoint CHECKPOINT``, as before): evaluate a checkpoint
    with the config's test_* setup; ``--out FILE`` also writes the metrics there."""
    parser = argparse.ArgumentParser(prog='tools/test.py', description='Test a checkpoint with an mmengine config.')
    _common_args(parser)
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint file (.pth) written by tools/train.py (MMagic\'s positional form)')
    parser.add_argument('--checkpoint', dest='checkpoint_flag', default=None, metavar='CHECKPOINT',
                        help='the same, as a flag')
    parser.add_argument('--out', default=None, help='also write the test metrics to this file (.json, .yaml or '
                        '.pkl, as MMagic\'s tools/test.py)')
    args = parser.parse_args(argv)
    resume_policy.take_flag([])
    if args.checkpoint and args.checkpoint_flag and args.checkpoint != args.checkpoint_flag:
        raise OptionsError(f'two checkpoints given: {args.checkpoint!r} and --checkpoint {args.checkpoint_flag!r}; '
                           'give one')
    args.checkpoint = args.checkpoint or args.checkpoint_flag
    if not args.checkpoint:
        raise OptionsError('give the checkpoint to test: python tools/test.py CONFIG CHECKPOINT (e.g. '
                           'work_dirs/<config stem>/iter_300.pth)')
    if args.out and osp.splitext(args.out)[1].lower() not in DUMP_FORMATS:
        raise OptionsError(f'--out {args.out!r}: the file name must end in {", ".join(DUMP_FORMATS)} (the format '
                           'mmengine.dump writes)')
    if not osp.isfile(args.checkpoint):
        raise OptionsError(f'checkpoint {args.checkpoint!r} not found (expected a .pth written by tools/train.py, '
             'e.g. work_dirs/<config stem>/iter_300.pth)')
    cfg = _load_config(args, ('test', ))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    missing = [f'test_{key}' for key in ('dataloader', 'cfg', 'evaluator') if cfg.get(f'test_{key}') is None]
    if missing:
        raise OptionsError(f'config {args.config!r} has no {", ".join(missing)}: tools/test.py needs test_dataloader, '
                           'test_cfg and test_evaluator (they may repeat the val_* entries)')
    runner = _build_runner(cfg)
    if args.out:
        runner.register_hook(DumpMetricsHook(args.out), 'LOWEST')
    runner.test()
