"""End-to-end BasicSR runs through tools/train.py and tools/test.py on CPU with the demo data."""
import glob
import os.path as osp
import re

import pytest
import torch

from tests.helpers import run_tool, torchrun, write_options, quick_overrides

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
SRCNN_TEST = 'options/test/classic/srcnn_x2.yml'
# A few iterations of the real options file: validation and checkpoints every 3 iterations.
QUICK = quick_overrides(total_iter=6, every=3, batch=4, period=12)
EXP = 'experiments/001_SRCNN_x2_Y_demo'


def _train_log(workdir):
    logs = sorted(glob.glob(str(workdir / EXP / 'train_*.log')))
    assert logs, 'no training log written'
    return open(logs[-1]).read()


def test_train_validate_checkpoint_then_auto_resume_then_test(workdir):
    opt = write_options(SRCNN_TRAIN, workdir / 'srcnn.yml', QUICK)
    run_tool(['train.py', '-opt', opt], workdir)
    models = workdir / EXP / 'models'
    assert {p.name for p in models.iterdir()} >= {'net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth'}
    assert (workdir / EXP / 'training_states' / '6.state').is_file()
    log = _train_log(workdir)
    psnr = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', log)]
    assert len(psnr) >= 2 and all(v > 0 for v in psnr), log[-2000:]
    ckpt = torch.load(models / 'net_g_6.pth', map_location='cpu')
    assert set(ckpt) == {'params', 'params_ema'}

    # --auto_resume continues from the last state (iteration 6) to the new total, on CPU.
    run_tool(['train.py', '-opt', opt, '--auto_resume', '--force_yml', 'train:total_iter=9'], workdir)
    log = _train_log(workdir)
    assert 'Resuming training from epoch' in log and 'iter: 6.' in log, log[-3000:]
    assert 'Start training from epoch' in log and re.search(r'iter:\s+9,', log)
    assert (models / 'net_g_9.pth').is_file()

    # tools/test.py reads the trained checkpoint (params_ema) and writes metrics and images under results/.
    test_opt = write_options(SRCNN_TEST, workdir / 'srcnn_test.yml')
    run_tool(['test.py', '-opt', test_opt], workdir)
    result_dir = workdir / 'results' / '001_SRCNN_x2_Y_demo_test'
    test_log = open(glob.glob(str(result_dir / 'test_*.log'))[0]).read()
    assert re.search(r'# psnr: [\d.]+', test_log) and re.search(r'# ssim: [\d.]+', test_log)
    assert len(glob.glob(str(result_dir / 'visualization' / 'demo_val' / '*.png'))) == 3



def test_lmdb_training_with_validation_on_the_same_lmdb(workdir):
    """Train and validation both read train/HR_sub.lmdb with num_workers 0: two environments on one LMDB in one
    process, which py-lmdb >= 2 refuses (the reason for the lmdb<2 pin)."""
    lmdb_opts = dict(QUICK)
    lmdb_opts.update({
        r'^  total_iter: \d+': '  total_iter: 3',
        r'train/HR_sub$': 'train/HR_sub.lmdb',
        r'train/LR_bicubic_sub/X2$': 'train/LR_bicubic_sub/X2.lmdb',
        r'val/HR$': 'train/HR_sub.lmdb',
        r'val/LR_bicubic/X2$': 'train/LR_bicubic_sub/X2.lmdb',
        r'type: disk': 'type: lmdb',
    })
    opt = write_options(SRCNN_TRAIN, workdir / 'srcnn_lmdb.yml', lmdb_opts)
    run_tool(['train.py', '-opt', opt], workdir)
    log = _train_log(workdir)
    assert "'type': 'lmdb'" in log or 'type: lmdb' in log
    assert re.search(r'# psnr: [\d.]+', log)


def test_torchrun_two_processes_on_cpu(workdir):
    """`torchrun --nproc_per_node=2 tools/train.py -opt X --launcher pytorch` on CPU: gloo, DDP without device_ids."""
    opt = write_options(SRCNN_TRAIN, workdir / 'srcnn_ddp.yml', QUICK)
    proc = run_tool(['train.py', '-opt', opt, '--launcher', 'pytorch'], workdir, launcher=torchrun(2))
    log = _train_log(workdir)
    assert re.search(r'world_size: 2', log), log[:3000]
    assert (workdir / EXP / 'models' / 'net_g_latest.pth').is_file()
    assert 'Error' not in proc.stderr.split('Traceback')[0] or proc.returncode == 0


@pytest.mark.parametrize('flag', ['--debug'])
def test_debug_flag_prefixes_the_experiment_name(workdir, flag):
    opt = write_options(SRCNN_TRAIN, workdir / 'srcnn.yml', QUICK)
    run_tool(['train.py', '-opt', opt, flag, '--force_yml', 'train:total_iter=2'], workdir)
    assert (workdir / 'experiments' / 'debug_001_SRCNN_x2_Y_demo' / 'models' / 'net_g_latest.pth').is_file()
