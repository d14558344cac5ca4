"""A full disk and a read-only output folder on both toolboxes, and the messages and logs of issue 17 point 7: a junk
checkpoint named in one line (never torch's advice to reload with ``weights_only=False``), the resume warnings and
``error:`` lines in the run's log, a copied mmengine work dir resuming from its own files.

The full disk is a real one: a small tmpfs mounted on the run's output folder (the tests run as root in a VM), filled
by the test just before the checkpoint that must fail (a file that leaves 64 KiB free: less than a checkpoint, enough
for the log lines). Where ``mount`` is not permitted, the disk-full tests simulate it instead: the checkpoint writer's
``open`` (``plugins/engine/checkpoint_files.py``) then returns files whose writes fail with ``ENOSPC`` once filled,
the same ``OSError`` the kernel gives. The read-only folder is a tmpfs mounted read-only (``chmod`` does not stop
root); without ``mount`` it is a ``chmod 555`` folder for a user other than root, and the test is skipped for root.

Each test asserts the exit code, the one ``error:`` line and that the last good checkpoint is intact and loads.
"""
import errno
import io
import os
import shutil
import subprocess
import time

import pytest
import torch

from tests.engine.mmengine_runs import CONFIG, FAST, logs, run_log
from tests.helpers import quick, run_config, run_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
EXP = 'classic_srcnn_x2'  # the experiment name of SRCNN_TRAIN
FREE_LEFT = 64 * 1024


def _mount(folder, *options) -> bool:
    os.makedirs(folder, exist_ok=True)
    try:
        proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', ','.join(options), 'tmpfs', str(folder)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _umount(folder) -> None:
    subprocess.run(['umount', '-l', str(folder)], capture_output=True, timeout=30)


class _FullFile(io.FileIO):
    """A file whose writes fail with ENOSPC (the simulated full disk, for machines where mount is not permitted)."""

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class Disk:
    """A small file system at ``folder``; ``fill()`` leaves it (nearly) full."""

    def __init__(self, folder, monkeypatch):
        self.folder, self.monkeypatch = folder, monkeypatch
        self.real = _mount(folder, 'size=8m')

    def fill(self) -> None:
        if self.real:
            stat = os.statvfs(self.folder)
            size = stat.f_bavail * stat.f_frsize - FREE_LEFT
            with open(os.path.join(self.folder, 'filler'), 'wb') as f:
                f.write(b'\0' * max(size, 0))
        else:
            from plugins.engine import checkpoint_files
            self.monkeypatch.setattr(checkpoint_files, 'open', lambda path, mode='r': _FullFile(path, mode),
                                     raising=False)

    def free(self) -> None:
        if self.real:
            os.remove(os.path.join(self.folder, 'filler'))
        else:
            from plugins.engine import checkpoint_files
            self.monkeypatch.delattr(checkpoint_files, 'open', raising=False)


@pytest.fixture
def disk(workdir, monkeypatch):
    """``workdir/experiments`` on an 8 MiB file system that the test fills when it wants (see ``Disk``)."""
    d = Disk(workdir / 'experiments', monkeypatch)
    yield d
    if d.real:
        _umount(d.folder)


@pytest.fixture
def read_only(workdir):
    """``workdir/experiments``, a folder nothing can be written in."""
    folder = workdir / 'experiments'
    if _mount(folder, 'ro', 'size=1m'):
        yield folder
        _umount(folder)
        return
    if os.geteuid() == 0:
        pytest.skip('mount is not permitted and root ignores permission bits: no read-only folder to test with')
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o555)
    yield folder
    os.chmod(folder, 0o755)


def _error_lines(text: str):
    return [line for line in text.splitlines() if 'error:' in line]


def _loads(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def _temp_files(folder):
    return [f for _, _, files in os.walk(folder) for f in files if '.tmp-' in f]


# -------------------------------------------------------------------------------------------------------------
# BasicSR
# -------------------------------------------------------------------------------------------------------------
def test_basicsr_full_disk_stops_with_the_file_then_resumes_and_logs_the_skipped_state(workdir, disk, monkeypatch,
                                                                                        capsys):
    """8 iterations with checkpoints every 4; the disk fills just before net_g_8.pth is written: exit 1, one line
    naming net_g_8.pth and "no space left on device", also in the run's log; net_g_4.pth and 4.state intact (no
    temporary file left). With space again and a truncated 8.state left (as a non-atomic writer would leave it),
    --auto_resume reports 8 as unusable in the new run's log (the warning comes before BasicSR's logger exists)
    and finishes from 4."""
    from plugins.engine.basicsr import checkpoints
    real_save = checkpoints.atomic_torch_save

    def save(obj, path):
        if os.path.basename(path) == 'net_g_8.pth':
            disk.fill()
        real_save(obj, path)

    monkeypatch.setattr(checkpoints, 'atomic_torch_save', save)
    overrides = quick(SRCNN_TRAIN, total_iter=8, every=4)
    run = run_options(SRCNN_TRAIN, workdir, overrides, name='x', capsys=capsys, check=False)
    assert run.status == 1, run.errors[-3000:]
    (line,) = _error_lines(run.errors)
    target = run.models / 'net_g_8.pth'
    assert line.startswith(f'error: cannot write network {target}: no space left on device (errno ENOSPC)'), line
    assert 'Traceback' not in run.errors
    assert sorted(os.listdir(run.models)) == ['net_g_4.pth'] and not _temp_files(run.folder)
    assert sorted(os.listdir(run.folder / 'training_states')) == ['4.state']
    assert _loads(run.models / 'net_g_4.pth')['params'] and _loads(run.folder / 'training_states/4.state')['iter'] == 4
    assert line in run.log('train_*.log')

    monkeypatch.setattr(checkpoints, 'atomic_torch_save', real_save)
    disk.free()
    state = (run.folder / 'training_states' / '4.state').read_bytes()
    (run.folder / 'training_states' / '8.state').write_bytes(state[:len(state) // 2])
    time.sleep(1)  # BasicSR names its log by the second
    resumed = run_options(SRCNN_TRAIN, workdir, overrides, args=['--auto_resume'], name='x', capsys=capsys)
    log = resumed.log('train_*.log')
    assert 'cannot resume from iteration 8' in log and 'trying an older one' in log
    assert _loads(resumed.models / 'net_g_latest.pth')['params']
    assert _loads(resumed.folder / 'training_states' / '8.state')['iter'] == 8


def test_basicsr_read_only_output_folder_is_one_line_before_any_work(workdir, read_only, capsys):
    run = run_options(SRCNN_TRAIN, workdir, quick(SRCNN_TRAIN), name='x', capsys=capsys, check=False)
    assert run.status == 1, run.errors[-3000:]
    (line,) = _error_lines(run.errors)
    reason = 'read-only file system (errno EROFS)' if os.geteuid() == 0 else 'permission denied (errno EACCES)'
    assert line.startswith('error: cannot ') and f'{read_only / EXP}: {reason}' in line, line
    assert 'Traceback' not in run.errors and os.listdir(read_only) == []


# -------------------------------------------------------------------------------------------------------------
# mmengine
# -------------------------------------------------------------------------------------------------------------
def test_mmengine_full_disk_stops_with_the_file_and_keeps_the_last_checkpoint(workdir, disk, monkeypatch, capsys):
    """4 iterations with checkpoints every 2; the disk fills just before iter_4.pth: exit 1, one line naming it,
    also in the run's log; iter_2.pth intact, loads, and is what last_checkpoint points at."""
    from plugins.compat import mmengine as compat
    real_write = compat.atomic_write_bytes

    def write(data, path, durable=True):
        if os.path.basename(path) == 'iter_4.pth':
            disk.fill()
        real_write(data, path, durable=durable)

    monkeypatch.setattr(compat, 'atomic_write_bytes', write)
    work = disk.folder / 'work'
    run = run_config(CONFIG, workdir, args=['--work-dir', str(work)], cfg_options=['train_cfg.max_iters=4', *FAST],
                     capsys=capsys, check=False)
    monkeypatch.setattr(compat, 'atomic_write_bytes', real_write)
    assert run.status == 1, run.errors[-3000:]
    (line,) = _error_lines(run.errors)
    assert line.startswith(f'error: cannot write checkpoint {work / "iter_4.pth"}: no space left on device'), line
    assert 'Traceback' not in run.errors
    assert not (work / 'iter_4.pth').exists() and not _temp_files(work)
    assert _loads(work / 'iter_2.pth')['meta']['iter'] == 2
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert line in run_log(work, set())


def test_mmengine_read_only_work_dir_is_one_line_before_any_work(workdir, read_only, capsys):
    work = read_only / 'work'
    run = run_config(CONFIG, workdir, args=['--work-dir', str(work)], cfg_options=['train_cfg.max_iters=2', *FAST],
                     capsys=capsys, check=False)
    assert run.status == 1, run.errors[-3000:]
    (line,) = _error_lines(run.errors)
    assert line.startswith('error: cannot ') and str(work) in line, line
    assert 'Traceback' not in run.errors and os.listdir(read_only) == []


def test_mmengine_junk_checkpoint_is_one_line_naming_it(workdir, capsys):
    """load_from a junk file: exit 1, one line naming the file and our reason (not "KeyError: 174812789", never
    torch's weights_only=False advice), also in the run's log."""
    junk = workdir / 'junk.pth'
    junk.write_bytes(b'not a checkpoint, just some text\n' * 64)
    work = workdir / 'work'
    run = run_config(CONFIG, workdir, args=['--work-dir', str(work)],
                     cfg_options=['train_cfg.max_iters=2', f'load_from={junk}', *FAST], capsys=capsys, check=False)
    assert run.status == 1, run.errors[-3000:]
    (line,) = _error_lines(run.errors)
    assert line.startswith(f'error: cannot load checkpoint {junk}: '), line
    assert 'weights_only' not in run.errors and 'Traceback' not in run.errors
    assert line in run_log(work, set())


def test_mmengine_copied_work_dir_resumes_from_its_own_checkpoint(workdir, mmengine_srcnn_run, capsys):
    """last_checkpoint of a copied work dir holds the original's absolute path: --resume takes the copy's file."""
    original = mmengine_srcnn_run[0] / 'work'
    copy = workdir / "moved" / "work"
    shutil.copytree(original, copy)
    assert (copy / 'last_checkpoint').read_text() == str(original / 'iter_4.pth')
    before = logs(copy)
    run_config(CONFIG, workdir, args=["--work-dir", str(copy), "--resume"],
               cfg_options=['train_cfg.max_iters=4', *FAST], capsys=capsys)
    log = run_log(copy, before)
    assert f'Auto resumed from the latest checkpoint {copy / "iter_4.pth"}' in log
    assert f'last_checkpoint points to {original / "iter_4.pth"}, outside the work dir' in log
    assert str(original / 'iter_4.pth') not in log.split('last_checkpoint points to')[0]


def test_load_error_reasons_name_the_problem_and_never_suggest_an_unsafe_reload(tmp_path):
    """What ``checkpoint_problem`` says of a text file, random bytes, a truncated checkpoint and a pickle holding
    code: our reason each time, never torch's advice to set weights_only=False."""
    from plugins.engine.checkpoint_files import checkpoint_problem
    torch.save({'params': {'w': torch.ones(64)}}, tmp_path / 'good.pth')
    good = (tmp_path / 'good.pth').read_bytes()
    torch.save({'params': {}, 'hook': os.system}, tmp_path / 'code.pth')
    files = {'text.pth': b'not a checkpoint\n' * 20, 'random.pth': bytes(range(256)) * 8,
             'truncated.pth': good[:len(good) // 2]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    expected = {'text.pth': 'not a PyTorch checkpoint, or a damaged one', 'random.pth': 'not a PyTorch checkpoint',
                'truncated.pth': 'truncated or damaged (PytorchStreamReader failed reading zip archive',
                'code.pth': 'it holds Python objects that a safe load refuses (',
                'missing.pth': 'the file does not exist', 'good.pth': None}
    for name, reason in expected.items():
        problem = checkpoint_problem(str(tmp_path / name))
        if reason is None:
            assert problem is None
        else:
            assert problem.startswith(reason) and 'weights_only' not in problem, (name, problem)
    assert 'posix.system' in checkpoint_problem(str(tmp_path / 'code.pth'))
