"""Reliability of BasicSR training through tools/train.py: exact resume after SIGKILL, atomic checkpoints and a
fallback past a truncated one, the non-finite loss guard, data faults, and a failing rank under torchrun.

Faults are injected by a test-only loss, ``ScriptedMSELoss`` (``basicsr_fault_injection.py``): an MSE loss that
returns NaN, kills its own process or raises on chosen calls (one call per training iteration). Runs happen in this
process, except those that must be processes of their own (the killed run, torchrun): those go through a test-only
entry script (written to the test's folder, never shipped) that registers the loss, then runs the normal
``tools/train.py`` entry point.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import ONE_THREAD, REPO, options, quick, run_options, torchrun, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'

ENTRY = '''
import sys
sys.path.insert(0, {repo!r})
import plugins
import tests.engine.basicsr_fault_injection  # noqa: F401  (ScriptedMSELoss)
from plugins.engine.cli import main
main(sys.argv[1:], is_train=True)
'''


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, demo_data):
    """A working directory with 6 training pairs (3 batches of 2 per epoch) and 1 validation pair, and the entry
    script with the scripted loss (also registered in this process)."""
    import tests.engine.basicsr_fault_injection  # noqa: F401
    root = tmp_path_factory.mktemp('reliability')
    for sub, src, count in (('train/HR', 'train/HR_sub', 6), ('train/LR', 'train/LR_bicubic_sub/X2', 6),
                            ('val/HR', 'train/HR_sub', 1), ('val/LR', 'train/LR_bicubic_sub/X2', 1)):
        os.makedirs(root / 'data' / sub)
        for name in sorted(os.listdir(osp.join(demo_data, src)))[:count]:
            shutil.copy(osp.join(demo_data, src, name), root / 'data' / sub / name)
    (root / 'entry.py').write_text(ENTRY.format(repo=REPO))
    return root


def _overrides(tiny, loss=None, total_iter=8, every=4, extra=None):
    """The SRCNN options on the tiny data, ``total_iter`` iterations of batch 2, checkpoints and validation every
    ``every``, with the scripted loss given the extra arguments ``loss``."""
    data = tiny / 'data'
    overrides = quick(SRCNN_TRAIN, total_iter=total_iter, every=every, batch=2, period=total_iter)
    overrides.update({
        'datasets:train:dataroot_gt': str(data / 'train/HR'), 'datasets:train:dataroot_lq': str(data / 'train/LR'),
        'datasets:val:dataroot_gt': str(data / 'val/HR'), 'datasets:val:dataroot_lq': str(data / 'val/LR'),
        'train:pixel_opt': {'type': 'ScriptedMSELoss', 'loss_weight': 1.0, **(loss or {})},
    })
    overrides.update(extra or {})
    return overrides


def _process(tiny, workdir, overrides, *args, check=True, launcher=None, timeout=300, add=False):
    """tools/train.py through the entry script, as a process of its own in ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    opt = write_options(SRCNN_TRAIN, workdir / 'x.yml', overrides, add=add)
    cmd = (launcher or [sys.executable]) + [str(tiny / 'entry.py'), '-opt', opt] + list(args)
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ONE_THREAD)
    proc = subprocess.run(cmd, cwd=str(workdir), capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def _run(workdir, overrides, *args, add=False, capsys=None, check=True):
    """tools/train.py in this process, in ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    return run_options(SRCNN_TRAIN, workdir, overrides, args=args, add=add, name='x', capsys=capsys, check=check)


def _exp(workdir):
    return workdir / 'experiments' / options(SRCNN_TRAIN)['name']


def _log(workdir):
    return ''.join(p.read_text() for p in sorted(_exp(workdir).glob('train_*.log')))


def _losses(log):
    return {int(i): v for i, v in re.findall(r'iter:\s+(\d+),.*?l_pix: (\S+)', log)}


def test_killed_run_resumes_to_the_same_losses_and_weights(tiny, capsys):
    """8 iterations straight vs. SIGKILL during iteration 6 (state saved at 4, inside epoch 1 of 3-batch epochs)
    and --auto_resume to 8: identical weights, EMA, optimizer moments and logged losses. The killed run is a
    process of its own; the straight run and the resumed one run in this process."""
    straight, killed = tiny / 'straight', tiny / 'killed'
    _run(straight, _overrides(tiny))
    proc = _process(tiny, killed, _overrides(tiny, loss={'kill_call': 6}), check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert sorted(os.listdir(_exp(killed) / 'training_states')) == ['4.state']
    # What a kill during a non-atomic save of iteration 6 would leave: --auto_resume must report it and use 4.
    data = (_exp(killed) / 'training_states' / '4.state').read_bytes()
    (_exp(killed) / 'training_states' / '6.state').write_bytes(data[:len(data) // 2])
    capsys.readouterr()
    time.sleep(1)  # BasicSR names its log by the second: the resumed run's log must not replace the killed run's
    _run(killed, _overrides(tiny), '--auto_resume')
    assert re.search(r'cannot resume from iteration 6: \S+6\.state: .*; trying an older one', capsys.readouterr().out)
    assert 'skipping its first 1 of 3 batches, generator states restored: True' in _log(killed)

    a, b = (torch.load(_exp(w) / 'models' / 'net_g_latest.pth') for w in (straight, killed))
    for key in ('params', 'params_ema'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name} differs after the resume'
    sa, sb = (torch.load(_exp(w) / 'training_states' / '8.state') for w in (straight, killed))
    for name, moment in sa['optimizers'][0]['state'][0].items():
        assert torch.equal(moment, sb['optimizers'][0]['state'][0][name]), name
    la, lb = _losses(_log(straight)), _losses(_log(killed))
    assert set(la) == set(range(1, 9)) and all(la[i] == lb[i] for i in range(1, 9)), (la, lb)


def test_nan_losses_are_skipped_then_stop_the_run_with_the_last_good_weights(tiny, capsys):
    """NaN at iterations 3, 5 and 6 with train:nonfinite_patience 2: iteration 3 is skipped with a warning and
    training goes on; 5 and 6 in a row stop the run (exit 1) with one message and a checkpoint equal to
    iteration 4's."""
    work = tiny / 'nan'
    run = _run(work, _overrides(tiny, loss={'nan_calls': [3, 5, 6]}, extra={'train:nonfinite_patience': 2}),
               add=True, capsys=capsys, check=False)
    assert run.status == 1, run.errors[-3000:]
    assert ('error: training stopped at iteration 6: 2 consecutive iterations had a non-finite loss or gradient '
            '(l_pix=nan)') in run.errors and 'Traceback' not in run.errors
    log = _log(work)
    assert 'Non-finite loss at iteration 3 (l_pix=nan): step of optimizer_g skipped [1 in a row' in log
    assert 'Non-finite loss at iteration 6' in log and 'iteration 7' not in log
    assert 'Non-finite guard: 3 iteration(s) had a non-finite loss or gradient and were skipped' in log
    good, saved = (torch.load(_exp(work) / 'models' / f'net_g_{i}.pth') for i in (4, 6))
    assert all(torch.equal(good['params'][k], saved['params'][k]) for k in good['params'])  # 5, 6 skipped
    assert torch.load(_exp(work) / 'training_states' / '6.state')['iter'] == 6


def test_a_frozen_rank_ends_the_torchrun_job_at_the_collective_timeout(tiny):
    """Rank 1 freezes (SIGSTOP: alive, answering nothing) in its second iteration while rank 0 waits in DDP's
    gradient all-reduce: without a collective time-out the job would hang forever; with dist_params:timeout 10 s
    rank 0 gives up, names itself and the time-out, and torchrun ends the job non-zero."""
    work = tiny / 'frozen'
    overrides = _overrides(tiny, loss={'stop_call': 2, 'raise_rank': 1}, total_iter=6, every=3,
                           extra={'dist_params': {'backend': 'nccl', 'port': 29500, 'timeout': 10}})
    start = time.time()
    proc = _process(tiny, work, overrides, '--launcher', 'pytorch', launcher=torchrun(2), check=False, timeout=600)
    elapsed = time.time() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert re.search(r'rank 0: error: .*dist_params:timeout', out), out[-4000:]
    assert elapsed < 400, f'the job took {elapsed:.0f} s to end'


def test_a_failing_rank_ends_the_whole_torchrun_job(tiny):
    """Rank 1 raises in its second iteration while rank 0 waits in DDP's gradient all-reduce: torchrun ends the job
    non-zero well within the 30-minute collective timeout, and the output names rank 1's error."""
    work = tiny / 'ddp'
    overrides = _overrides(tiny, loss={'raise_call': 2, 'raise_rank': 1}, total_iter=6, every=3)
    start = time.time()
    proc = _process(tiny, work, overrides, '--launcher', 'pytorch', launcher=torchrun(2), check=False, timeout=300)
    elapsed = time.time() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'rank 1: error: RuntimeError: injected failure on rank 1 at call 2' in out, out[-4000:]
    assert elapsed < 240, f'the job took {elapsed:.0f} s to end'
