"""End-to-end BasicSR runs through tools/train.py and tools/test.py on CPU with the demo data: in this process
(``run_options``), except torchrun, which is a job of two processes."""
import re
import subprocess
import sys

import torch

from tests.helpers import options, quick, run_options, run_tool, torchrun, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
SRCNN_TEST = 'options/test/classic/srcnn_x2.yml'
# A few iterations of the real options file: validation and checkpoints every 3 iterations (cosine period 12, so
# that the resume to 9 iterations stays inside it).
QUICK = quick(SRCNN_TRAIN, total_iter=6, every=3, batch=4, period=12)


def test_train_validate_checkpoint_then_auto_resume_then_test(workdir, capsys):
    run = run_options(SRCNN_TRAIN, workdir, QUICK, capsys=capsys)
    models = run.models
    assert {p.name for p in models.iterdir()} >= {'net_g_3.pth', 'net_g_6.pth', 'net_g_latest.pth'}
    assert (run.folder / 'training_states' / '6.state').is_file()
    log = run.log('train_*.log')
    psnr = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', log)]
    assert len(psnr) >= 2 and all(v > 0 for v in psnr), log[-2000:]
    ckpt = torch.load(models / 'net_g_6.pth', map_location='cpu')
    assert set(ckpt) == {'params', 'params_ema'}

    # --auto_resume continues from the last state (iteration 6) to the new total, on CPU.
    run = run_options(SRCNN_TRAIN, workdir, QUICK, args=['--auto_resume', '--force_yml', 'train:total_iter=9'],
                      capsys=capsys)
    log = run.log('train_*.log')
    assert 'Resuming training from epoch' in log and 'iter: 6.' in log, log[-3000:]
    assert 'Start training from epoch' in log and re.search(r'iter:\s+9,', log)
    assert (models / 'net_g_9.pth').is_file()

    # tools/test.py reads the trained checkpoint (params_ema) and writes metrics and images under results/.
    test_opt = options(SRCNN_TEST)
    assert test_opt['path']['pretrain_network_g'] == f"experiments/{run.opt['name']}/models/net_g_latest.pth"
    test = run_options(SRCNN_TEST, workdir, train=False, capsys=capsys)
    test_log = test.log('test_*.log')
    assert re.search(r'# psnr: [\d.]+', test_log) and re.search(r'# ssim: [\d.]+', test_log)
    assert len(list((test.folder / 'visualization' / 'demo_val').glob('*.png'))) == 3


def test_lmdb_training_with_validation_on_the_same_lmdb(workdir, capsys):
    """Train and validation both read train/HR_sub.lmdb with num_workers 0: two environments on one LMDB in one
    process, which py-lmdb >= 2 refuses (the reason for the lmdb<2 pin)."""
    gt, lq = 'datasets/demo/train/HR_sub.lmdb', 'datasets/demo/train/LR_bicubic_sub/X2.lmdb'
    lmdb_opts = dict(quick(SRCNN_TRAIN, total_iter=3, every=3, batch=4, period=12))
    for phase in ('train', 'val'):
        lmdb_opts.update({f'datasets:{phase}:dataroot_gt': gt, f'datasets:{phase}:dataroot_lq': lq,
                          f'datasets:{phase}:io_backend': {'type': 'lmdb'}})
    lmdb_opts['val:val_freq'] = 1000  # the validation at the end of training only
    run = run_options(SRCNN_TRAIN, workdir, lmdb_opts, capsys=capsys)
    log = run.log('train_*.log')
    assert "'type': 'lmdb'" in log or 'type: lmdb' in log
    assert re.search(r'# psnr: [\d.]+', log)


def test_torchrun_two_processes_on_cpu(workdir):
    """`torchrun --nproc_per_node=2 tools/train.py -opt X --launcher pytorch` on CPU: gloo, DDP without device_ids;
    both ranks train to the end (a rank that stopped would leave the other waiting in DDP's all-reduce) and exit
    cleanly."""
    opt = write_options(SRCNN_TRAIN, workdir / 'srcnn_ddp.yml', QUICK)
    proc = run_tool(['train.py', '-opt', opt, '--launcher', 'pytorch'], workdir, launcher=torchrun(2), timeout=300)
    exp = workdir / 'experiments' / options(SRCNN_TRAIN)['name']
    (log_file,) = exp.glob('train_*.log')
    log = log_file.read_text()
    assert re.search(r'world_size: 2', log), log[:3000]
    assert re.search(r'iter:\s+6,', log) and 'End of training' in log, log[-3000:]
    assert (exp / 'models' / 'net_g_6.pth').is_file() and (exp / 'models' / 'net_g_latest.pth').is_file()
    assert 'Traceback' not in proc.stderr and not re.search(r'^(rank \d+: )?error: ', proc.stderr, re.M), \
        proc.stderr[-3000:]
    assert 'Device: cpu, process group: gloo' in proc.stdout  # the backend actually used, not dist_params' nccl


def test_the_suite_hides_gpus_from_the_runs_it_starts():
    """On a GPU machine the CPU torchrun tests would otherwise take nccl and the GPU (tests/conftest.py)."""
    probe = 'import os, torch; print(repr(os.environ["CUDA_VISIBLE_DEVICES"]), torch.cuda.device_count())'
    proc = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=300, check=True)
    assert proc.stdout.split() == ["''", '0'] and not torch.cuda.is_available()


def test_debug_flag_prefixes_the_experiment_name(workdir, capsys):
    run = run_options(SRCNN_TRAIN, workdir, QUICK, args=['--debug', '--force_yml', 'train:total_iter=2'],
                      capsys=capsys)
    assert run.folder.name == f"debug_{options(SRCNN_TRAIN)['name']}"
    assert (run.models / 'net_g_latest.pth').is_file()
    assert not (workdir / 'experiments' / options(SRCNN_TRAIN)['name']).exists()
