"""The README's commands run as written.

Every command of the README's ``bash`` blocks is read here, in README order. The cheap ones run for real, one after
the other in one working directory that has the demo data (so a test command finds the checkpoint the training
command before it wrote), each with a tiny budget added to what the README wrote:

- BasicSR training: the README's own ``--force_yml`` entries pass the options check first, exactly as written; then
  the run gets, after them in the same ``--force_yml`` list, the few-iteration budget of ``tests.helpers.quick``.
- mmengine training: ``--cfg-options`` for 2 iterations with a checkpoint and validation at the end, after the
  README's own ``--cfg-options``; a README checkpoint ``iter_<K>.pth`` of that config is then ``iter_2.pth``.
- the speed tools: one timed run.
- the data tools: as written.
- placeholders (``NET_G.pth``, ``LR.png``, ...) become files the commands before them made (``PLACEHOLDERS``).

The others are not run, each for a reason from ``NOT_RUN``: a usage synopsis, a second machine, the set-up and
test commands themselves, a several-process launch (tests/engine runs those), several training runs compared (tested at a
tiny budget in the lines' tests), or a data set the suite cannot make;
a BasicSR command of the last kind still has its options and ``--force_yml`` read and resolved.
"""
import os
import os.path as osp
import re
import shlex
from dataclasses import dataclass
from typing import List, Optional

import pytest

from tests.conftest import make_workdir
from tests.helpers import REPO, _call_cli, _fresh_basicsr_logger, _in_folder, call_tool, quick

README = osp.join(REPO, 'README.md')
TINY_MMENGINE = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                 'default_hooks.logger.interval=1']
PLACEHOLDERS = {
    'NET_G.pth': 'experiments/blindsr_cmdsr_x4_demo/models/net_g_latest.pth',
    'LR.png': 'datasets/demo/val/LR_bicubic/X4/chelsea.png',
    'SUPPORT_DIR': 'support',  # same-size LR patches: readme_workdir cuts them from LR.png
    'photo.png': 'datasets/demo/val/HR/chelsea.png',
}
NOT_RUN = {
    'setup': 'sets up or tests the project (make, pip, venv, pytest): what CI itself runs',
    'synopsis': 'a usage synopsis ([optional flags]); its forms are in the tool\'s --help, tested in test_tools_cli',
    'remote': 'a launch across machines (--master_addr of another host); tests/engine/test_multinode.py runs it '
              'on loopback',
    'launcher': 'a several-process launch (torchrun, srun); tests/engine runs the launches',
    'script': 'a shell script of long runs (docs/textsr/cpu_demo.sh); its data check is tested in tests/textsr',
    'data': 'the options read a data set the suite cannot make (paper or GPU recipe)',
    'comparison': 'several training runs compared (minutes even at two iterations each); tests/classic runs '
                  'ablate.py, and tests/blindsr the benchmark behind compare.py, at a tiny budget',
}
COMPARISON_TOOLS = ('tools/classic/ablate.py', 'tools/blindsr/compare.py')


@dataclass
class Command:
    line: int
    text: str

    @property
    def argv(self) -> List[str]:
        return shlex.split(self.text)


def readme_commands(path: str = README) -> List[Command]:
    """The commands of the README's bash blocks: continuation lines joined, comments and ``$ `` prompts removed."""
    commands, lines = [], open(path, encoding='utf-8').read().splitlines()
    in_block, pending, start = False, '', 0
    for number, line in enumerate(lines, 1):
        if line.startswith('```'):
            in_block = line.strip() == '```bash' if not in_block else False
            continue
        if not in_block:
            continue
        code = re.sub(r'(^|\s)#.*$', '', line).rstrip()
        if not pending:
            start = number
        if code.endswith('\\'):
            pending += code[:-1] + ' '
            continue
        text = (pending + code).strip()
        pending = ''
        if text:
            commands.append(Command(start, text))
    return commands


def not_run_reason(command: Command, workdir: Optional[str] = None) -> Optional[str]:
    """The key of ``NOT_RUN`` that keeps ``command`` from running here, or None when it runs."""
    argv = command.argv
    if argv[0] in ('make', 'pip', 'python3.11', '.venv/bin/python') or 'pytest' in argv:
        return 'setup'
    if ' [' in command.text:
        return 'synopsis'
    if any(a.startswith('--master_addr=') and not a.endswith(('127.0.0.1', 'localhost')) for a in argv):
        return 'remote'
    if argv[0] in ('torchrun', 'srun', 'sbatch'):
        return 'launcher'
    if argv[0] == 'bash':
        return 'script'
    if argv[1:2] and argv[1] in COMPARISON_TOOLS:
        return 'comparison'
    if argv[:2] == ['python', 'tools/train.py'] or argv[:2] == ['python', 'tools/test.py']:
        if '-opt' in argv and workdir is not None and _missing_data(argv[argv.index('-opt') + 1], workdir):
            return 'data'
    return None


def _missing_data(options_file: str, workdir: str) -> List[str]:
    """The data roots of a BasicSR options file that neither exist in ``workdir`` nor are made by a README command."""
    from plugins.engine.basicsr.options import load_options
    opt = load_options(osp.join(REPO, options_file))
    missing = []
    for phase in (opt.get('datasets') or {}).values():
        for key, value in phase.items():
            if key.startswith('dataroot') and isinstance(value, str) and not osp.exists(osp.join(workdir, value)) \
                    and not any(osp.normpath(value).startswith(m) for m in MADE_BY_README):
                missing.append(value)
    return missing


COMMANDS = readme_commands()
# the folders the README's data commands write (tools/data/make_*.py --output X)
MADE_BY_README = {osp.normpath(c.argv[c.argv.index('--output') + 1]) for c in COMMANDS
                  if c.argv[1:2] and c.argv[1].startswith('tools/data/make_') and '--output' in c.argv}


def test_the_readme_has_the_commands_this_file_runs():
    """A README without bash blocks (or a parser that lost them) would make every other test here vacuous."""
    tools = {c.argv[1] for c in COMMANDS if c.argv[0] == 'python' and len(c.argv) > 1}
    assert {'tools/train.py', 'tools/test.py', 'tools/infer.py', 'tools/benchmark.py',
            'tools/data/make_text_data.py', 'tools/data/make_lowlight_data.py'} <= tools
    joined = [c for c in COMMANDS if 'train:scheduler:periods=[1000]' in c.text]
    assert joined and joined[0].argv[-1] == 'num_gpu=0', 'continuation lines are joined into one command'


@pytest.fixture(scope='module')
def readme_workdir(tmp_path_factory, demo_data):
    """A working directory like a fresh clone after `make demo-data`: the demo data and the options the commands
    name, but no outputs (and no docs/ of the repository for a command's --output to overwrite)."""
    folder = make_workdir(tmp_path_factory.mktemp('readme'), demo_data)
    os.symlink(osp.join(REPO, 'options'), folder / 'options')
    import cv2

    from plugins.engine.basicsr.options import load_options
    lr = cv2.imread(osp.join(str(folder), PLACEHOLDERS['LR.png']))
    support = folder / PLACEHOLDERS['SUPPORT_DIR']
    os.makedirs(support)
    size = load_options(osp.join(REPO, 'options/train/blindsr/cmdsr_x4_demo.yml'))['network_g']['support_size']
    for i in range(size):  # as many 24x24 patches of the LR image as the demo network's stacked ConditionNet reads
        cv2.imwrite(str(support / f'{i}.png'), lr[8 * i:8 * i + 24, 8 * i:8 * i + 24])
    return str(folder)


def _with_force_yml(argv: List[str], extra: List[str]) -> List[str]:
    """``argv`` with ``extra`` entries after the README's own ``--force_yml`` entries (one flag: argparse keeps the
    last ``--force_yml`` only)."""
    if '--force_yml' not in argv:
        return argv + ['--force_yml', *extra]
    at = argv.index('--force_yml') + 1
    end = next((i for i in range(at, len(argv)) if argv[i].startswith('-')), len(argv))
    return argv[:end] + extra + argv[end:]


def _force_yml_value(value) -> str:
    return str(value).replace(' ', '') if isinstance(value, list) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def _run_basicsr(argv: List[str], is_train: bool, workdir: str, capsys) -> None:
    from plugins.engine.basicsr.options import force_yml_arguments
    from plugins.engine.basicsr.options_check import check_basicsr_options
    options_file = argv[argv.index('-opt') + 1]
    with _in_folder(workdir):
        check_basicsr_options(options_file, is_train=is_train, force_yml=force_yml_arguments(argv))
    if is_train:
        tiny = quick(options_file)
        argv = _with_force_yml(argv, [f'{k}={_force_yml_value(v)}' for k, v in tiny.items()])
    _fresh_basicsr_logger()
    with _in_folder(workdir):
        status, errors = _call_cli(argv, is_train, capsys)
    _fresh_basicsr_logger()
    assert status == 0, errors[-3000:]


def _run_mmengine(argv: List[str], is_train: bool, workdir: str, capsys) -> None:
    if is_train:
        if '--cfg-options' in argv:
            at = argv.index('--cfg-options') + 1
            argv = argv[:at] + TINY_MMENGINE + argv[at:]
        else:
            argv = argv + ['--cfg-options', *TINY_MMENGINE]
    argv = [re.sub(r'iter_\d+\.pth$', 'iter_2.pth', a) for a in argv]
    with _in_folder(workdir):
        status, errors = _call_cli(argv, is_train, capsys)
    assert status == 0, errors[-3000:]


def _tiny_tool_argv(tool: str, args: List[str]) -> List[str]:
    """A tool's README arguments with the budget flags made tiny."""
    out = list(args)
    if tool == 'benchmark.py' and '--train' not in out:
        out += ['--runs', '1', '--warmup', '0']
    return [re.sub(r'iter_\d+\.pth$', 'iter_2.pth', a) for a in out]


@pytest.mark.parametrize('command', COMMANDS, ids=[f'README:{c.line}' for c in COMMANDS])
def test_readme_command_runs_as_written(command, readme_workdir, capsys):
    from plugins.engine.basicsr.options import apply_force_yml, force_yml_arguments, load_options
    reason = not_run_reason(command, readme_workdir)
    if reason is not None:
        assert reason in NOT_RUN
        argv = command.argv
        if reason == 'data':  # still: the file resolves and the README's --force_yml keys exist
            options_file = argv[argv.index('-opt') + 1]
            apply_force_yml(load_options(osp.join(REPO, options_file)), force_yml_arguments(argv), options_file)
        pytest.skip(f'README line {command.line}: {NOT_RUN[reason]}')
    argv = [PLACEHOLDERS.get(a, a) for a in command.argv]
    assert argv[0] == 'python' and argv[1].startswith('tools/'), f'README line {command.line}: {command.text}'
    tool, args = argv[1][len('tools/'):], argv[2:]
    if tool in ('train.py', 'test.py'):
        is_train = tool == 'train.py'
        if '-opt' in args:
            _run_basicsr(args, is_train, readme_workdir, capsys)
        else:
            _run_mmengine(args, is_train, readme_workdir, capsys)
    else:
        call_tool([tool, *_tiny_tool_argv(tool, args)], readme_workdir, capsys)
