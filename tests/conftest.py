"""Shared fixtures: artifacts built once per test session and shared by the pytest-xdist workers (the demo data,
trained checkpoints), and scratch working directories that see the demo data where the options files look for it.

``helpers.py`` has the functions that run options files, configs and tools.
"""
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from filelock import FileLock

from tests.helpers import REPO  # noqa: F401  (puts the repository first on sys.path)

torch.set_num_threads(1)  # runs happen in this process: one thread per xdist worker, one worker per core
# The suite is CPU-only. On a GPU machine the runs with num_gpu: auto would take the GPU and the torchrun tests an
# nccl group: hide the GPUs before anything initialises CUDA (torch does it lazily); subprocesses inherit this.
os.environ['CUDA_VISIBLE_DEVICES'] = ''


@pytest.fixture(scope='session')
def shared_dir(tmp_path_factory) -> Path:
    """A folder of this test session that every xdist worker sees (the parent of the workers' own temp folders)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


def build_once(shared_dir: Path, name: str, build: Callable[[Path], None]) -> Path:
    """``shared_dir/name``, built by ``build(folder)`` once per session: the first worker that asks builds it under a
    file lock, the others wait for it and reuse it. A build that fails leaves nothing behind, so the next test that
    asks tries again (and fails with the same error)."""
    folder = shared_dir / name
    with FileLock(str(folder) + '.lock'):
        if not (folder / '.complete').exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            try:
                build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            (folder / '.complete').touch()
    return folder


@pytest.fixture(scope='session')
def demo_data(shared_dir) -> str:
    """Path of a demo data tree (plugins/common/demo_data.py), built once per session."""
    from plugins.common.demo_data import build_demo_data
    return str(build_once(shared_dir, 'demo_data', lambda folder: build_demo_data(str(folder / 'demo'))) / 'demo')


def make_workdir(path: Path, demo_data: str) -> Path:
    """Make ``path`` a working directory whose ``datasets/demo`` is the demo data, so the options files under
    options/ run there unchanged and their outputs (experiments/, results/, work_dirs/) stay in ``path``."""
    os.makedirs(path / 'datasets', exist_ok=True)
    os.symlink(demo_data, path / 'datasets' / 'demo')
    return path


@pytest.fixture
def workdir(tmp_path, demo_data) -> Path:
    """A scratch working directory with the demo data (see ``make_workdir``)."""
    return make_workdir(tmp_path, demo_data)


@pytest.fixture(scope='session')
def mmengine_srcnn_run(shared_dir, demo_data):
    """(folder, log text) of the 4-iteration mmengine SRCNN run shared by tests/engine and tests/compat
    (``tests/engine/mmengine_runs.py``), built once per session. Read it; copy ``folder / 'work'`` to write next to it."""
    from tests.engine.mmengine_runs import mmengine_srcnn_iter4
    folder = mmengine_srcnn_iter4(shared_dir, demo_data)
    return folder, (folder / 'train.log').read_text()
