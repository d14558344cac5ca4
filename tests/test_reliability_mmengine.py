"""Reliability of the mmengine/MMagic path: a run killed with SIGKILL and resumed with --resume ends with the same
weights as an uninterrupted one, and --resume skips a truncated latest checkpoint."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO

pytest.importorskip('mmagic')

CONFIG = os.path.join(REPO, 'options/mmagic/classic/srcnn_x2_demo.py')
# A test-only entry: with KILL_BEFORE_ITER=N it SIGKILLs its own process when iteration N+1 is about to start (the
# hook call is wrapped here, in the test script, so nothing of this ships), then runs the tools/train.py entry point.
ENTRY = '''
import os, signal, sys
sys.path.insert(0, {repo!r})
import plugins
from mmengine.runner import Runner

call_hook = Runner.call_hook


def killing_call_hook(self, fn_name, **kwargs):
    if fn_name == 'before_train_iter' and self.iter == int(os.environ.get('KILL_BEFORE_ITER', -1)):
        os.kill(os.getpid(), signal.SIGKILL)
    return call_hook(self, fn_name, **kwargs)


Runner.call_hook = killing_call_hook
from plugins.common.cli import main
main(sys.argv[1:], is_train=True)
'''
QUICK = ['train_cfg.max_iters=8', 'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=4',
         'default_hooks.checkpoint.save_best=None', 'default_hooks.logger.interval=1',
         'train_dataloader.num_workers=0', 'train_dataloader.batch_size=2']


def _train(workdir, name, *extra, check=True, env=None):
    cmd = [sys.executable, str(workdir / 'entry.py'), CONFIG, '--work-dir', f'work_dirs/{name}', *extra,
           '--cfg-options', *QUICK]
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run(cmd, cwd=str(workdir), capture_output=True, text=True, timeout=300, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def test_killed_mmengine_run_resumes_to_the_same_weights(workdir):
    """8 iterations straight vs. SIGKILL before iteration 7 (checkpoint at 4), a truncated iter_6.pth named by
    last_checkpoint (a kill during a non-atomic save), then --resume to 8: identical generator weights."""
    (workdir / 'entry.py').write_text(ENTRY.format(repo=REPO))
    _train(workdir, 'straight')
    killed = _train(workdir, 'killed', check=False, env={'KILL_BEFORE_ITER': '6'})
    assert killed.returncode == -9, killed.stderr[-3000:]
    run = workdir / 'work_dirs' / 'killed'
    data = (run / 'iter_4.pth').read_bytes()
    (run / 'iter_6.pth').write_bytes(data[:len(data) // 3])
    (run / 'last_checkpoint').write_text(str(run / 'iter_6.pth'))
    resumed = _train(workdir, 'killed', '--resume')
    assert 'cannot resume from' in resumed.stdout + resumed.stderr and 'iter_6.pth' in resumed.stdout + resumed.stderr
    a, b = (torch.load(workdir / 'work_dirs' / n / 'iter_8.pth', map_location='cpu')['state_dict']
            for n in ('straight', 'killed'))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), 'weights differ after the resume'
