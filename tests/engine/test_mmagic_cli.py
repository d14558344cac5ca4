"""MMagic's command-line habits on our tools/train.py and tools/test.py for mmengine configs: the positional
checkpoint of ``tools/test.py CONFIG CHECKPOINT``, ``--out`` (the test metrics in a file, as MMagic's tools/test.py),
``--work-dir``, and ``tools/train.py --auto-scale-lr`` (mmengine's ``auto_scale_lr``). Runs are in this process
(``run_config``) on the session's 4-iteration SRCNN run."""
import json
import os
import re

import pytest
import torch

from tests.engine.mmengine_runs import CONFIG, FAST, run_log
from tests.helpers import run_config

pytest.importorskip('mmagic')

TEST_FAST = ['test_dataloader.dataset.indices=1', 'test_dataloader.num_workers=0']


def _metric(log: str, name: str) -> float:
    return float(re.findall(rf'Iter\(test\) \[\d+/\d+\]\s+.*?{name}: ([\d.]+)', log)[-1])


def test_positional_checkpoint_out_and_work_dir(mmengine_srcnn_run, workdir):
    folder, _ = mmengine_srcnn_run
    os.symlink(folder / 'work', workdir / 'work')  # read only
    run_config(CONFIG, workdir, args=['work/iter_4.pth', '--out', 'metrics/test.json', '--work-dir', 'test_work'],
               cfg_options=TEST_FAST, train=False)
    log = run_log(workdir / 'test_work', set())  # --work-dir: the test run's log is there
    assert 'Load checkpoint from work/iter_4.pth' in log
    with open(workdir / 'metrics' / 'test.json') as f:
        metrics = json.load(f)
    assert set(metrics) == {'PSNR', 'SSIM'}
    # the file holds the metrics of this test, the ones the log prints (4 decimals there)
    assert metrics['PSNR'] == pytest.approx(_metric(log, 'PSNR'), abs=1e-4)
    assert metrics['SSIM'] == pytest.approx(_metric(log, 'SSIM'), abs=1e-4)


@pytest.mark.parametrize('args, message', [
    (['a.pth', '--checkpoint', 'b.pth'], "two checkpoints given: 'a.pth' and --checkpoint 'b.pth'"),
    ([], 'give the checkpoint to test: python tools/test.py CONFIG CHECKPOINT'),
    (['a.pth', '--out', 'metrics.txt'], "--out 'metrics.txt': the file name must end in .json"),
    (['no_such.pth'], "checkpoint 'no_such.pth' not found"),
])
def test_test_tool_usage_errors(tmp_path, capsys, args, message):
    run = run_config(CONFIG, tmp_path, args=args, train=False, capsys=capsys, check=False)
    assert run.status == 2 and f'error: {message}' in run.errors, run.errors[-2000:]


def test_auto_scale_lr_scales_by_the_batch_size(workdir):
    """Batch 4 in one process against base_batch_size 16: the learning rate of the first iteration is a quarter of
    the config's 1e-3 (the cosine schedule has not moved yet at iteration 1)."""
    run_config(CONFIG, workdir, args=['--work-dir', 'work', '--auto-scale-lr'],
               cfg_options=['train_cfg.max_iters=1', 'train_cfg.val_interval=10', *FAST[1:],
                            'auto_scale_lr.base_batch_size=16'])
    log = run_log(workdir / 'work', set())
    assert 'LR is set based on batch size of 16 and the current batch size is 4. Scaling the original LR by 0.25.' \
        in log
    lr = float(re.search(r'Iter\(train\) \[1/1\]\s+lr: ([\d.e+-]+)', log).group(1))
    assert lr == pytest.approx(2.5e-4, rel=1e-3)
    state = torch.load(workdir / 'work' / 'iter_1.pth', map_location='cpu', weights_only=False)
    assert state['optimizer']['param_groups'][0]['initial_lr'] == pytest.approx(2.5e-4)


def test_auto_scale_lr_needs_the_config_entry(workdir, capsys):
    run = run_config(CONFIG, workdir, args=['--auto-scale-lr'], capsys=capsys, check=False)
    assert run.status == 2
    assert '--auto-scale-lr: config' in run.errors and 'has no auto_scale_lr' in run.errors
    assert '--cfg-options auto_scale_lr.base_batch_size=N' in run.errors
    assert not (workdir / 'work_dirs').exists()  # refused before the Runner made its work dir
