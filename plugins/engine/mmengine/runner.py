"""mmengine/MMagic entry points behind ``tools/train.py`` and ``tools/test.py`` for ``*.py`` configs.

The flags are those of MMagic's own ``tools/train.py`` and ``tools/test.py``; the training, validation, checkpoints,
resume and distributed launch are mmengine's ``Runner``::

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--cfg-options k=v ...]
                                 [--launcher {none,pytorch,slurm,mpi}] [--local_rank N]
    python tools/test.py CONFIG --checkpoint CKPT [--work-dir DIR] [--cfg-options k=v ...] [--launcher ...]

The research lines' MMagic-side components register when a config's ``custom_imports`` imports them (every config
under ``options/mmagic/`` names the modules it needs); our hooks (``engine/mmengine/hooks.py``) are imported here.
"""
import argparse
import os
import os.path as osp
from typing import List, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..errors import OptionsError
from . import hooks  # noqa: F401  (registers NonFiniteGuardHook and TorchRandomStateHook)
from .config_check import check_mmengine_config

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
    cfg = Config.fromfile(args.config)
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


def _build_runner(cfg):
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def train_main(argv: List[str]) -> None:
    """``tools/train.py CONFIG ...``: train with mmengine's Runner."""
    parser = argparse.ArgumentParser(prog='tools/train.py', description='Train an mmengine/MMagic config.')
    _common_args(parser)
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir (model, optimizer, iteration); '
                        'starts from scratch when there is none')
    parser.add_argument('--amp', action='store_true', help='mixed-precision training (AmpOptimWrapper, needs a GPU)')
    args = parser.parse_args(argv)
    if args.amp:
        if not torch.cuda.is_available():
            raise OptionsError('--amp needs a GPU: mmengine\'s AmpOptimWrapper runs on CUDA (or NPU/MLU/MUSA) only')
    cfg = _load_config(args, ('train', 'val'))

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.', flush=True)
        else:
            if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'OptimWrapper':
                raise OptionsError(f'--amp works only with optim_wrapper.type OptimWrapper, got {cfg.optim_wrapper.type!r}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume:
        # With load_from unset, the Runner resumes from the work dir's last_checkpoint (mmengine's resume='auto').
        cfg.resume = True

    runner = _build_runner(cfg)
    print(f'Working directory: {cfg.work_dir}', flush=True)
    runner.train()


def test_main(argv: List[str]) -> None:
    """``tools/test.py CONFIG --checkpoint CKPT ...``: evaluate a checkpoint with the config's test_* setup."""
    parser = argparse.ArgumentParser(prog='tools/test.py', description='Test a checkpoint with an mmengine config.')
    _common_args(parser)
    parser.add_argument('--checkpoint', required=True, help='checkpoint file (.pth) written by tools/train.py')
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise OptionsError(f'checkpoint {args.checkpoint!r} not found (expected a .pth written by tools/train.py, '
             'e.g. work_dirs/<config stem>/iter_300.pth)')
    cfg = _load_config(args, ('test', ))
    cfg.load_from = args.checkpoint
    cfg.resume = False
    missing = [f'test_{key}' for key in ('dataloader', 'cfg', 'evaluator') if cfg.get(f'test_{key}') is None]
    if missing:
        raise OptionsError(f'config {args.config!r} has no {", ".join(missing)}: tools/test.py needs test_dataloader, test_cfg '
             'and test_evaluator (they may repeat the val_* entries)')
    runner = _build_runner(cfg)
    runner.test()
