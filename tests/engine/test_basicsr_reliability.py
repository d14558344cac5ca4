"""Reliability of BasicSR training through tools/train.py: exact resume after SIGKILL, atomic checkpoints and a
fallback past a truncated one, the non-finite loss guard, data faults, and a failing rank under torchrun.

Faults are injected by a test-only entry script (written to the test's folder, never shipped): it registers
``ScriptedMSELoss``, an MSE loss that returns NaN, kills its own process or raises on chosen calls (one call per
training iteration), then runs the normal ``tools/train.py`` entry point.
"""
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import REPO, quick_overrides, torchrun, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
EXP = 'experiments/001_SRCNN_x2_Y_demo'

ENTRY = '''
import os, signal, sys
sys.path.insert(0, {repo!r})
import plugins
import torch.nn.functional as F
from torch import nn
from basicsr.utils.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class ScriptedMSELoss(nn.Module):
    """MSE that is NaN on the calls in nan_calls, SIGKILLs the process on kill_call, raises on raise_call
    (on rank raise_rank only, when given)."""

    def __init__(self, loss_weight=1.0, reduction='mean', nan_calls=(), kill_call=0, raise_call=0, raise_rank=-1):
        super().__init__()
        self.loss_weight, self.nan_calls, self.kill_call = loss_weight, set(nan_calls), kill_call
        self.raise_call, self.raise_rank, self.calls = raise_call, raise_rank, 0

    def forward(self, pred, target):
        self.calls += 1
        rank = int(os.environ.get('RANK', 0))
        if self.calls == self.kill_call:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.calls == self.raise_call and self.raise_rank in (-1, rank):
            raise RuntimeError(f'injected failure on rank {{rank}} at call {{self.calls}}')
        loss = F.mse_loss(pred, target) * self.loss_weight
        return loss * float('nan') if self.calls in self.nan_calls else loss


from plugins.engine.cli import main
main(sys.argv[1:], is_train=True)
'''


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, demo_data):
    """A working directory with 6 training pairs (3 batches of 2 per epoch) and 1 validation pair, and the entry
    script with the scripted loss."""
    root = tmp_path_factory.mktemp('reliability')
    for sub, src, count in (('train/HR', 'train/HR_sub', 6), ('train/LR', 'train/LR_bicubic_sub/X2', 6),
                            ('val/HR', 'train/HR_sub', 1), ('val/LR', 'train/LR_bicubic_sub/X2', 1)):
        os.makedirs(root / 'data' / sub)
        for name in sorted(os.listdir(osp.join(demo_data, src)))[:count]:
            shutil.copy(osp.join(demo_data, src, name), root / 'data' / sub / name)
    (root / 'entry.py').write_text(ENTRY.format(repo=REPO))
    return root


def _options(workdir, name='x.yml', loss='', total_iter=8, every=4, extra=None):
    """The SRCNN options on the tiny data, ``total_iter`` iterations of batch 2, checkpoints and validation every
    ``every``, with the scripted loss given extra arguments ``loss`` (YAML flow mapping entries)."""
    replace = quick_overrides(total_iter=total_iter, every=every, batch=2, period=total_iter)
    replace.update({
        r'datasets/demo/train/HR_sub$': '../data/train/HR', r'datasets/demo/train/LR_bicubic_sub/X2$': '../data/train/LR',
        r'datasets/demo/val/HR$': '../data/val/HR', r'datasets/demo/val/LR_bicubic/X2$': '../data/val/LR',
        r'type: MSELoss.*$': f'type: ScriptedMSELoss{", " if loss else ""}{loss}',
        r'^  pixel_opt:$': '  pixel_opt: {',
        r'^    loss_weight: 1.0\n    reduction: mean$': '    loss_weight: 1.0 }',
    })
    replace.update(extra or {})
    os.makedirs(workdir, exist_ok=True)
    path = write_options(SRCNN_TRAIN, workdir / name, replace)
    text = open(path).read().replace('  pixel_opt: {\n    type: ', '  pixel_opt: {type: ').replace(
        '\n    loss_weight: 1.0 }', ', loss_weight: 1.0}')
    open(path, 'w').write(text)
    return path


def _train(tiny, workdir, opt, *args, check=True, launcher=None, timeout=300):
    cmd = (launcher or [sys.executable]) + [str(tiny / 'entry.py'), '-opt', opt] + list(args)
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=str(workdir), capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def _log(workdir):
    return ''.join(open(p).read() for p in sorted(glob.glob(str(workdir / EXP / 'train_*.log'))))


def _losses(log):
    return {int(i): v for i, v in re.findall(r'iter:\s+(\d+),.*?l_pix: (\S+)', log)}


def test_killed_run_resumes_to_the_same_losses_and_weights(tiny):
    """8 iterations straight vs. SIGKILL during iteration 6 (state saved at 4, inside epoch 1 of 3-batch epochs)
    and --auto_resume to 8: identical weights, EMA, optimizer moments and logged losses."""
    straight, killed = tiny / 'straight', tiny / 'killed'
    _train(tiny, straight, _options(straight))
    proc = _train(tiny, killed, _options(killed, loss='kill_call: 6'), check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert sorted(os.listdir(killed / EXP / 'training_states')) == ['4.state']
    # What a kill during a non-atomic save of iteration 6 would leave: --auto_resume must report it and use 4.
    data = (killed / EXP / 'training_states' / '4.state').read_bytes()
    (killed / EXP / 'training_states' / '6.state').write_bytes(data[:len(data) // 2])
    proc = _train(tiny, killed, _options(killed), '--auto_resume')
    assert re.search(r'cannot resume from iteration 6: \S+6\.state: .*; trying an older one', proc.stdout)
    assert 'skipping its first 1 of 3 batches, generator states restored: True' in _log(killed)

    a, b = (torch.load(w / EXP / 'models' / 'net_g_latest.pth') for w in (straight, killed))
    for key in ('params', 'params_ema'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name} differs after the resume'
    sa, sb = (torch.load(w / EXP / 'training_states' / '8.state') for w in (straight, killed))
    for name, moment in sa['optimizers'][0]['state'][0].items():
        assert torch.equal(moment, sb['optimizers'][0]['state'][0][name]), name
    la, lb = _losses(_log(straight)), _losses(_log(killed))
    assert set(la) == set(range(1, 9)) and all(la[i] == lb[i] for i in range(1, 9)), (la, lb)


def test_nan_losses_are_skipped_then_stop_the_run_with_the_last_good_weights(tiny):
    """NaN at iterations 3, 5 and 6 with train:nonfinite_patience 2: iteration 3 is skipped with a warning and
    training goes on; 5 and 6 in a row stop the run with one message and a checkpoint equal to iteration 4's."""
    work = tiny / 'nan'
    opt = _options(work, loss='nan_calls: [3, 5, 6]',
                   extra={r'^  warmup_iter: -1': '  warmup_iter: -1\n  nonfinite_patience: 2'})
    proc = _train(tiny, work, opt, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert ('error: training stopped at iteration 6: 2 consecutive iterations had a non-finite loss or gradient '
            '(l_pix=nan)') in proc.stderr and 'Traceback' not in proc.stderr
    log = _log(work)
    assert 'Non-finite loss at iteration 3 (l_pix=nan): step of optimizer_g skipped [1 in a row' in log
    assert 'Non-finite loss at iteration 6' in log and 'iteration 7' not in log
    assert 'Non-finite guard: 3 iteration(s) had a non-finite loss or gradient and were skipped' in log
    good, saved = (torch.load(work / EXP / 'models' / f'net_g_{i}.pth') for i in (4, 6))
    assert all(torch.equal(good['params'][k], saved['params'][k]) for k in good['params'])  # 5, 6 skipped
    assert torch.load(work / EXP / 'training_states' / '6.state')['iter'] == 6


def test_a_failing_rank_ends_the_whole_torchrun_job(tiny):
    """Rank 1 raises in its second iteration while rank 0 waits in DDP's gradient all-reduce: torchrun ends the job
    non-zero well within the 30-minute collective timeout, and the output names rank 1's error."""
    work = tiny / 'ddp'
    opt = _options(work, loss='raise_call: 2, raise_rank: 1', total_iter=6, every=3)
    start = time.time()
    proc = _train(tiny, work, opt, '--launcher', 'pytorch', launcher=torchrun(2), check=False, timeout=300)
    elapsed = time.time() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'rank 1: error: RuntimeError: injected failure on rank 1 at call 2' in out, out[-4000:]
    assert elapsed < 240, f'the job took {elapsed:.0f} s to end'
