"""``tools/train.py -opt X.yml`` and ``tools/test.py -opt X.yml``: the options check, then BasicSR's own
``train_pipeline`` / ``test_pipeline`` with all of BasicSR's flags (``--launcher``, ``--auto_resume``, ``--debug``,
``--force_yml``, ``--local_rank``), ``--print-options``, and ``--allow-fresh-start`` (``engine/resume_policy.py``).

Outputs go under the working directory, as BasicSR's own scripts do when run from their repository root:
``experiments/``, ``tb_logger/``, ``results/``.
"""
import argparse
import os
import sys
from typing import List

from basicsr.test import test_pipeline
from basicsr.train import train_pipeline

from .. import resume_policy
from .options import (apply_force_yml, force_yml_arguments, launcher_argument, load_options, option_file_argument,
                      options_to_yaml)
from .options_check import check_basicsr_options

PRINT_OPTIONS = '--print-options'


def help_parser(is_train: bool) -> argparse.ArgumentParser:
    """The command line BasicSR's ``parse_options`` reads, with ``--print-options`` (for ``--help``)."""
    tool = 'train' if is_train else 'test'
    parser = argparse.ArgumentParser(
        prog=f'tools/{tool}.py', description=f'{tool.capitalize()} with BasicSR {"train" if is_train else "test"}'
        f'_pipeline after checking the options (mmengine configs: tools/{tool}.py CONFIG.py --help).')
    parser.add_argument('-opt', required=True, help=f'BasicSR options file, e.g. options/{tool}/classic/srcnn_x2.yml')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher: pytorch under torchrun, slurm under srun')
    if is_train:
        parser.add_argument('--auto_resume', action='store_true',
                            help='continue from the newest readable training state of the experiment')
        parser.add_argument(resume_policy.FLAG, action='store_true',
                            help='with --auto_resume: when training states exist but none can be read, start again '
                            'from iteration 0 (without it the run stops and lists them)')
    parser.add_argument('--debug', action='store_true', help='debug_ experiment name, frequent logs')
    parser.add_argument('--force_yml', nargs='+', metavar='KEY:SUB=VALUE',
                        help='override existing options, e.g. val:val_freq=500 num_gpu=0')
    parser.add_argument(PRINT_OPTIONS, action='store_true',
                        help='print the resolved options (_base_ merged, --force_yml applied) as YAML and exit')
    return parser


def option_path(argv: List[str]):
    """The ``-opt`` file of a command line, or None."""
    return option_file_argument(argv)[1]


def print_resolved_options(argv: List[str]) -> None:
    """``--print-options``: the options BasicSR would run (``_base_`` resolved, ``--force_yml`` applied) as flat YAML
    on standard output, to diff or to hand to plain BasicSR. Nothing is checked or run."""
    path = option_path(argv)
    opt = apply_force_yml(load_options(path), force_yml_arguments(argv), path)
    sys.stdout.write(options_to_yaml(opt))


def run(argv: List[str], is_train: bool) -> None:
    """Check the options (``OptionsError`` on the first problem), then run BasicSR's pipeline on ``argv``."""
    if '-h' in argv or '--help' in argv:
        help_parser(is_train).print_help()
        return
    if PRINT_OPTIONS in argv:
        print_resolved_options(argv)
        return
    argv, _ = resume_policy.take_flag(argv)  # ours: BasicSR's parse_options would refuse it
    check_basicsr_options(option_path(argv), is_train=is_train, force_yml=force_yml_arguments(argv),
                          launcher=launcher_argument(argv))
    # BasicSR's parse_options() reads sys.argv itself.
    sys.argv = [sys.argv[0]] + list(argv)
    (train_pipeline if is_train else test_pipeline)(os.getcwd())
