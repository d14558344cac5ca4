"""How tests run the product: an options file or config in this process with overrides given as keys
(``run_options``, ``run_config``), or a tool as its own process where the test is about the process (``run_tool``,
``torchrun``: kills, launchers, exit codes).

Overrides name options the way ``--force_yml`` does (``'train:total_iter': 6``), are applied to the resolved options
(``_base_`` merged) and must name existing keys unless ``add=True``; nothing edits YAML text.
"""
import glob
import logging
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import plugins  # noqa: E402,F401  (compat patches and the BasicSR lines' registrations, as the tools do)
from plugins.engine.basicsr.options import load_options, options_to_yaml  # noqa: E402

ONE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


def repo_path(rel: str) -> str:
    """Absolute path of a file of the repository (``options/train/classic/srcnn_x2.yml``)."""
    return rel if osp.isabs(rel) else osp.join(REPO, rel)


def _parent(opt: Dict, key: str, rel: str, add: bool = False):
    """(the mapping that holds ``key`` 'a:b:c', its last part)."""
    *parents, last = key.split(':')
    node = opt
    for part in parents:
        if part not in node and add:
            node[part] = {}
        if not isinstance(node.get(part), dict):
            raise KeyError(f'{rel}: no section {part!r} for {key!r}')
        node = node[part]
    return node, last


def options(rel: str, overrides: Optional[Dict] = None, add: bool = False, delete: Sequence[str] = (),
            rename: Optional[Dict[str, str]] = None) -> Dict:
    """The resolved options of an options file of the repository (or any path), changed by keys, in this order:
    ``rename`` (``{'a:b': 'b2'}`` renames ``opt['a']['b']`` to ``b2``, keeping its value and place), ``delete``
    (``['a:b']``), ``overrides`` (``{'a:b:c': value}`` sets ``opt['a']['b']['c']``; every key must exist unless
    ``add``, which creates missing keys and mappings)."""
    opt = deepcopy(load_options(repo_path(rel)))
    for key, new_name in (rename or {}).items():
        node, last = _parent(opt, key, rel)
        if last not in node:
            raise KeyError(f'{rel}: no option {key!r} to rename')
        items = [(new_name if k == last else k, v) for k, v in node.items()]
        node.clear()
        node.update(items)
    for key in delete:
        node, last = _parent(opt, key, rel)
        del node[last]
    for key, value in (overrides or {}).items():
        node, last = _parent(opt, key, rel, add)
        if last not in node and not add:
            raise KeyError(f'{rel}: no option {key!r} to override (add=True creates it)')
        node[last] = value
    return opt


def has_option(opt: Dict, key: str) -> bool:
    """Whether the options dict ``opt`` has the key ``'a:b:c'``."""
    node = opt
    for part in key.split(':'):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def quick(rel: str, total_iter: int = 2, every: int = 2, batch: int = 2, period: Optional[int] = None) -> Dict:
    """Overrides that shorten a training options file to a few-iteration CPU run: ``total_iter`` iterations of batch
    ``batch``, validation and checkpoints every ``every`` iterations, the cosine period ``period`` (default:
    ``total_iter``), no data workers, no TensorBoard. Only keys the file has are set."""
    opt = load_options(repo_path(rel))
    wanted = {'train:total_iter': total_iter, 'val:val_freq': every, 'logger:save_checkpoint_freq': every,
              'logger:print_freq': 1, 'logger:use_tb_logger': False,
              'train:scheduler:periods': [period or total_iter], 'train:scheduler:restart_weights': [1]}
    for phase in opt.get('datasets') or {}:
        wanted[f'datasets:{phase}:num_worker_per_gpu'] = 0
        if str(phase).startswith('train'):
            wanted[f'datasets:{phase}:batch_size_per_gpu'] = batch
    if ((opt.get('train') or {}).get('scheduler') or {}).get('type') != 'CosineAnnealingRestartLR':
        del wanted['train:scheduler:periods'], wanted['train:scheduler:restart_weights']
    return {k: v for k, v in wanted.items() if has_option(opt, k)}


def write_options(rel: str, dst, overrides: Optional[Dict] = None, add: bool = False, delete: Sequence[str] = (),
                  rename: Optional[Dict[str, str]] = None) -> str:
    """Write the resolved options of ``rel``, changed as ``options`` says, as a flat YAML file ``dst``."""
    with open(dst, 'w', encoding='utf-8') as f:
        f.write(options_to_yaml(options(rel, overrides, add, delete, rename)))
    return str(dst)


@contextmanager
def _in_folder(cwd):
    previous, argv = os.getcwd(), list(sys.argv)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(previous)
        sys.argv = argv


def _fresh_basicsr_logger() -> None:
    """BasicSR's ``get_root_logger`` configures its logger once per process (and opens the log file then): forget
    it, so the next run logs to its own file as in a new process."""
    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger('basicsr')
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    basicsr_logger.initialized_logger.pop('basicsr', None)


@dataclass
class Run:
    """The result of a run in this process: its exit status (0 = finished), what it printed on stderr as ``error:``
    lines, and for BasicSR its options and experiment (or results) folder."""
    status: int
    errors: str
    opt: Optional[Dict] = None
    folder: Optional[Path] = None

    def log(self, pattern: str = '*.log') -> str:
        """The newest log of the run's folder."""
        logs = sorted(glob.glob(str(self.folder / pattern)), key=osp.getmtime)
        assert logs, f'no log {pattern} in {self.folder}'
        return open(logs[-1]).read()

    @property
    def models(self) -> Path:
        return self.folder / 'models'


def exit_status(err: SystemExit) -> int:
    """The status a process would exit with after ``SystemExit`` (``sys.exit('text')`` exits 1)."""
    return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)


def _call_cli(argv: List[str], is_train: bool, capsys=None):
    from plugins.engine.cli import main
    status = 0
    try:
        main(argv, is_train=is_train)
    except SystemExit as err:
        status = exit_status(err)
    errors = capsys.readouterr().err if capsys is not None else ''
    return status, errors


def run_options(rel: str, cwd, overrides: Optional[Dict] = None, train: bool = True, args: Sequence[str] = (),
                add: bool = False, delete: Sequence[str] = (), rename: Optional[Dict[str, str]] = None,
                name: Optional[str] = None, capsys=None, check: bool = True) -> Run:
    """Run a BasicSR options file through ``tools/train.py`` (or ``tools/test.py`` with ``train=False``) in this
    process, in the working directory ``cwd``: the resolved options with ``overrides`` are written to
    ``cwd/<name or file stem>.yml`` first. ``args`` are more command-line flags (``--auto_resume``, ``--force_yml``).
    With ``check`` a non-zero exit fails the test (pass ``capsys`` to see the ``error:`` lines in the message)."""
    opt = options(rel, overrides, add, delete, rename)
    path = osp.join(str(cwd), f'{name or osp.splitext(osp.basename(rel))[0]}.yml')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(options_to_yaml(opt))
    _fresh_basicsr_logger()
    with _in_folder(cwd):
        status, errors = _call_cli(['-opt', path, *args], train, capsys)
    _fresh_basicsr_logger()
    if check and status != 0:
        raise AssertionError(f'{rel} exited {status}: {errors[-3000:]}')
    debug = '--debug' in args and not opt['name'].startswith('debug')
    folder_name = f"debug_{opt['name']}" if debug else opt['name']
    folder = Path(cwd) / ('experiments' if train else 'results') / folder_name
    return Run(status, errors, opt, folder)


_CONFIG_RUNS = [0]


def run_config(config: str, cwd, args: Sequence[str] = (), cfg_options: Sequence[str] = (), train: bool = True,
               capsys=None, check: bool = True) -> Run:
    """Run an mmengine config through ``tools/train.py`` (or ``tools/test.py``) in this process, in ``cwd``.

    Each run gets its own ``experiment_name``: mmengine names its logger and message hub after the config and the
    second the run starts, so two runs of one config within a second would share them in one process."""
    _CONFIG_RUNS[0] += 1
    stem = osp.splitext(osp.basename(config))[0]
    cfg_options = [*cfg_options, f'experiment_name={stem}_inprocess{_CONFIG_RUNS[0]}']
    with _in_folder(cwd):
        status, errors = _call_cli([repo_path(config), *args, '--cfg-options', *cfg_options], train, capsys)
    if check and status != 0:
        raise AssertionError(f'{config} exited {status}: {errors[-3000:]}')
    return Run(status, errors)


def run_tool(args: Sequence[str], cwd, timeout: int = 900, env: Optional[Dict] = None, check: bool = True,
             launcher: Optional[List[str]] = None) -> subprocess.CompletedProcess:
    """Run ``python tools/<args[0]> args[1:]`` (or ``<launcher> tools/<args[0]> ...``) as its own process in ``cwd``;
    for tests about the process itself (kills, torchrun, exit codes, the printed output)."""
    cmd = (launcher or [sys.executable]) + [osp.join(REPO, 'tools', args[0])] + [str(a) for a in args[1:]]
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **ONE_THREAD, **(env or {}))
    proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}'
                             f'\n--- stderr\n{proc.stderr[-6000:]}')
    return proc


def free_port() -> int:
    """A TCP port of the loopback interface that is free now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(nproc: int = 2) -> List[str]:
    """The torchrun command line for ``nproc`` CPU processes on a free local port."""
    exe = shutil.which('torchrun', path=osp.dirname(sys.executable)) or 'torchrun'
    return [exe, f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1', f'--master_port={free_port()}']


def torchrun_node(node_rank: int, port: int, rendezvous: str = 'static', nnodes: int = 2,
                  job: str = 'test') -> List[str]:
    """The torchrun command line of node ``node_rank`` of an ``nnodes``-node job simulated on this machine, one
    process per node, on the loopback port ``port``: ``static`` (``--master_addr --master_port --node_rank``) or
    ``c10d`` rendezvous (``--rdzv_backend=c10d --rdzv_endpoint --rdzv_id``, node ranks given by the rendezvous)."""
    exe = shutil.which('torchrun', path=osp.dirname(sys.executable)) or 'torchrun'
    cmd = [exe, f'--nnodes={nnodes}', '--nproc_per_node=1']
    if rendezvous == 'static':
        return cmd + [f'--node_rank={node_rank}', '--master_addr=127.0.0.1', f'--master_port={port}']
    return cmd + [f'--rdzv_backend={rendezvous}', f'--rdzv_endpoint=127.0.0.1:{port}', f'--rdzv_id={job}']


def load_tool(rel: str):
    """The module of ``tools/<rel>`` (``'classic/demo.py'``), loaded from its path (the tools are scripts)."""
    import importlib.util
    name = 'tool_' + osp.splitext(rel)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', rel))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class ToolRun:
    """A tool's ``main`` run in this process: its exit status and what it printed."""
    status: int
    out: str
    err: str


def call_tool(args: Sequence[str], cwd, capsys, check: bool = True) -> ToolRun:
    """``tools/<args[0]>``'s ``main(args[1:])`` in this process, in the working directory ``cwd``: for tests about
    what a tool does (its files, messages and exit status), not about its process (see ``run_tool``). A
    ``SystemExit`` gives the status; with ``check`` a non-zero status fails the test."""
    main = load_tool(args[0]).main
    capsys.readouterr()
    status = 0
    with _in_folder(cwd):
        try:
            main([str(a) for a in args[1:]])
        except SystemExit as err:
            status = exit_status(err)
    captured = capsys.readouterr()
    if check and status != 0:
        raise AssertionError(f'tools/{args[0]} exited {status}\n--- stdout\n{captured.out[-4000:]}'
                             f'\n--- stderr\n{captured.err[-6000:]}')
    return ToolRun(status, captured.out, captured.err)
