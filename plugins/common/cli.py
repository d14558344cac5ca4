"""Entry points behind ``tools/train.py`` and ``tools/test.py``.

* ``-opt X.yml`` runs BasicSR's ``train_pipeline`` / ``test_pipeline`` with all of BasicSR's flags
  (``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``, ``--local_rank``).
* ``X.py`` (an mmengine config) runs mmengine's ``Runner`` in the MMagic scope (``plugins/common/mm_runner.py``).

Outputs go under the working directory, as BasicSR's and MMagic's own scripts do when run from their
repository root: ``experiments/``, ``tb_logger/``, ``results/`` and ``work_dirs/``.
"""
import os
import sys
from typing import List

from .network_io import OptionsError


def _die(message: str) -> None:
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.exit(2)


def _option_path(argv: List[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == '-opt' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('-opt='):
            return arg.split('=', 1)[1]
    return None


def _force_yml(argv: List[str]) -> List[str]:
    if '--force_yml' not in argv:
        return []
    values = []
    for arg in argv[argv.index('--force_yml') + 1:]:
        if arg.startswith('-'):
            break
        values.append(arg)
    return values


def _run_basicsr(argv: List[str], is_train: bool) -> None:
    from .options_check import check_basicsr_options
    opt_path = _option_path(argv)
    try:
        check_basicsr_options(opt_path, is_train=is_train, force_yml=_force_yml(argv))
    except OptionsError as err:
        _die(str(err))
    # BasicSR's parse_options() reads sys.argv itself.
    sys.argv = [sys.argv[0]] + argv
    root = os.getcwd()
    if is_train:
        from basicsr.train import train_pipeline
        train_pipeline(root)
    else:
        from basicsr.test import test_pipeline
        test_pipeline(root)


def _close_process_group() -> None:
    """End a distributed run cleanly: wait for every rank, then destroy the process group.

    Neither toolbox does it; a process that exits with a live gloo group can abort at interpreter shutdown
    ("terminate called without an active exception", SIGABRT), which torchrun reports as a failed run."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _rank() -> str:
    """'rank R: ' under a distributed launcher, else ''."""
    rank = os.environ.get('RANK')
    return f'rank {rank}: ' if rank is not None and os.environ.get('WORLD_SIZE', '1') != '1' else ''


def _log_summary(argv: List[str]) -> None:
    """End-of-run counts: iterations skipped by the non-finite guard, unreadable samples skipped; in the run's log
    (BasicSR's root logger, or mmengine's current logger for a config)."""
    from . import data_faults, nonfinite
    lines = nonfinite.summary() + data_faults.summary()
    if lines:
        logger = (data_faults.basicsr_logger if _option_path(argv) is not None else data_faults.mmengine_logger)()
        for line in lines:
            logger.warning(line)


def main(argv: List[str], is_train: bool) -> None:
    """Dispatch on the kind of config: ``-opt *.yml`` to BasicSR, ``*.py`` to mmengine/MMagic.

    A run stopped on purpose (``TrainingStopped``: non-finite losses, a data fault, an unreadable checkpoint) prints
    one ``error:`` line and exits 1. Any other exception under a distributed launcher is printed with its rank
    before the traceback and ends the process without the closing barrier (the other ranks may be blocked in a
    collective): torchrun sees the failed rank and stops the others, so the whole job ends non-zero instead of
    waiting out the collective timeout.
    ``record`` writes the traceback where torchrun puts it in its failure summary."""
    from torch.distributed.elastic.multiprocessing.errors import record
    record(_main)(argv, is_train)


def _main(argv: List[str], is_train: bool) -> None:
    import plugins  # noqa: F401  (compat patches, then every registration)
    from .checkpoint_io import TrainingStopped
    try:
        _dispatch(argv, is_train)
    except TrainingStopped as err:
        _log_summary(argv)
        print(f'{_rank()}error: {err}', file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as err:
        if _rank():
            print(f'{_rank()}error: {type(err).__name__}: {err}', file=sys.stderr, flush=True)
        raise
    _log_summary(argv)
    _close_process_group()


def _dispatch(argv: List[str], is_train: bool) -> None:
    if _option_path(argv) is not None:
        _run_basicsr(argv, is_train)
        return
    configs = [a for a in argv if a.endswith('.py') and not a.startswith('-')]
    if configs:
        from . import mm_runner
        (mm_runner.train_main if is_train else mm_runner.test_main)(argv)
        return
    tool = 'train' if is_train else 'test'
    _die(f'give a BasicSR options file (python tools/{tool}.py -opt options/{tool}/<line>/<x>.yml) '
         f'or an mmengine config (python tools/{tool}.py options/mmagic/<line>/<x>.py)')
