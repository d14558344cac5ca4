"""What ``tools/train.py`` and ``tools/test.py`` run: dispatch on the kind of configuration, one ``error:`` line for
the problems a user can fix, and a clean end of distributed runs.

* ``-opt X.yml``: BasicSR's pipeline (``engine/basicsr/pipeline.py``).
* ``X.py`` (an mmengine config): mmengine's ``Runner`` in the MMagic scope (``engine/mmengine/runner.py``).

The tools import ``plugins`` first, which applies the compat patches and registers the BasicSR lines.
"""
import errno
import os
import re
import sys
from typing import List, Optional

from torch.distributed.elastic.multiprocessing.errors import record

from . import data_faults, nonfinite
from .basicsr import pipeline
from .checkpoint_files import LASTING_WRITE_ERRORS, write_error_reason
from .errors import OptionsError, TrainingStopped

USAGE = '''usage: python tools/{tool}.py -opt OPTIONS.yml [BasicSR flags]     (BasicSR: options/{tool}/<line>/*.yml)
       python tools/{tool}.py CONFIG.py [mmengine flags]           (mmengine/MMagic: options/mmagic/<line>/*.py)

BasicSR flags: --launcher {{none,pytorch,slurm}} --auto_resume [--allow-fresh-start] --debug --force_yml KEY:SUB=VALUE ...
  --print-options
  (python tools/{tool}.py -opt X.yml --help lists them)
mmengine flags: --work-dir DIR --cfg-options KEY=VALUE ... --launcher {{none,pytorch,slurm,mpi}}{extra}
  (python tools/{tool}.py CONFIG.py --help lists them)
Multi-process or multi-node: torchrun [--nnodes N --node_rank R --master_addr A --master_port P]
  --nproc_per_node G tools/{tool}.py ... --launcher pytorch
'''
MM_EXTRA = {True: ' --resume [--allow-fresh-start] --amp [--amp-dtype bfloat16]\n  --auto-scale-lr',
            False: '\n  CHECKPOINT (positional, as MMagic; or --checkpoint CHECKPOINT) --out METRICS.json'}


def _die(message: str, status: int = 2, argv: Optional[List[str]] = None) -> None:
    print(f'{_rank()}error: {message}', file=sys.stderr, flush=True)
    if argv is not None:
        _log_error(argv, f'{_rank()}error: {message}')
    sys.exit(status)


def _log_error(argv: List[str], line: str) -> None:
    """Also write the ``error:`` line of a run that stopped into the run's log file, when its toolbox logger has
    one (BasicSR's ``basicsr`` logger once the experiment folder exists, mmengine's current ``MMLogger``); a run
    stopped before its log exists has the console line only. A log that cannot be written (the full disk that
    stopped the run) is passed over silently: the console line is there."""
    import logging
    try:
        if pipeline.option_path(argv) is not None:
            logger = logging.getLogger('basicsr')
        elif 'mmengine' in sys.modules:
            from mmengine.logging import MMLogger
            logger = MMLogger.get_current_instance() if MMLogger._instance_dict else None
        else:
            return
    except Exception:  # noqa: BLE001 - the console line is printed already
        return
    handlers = [h for h in getattr(logger, 'handlers', []) if isinstance(h, logging.FileHandler)]
    if not handlers:
        return
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line, None, None)
        for handler in handlers:
            if record.levelno >= handler.level:
                handler.handle(record)
    finally:
        logging.raiseExceptions = raise_exceptions


def _output_error(err: OSError) -> Optional[str]:
    """The one line for an output folder that cannot be written (read-only, no permission, full), found by the
    toolboxes as they create their folders (BasicSR's ``make_exp_dirs``, mmengine's work dir) or write their logs;
    None for any other ``OSError``."""
    if err.errno not in LASTING_WRITE_ERRORS or not err.filename:
        return None
    verb = 'access' if err.errno in (errno.EACCES, errno.EPERM) else 'write'
    return (f'cannot {verb} {err.filename}: {write_error_reason(err)}. Give an output folder that is writable and has '
            'free space.')


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
    lines = nonfinite.summary() + data_faults.summary()
    if lines:
        logger = (data_faults.basicsr_logger if pipeline.option_path(argv) is not None else data_faults.mmengine_logger)()
        for line in lines:
            logger.warning(line)


def main(argv: List[str], is_train: bool) -> None:
    """Dispatch on the kind of config: ``-opt *.yml`` to BasicSR, ``*.py`` to mmengine/MMagic.

    A problem with the options prints one ``error:`` line and exits 2; a run stopped on purpose (``TrainingStopped``:
    non-finite losses, a data fault, an unreadable or unwritable checkpoint) and an output folder that cannot be
    written (read-only, no permission, full: ``_output_error``) print one ``error:`` line and exit 1; the line also
    goes to the run's log file when there is one (``_log_error``). Any other
    exception under a distributed launcher is printed with its rank before the traceback and ends the process
    without the closing barrier (the other ranks may be blocked in a collective): torchrun sees the failed rank and
    stops the others, so the whole job ends non-zero instead of waiting out the collective timeout.
    ``record`` writes the traceback where torchrun puts it in its failure summary."""
    record(_main)(argv, is_train)


def _main(argv: List[str], is_train: bool) -> None:
    nonfinite.GUARDS.clear()  # the end-of-run counts are this run's (a process may run several, as the tests do)
    data_faults.DATASETS.clear()
    try:
        _dispatch(argv, is_train)
    except OptionsError as err:
        _die(str(err))
    except TrainingStopped as err:
        _log_summary(argv)
        _die(str(err), status=1, argv=argv)
    except OSError as err:
        if _output_error(err) is None:
            if _rank():
                print(f'{_rank()}error: {_describe_failure(err)}', file=sys.stderr, flush=True)
            raise
        _die(_output_error(err), status=1, argv=argv)
    except Exception as err:
        if _rank():
            print(f'{_rank()}error: {_describe_failure(err)}', file=sys.stderr, flush=True)
        raise
    _log_summary(argv)
    _close_process_group()


def _dispatch(argv: List[str], is_train: bool) -> None:
    tool = 'train' if is_train else 'test'
    if pipeline.option_path(argv) is not None:
        pipeline.run(argv, is_train)
        return
    configs = [a for a in argv if a.endswith('.py') and not a.startswith('-')]
    if configs:
        from .mmengine import runner  # imports mmengine: only for mmengine configs
        (runner.train_main if is_train else runner.test_main)(argv)
        return
    if '-h' in argv or '--help' in argv:
        print(USAGE.format(tool=tool, extra=MM_EXTRA[is_train]), end='')
        return
    _die(f'give a BasicSR options file (python tools/{tool}.py -opt options/{tool}/<line>/<x>.yml) '
         f'or an mmengine config (python tools/{tool}.py options/mmagic/<line>/<x>.py); --help for the flags')


COLLECTIVE_TIMEOUT = re.compile(r'Timed out waiting|[Ww]atchdog caught collective operation timeout|timed out after')


def _describe_failure(err: Exception) -> str:
    """A rank's line for an exception it did not expect. A collective that waited out its time-out (gloo: "Timed out
    waiting ... for recv", nccl's watchdog) means another rank stopped answering: the line says so and names the
    option that bounds the wait, since torch's text names neither."""
    text = f'{type(err).__name__}: {err}'
    if isinstance(err, RuntimeError) and COLLECTIVE_TIMEOUT.search(str(err)):
        return ('a collective operation timed out: another rank stopped answering (frozen, stuck loading data, dead, '
                'or its node unreachable). The wait is bounded by dist_params:timeout (BasicSR options) or '
                f'env_cfg.dist_cfg.timeout (mmengine configs). {text}')
    return text
