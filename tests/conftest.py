"""Shared fixtures: the demo data (built once per test session from the photos inside installed wheels),
and a runner for the command-line tools in a scratch working directory."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """Path of a demo data tree (see plugins/common/demo_data.py), built once per session."""
    import plugins  # noqa: F401
    from plugins.common.demo_data import build_demo_data
    out = str(tmp_path_factory.mktemp('data') / 'demo')
    build_demo_data(out)
    return out


@pytest.fixture
def workdir(tmp_path, demo_data):
    """A scratch working directory whose ``datasets/demo`` is the session's demo data, so the options files
    under options/ run unchanged there, and their outputs (experiments/, results/, ...) stay in tmp_path."""
    os.makedirs(tmp_path / 'datasets')
    os.symlink(demo_data, tmp_path / 'datasets' / 'demo')
    return tmp_path


def write_options(src: str, dst, replace: dict = None) -> str:
    """Copy an options file from options/ to ``dst``, replacing YAML scalar values ``key: old`` by regex."""
    with open(osp.join(REPO, src)) as f:
        text = f.read()
    for pattern, value in (replace or {}).items():
        text, n = re.subn(pattern, value, text, flags=re.M)
        assert n, f'{pattern!r} not found in {src}'
    with open(dst, 'w') as f:
        f.write(text)
    return str(dst)


def run_tool(args, cwd, timeout=600, env=None, check=True, launcher=None):
    """Run ``python tools/<args>`` (or ``torchrun ... tools/<args>`` when ``launcher`` is a list) in ``cwd``."""
    cmd = (launcher or [sys.executable]) + [osp.join(REPO, 'tools', args[0])] + list(args[1:])
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}'
                             f'\n--- stderr\n{proc.stderr[-6000:]}')
    return proc


def torchrun(nproc=2):
    """The torchrun command line for ``nproc`` CPU processes on a free local port."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    exe = shutil.which('torchrun', path=osp.dirname(sys.executable)) or 'torchrun'
    return [exe, f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1', f'--master_port={port}']


def quick_overrides(total_iter=2, every=2, batch=2, period=None):
    """``write_options`` replacements that shorten a training options file of options/train to a few-iteration
    CPU run: ``total_iter`` iterations of batch ``batch``, validation and checkpoints every ``every`` iterations,
    cosine period ``period`` (default: ``total_iter``), no data workers and no TensorBoard."""
    return {
        r'^  total_iter: \d+': f'  total_iter: {total_iter}',
        r'^    periods: \[\d+\]': f'    periods: [{period or total_iter}]',
        r'^  val_freq: \d+': f'  val_freq: {every}',
        r'^  save_checkpoint_freq: \d+': f'  save_checkpoint_freq: {every}',
        r'^  print_freq: \d+': '  print_freq: 1',
        r'^    num_worker_per_gpu: \d+': '    num_worker_per_gpu: 0',
        r'^    batch_size_per_gpu: \d+': f'    batch_size_per_gpu: {batch}',
        r'^  use_tb_logger: true': '  use_tb_logger: false',
    }
