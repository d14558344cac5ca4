"""Monitoring: progress bars over validation and test images on by default (BasicSR), TensorBoard on both paths, and
wandb, an optional extra: its options are refused with the install line when it is missing and run when it is
installed."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from plugins.engine.optional_packages import is_installed
from tests.helpers import ONE_THREAD, REPO, quick, run_options, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
SRCNN_TEST = 'options/test/classic/srcnn_x2.yml'
SRCNN_CONFIG = osp.join(REPO, 'options', 'mmagic', 'classic', 'srcnn_x2_demo.py')
WANDB = {'project': 'restoration-plugins-test', 'resume_id': None}
# tqdm's bar over the 3 demo validation images, as BasicSR draws it: "Test <image>: 100%|...| 3/3 [...]".
BAR = re.compile(r'Test \w+: +100%\|.*\| 3/3 \[')


def test_add_run_defaults_turns_progress_bars_on_unless_the_file_says_otherwise():
    from plugins.engine.basicsr.options import add_run_defaults
    assert add_run_defaults({'val': {'val_freq': 2}})['val']['pbar'] is True
    assert add_run_defaults({'val': {'pbar': False}})['val']['pbar'] is False
    assert 'val' not in add_run_defaults({'name': 'x'})


def test_basicsr_validation_and_test_show_progress_bars_and_training_writes_tensorboard_logs(workdir, capsys):
    overrides = dict(quick(SRCNN_TRAIN, total_iter=1, every=100), **{'logger:use_tb_logger': True})
    train = run_options(SRCNN_TRAIN, workdir, overrides, name='monitor_srcnn', capsys=capsys)
    assert BAR.search(train.errors), train.errors[-2000:]  # the validation at the end of training
    assert glob.glob(str(workdir / 'tb_logger' / train.opt['name'] / 'events.out.tfevents.*'))
    test = run_options(SRCNN_TEST, workdir, {'path:pretrain_network_g': str(train.models / 'net_g_latest.pth')},
                       train=False, capsys=capsys)
    assert BAR.search(test.errors), test.errors[-2000:]


def test_mmengine_runs_write_tensorboard_events_of_losses_and_metrics(mmengine_srcnn_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    folder, _ = mmengine_srcnn_run
    (events, ) = glob.glob(str(folder / 'work' / '*' / 'vis_data' / 'events.out.tfevents.*'))
    accumulator = EventAccumulator(events)
    accumulator.Reload()
    tags = set(accumulator.Tags()['scalars'])
    assert {'loss', 'lr', 'PSNR', 'SSIM'} <= tags, tags
    assert [e.step for e in accumulator.Scalars('loss')] == [1, 2, 3, 4]


def test_every_mmengine_config_logs_to_tensorboard():
    from mmengine.config import Config
    configs = [p for p in glob.glob(osp.join(REPO, 'options', 'mmagic', '**', '*.py'), recursive=True)
               if '_base_' not in osp.relpath(p, REPO).split(os.sep)]
    assert configs
    for path in configs:
        cfg = Config.fromfile(path, import_custom_modules=False)
        assert 'TensorboardVisBackend' in [b['type'] for b in cfg.visualizer.vis_backends], path


@pytest.mark.skipif(is_installed('wandb'), reason='wandb is installed: see the test that runs with it')
def test_wandb_options_without_wandb_are_refused_with_the_install_line(workdir, monkeypatch):
    from mmengine.config import Config

    from plugins.engine.basicsr.options_check import check_basicsr_options
    from plugins.engine.errors import OptionsError
    from plugins.engine.mmengine.config_check import check_mmengine_config
    monkeypatch.chdir(workdir)
    path = write_options(SRCNN_TRAIN, workdir / 'wandb.yml', {'logger:wandb': WANDB})
    with pytest.raises(OptionsError, match=r'wandb\.yml: logger:wandb:project needs wandb, which is not installed: '
                                           r'pip install wandb .*; or set logger:wandb:project: ~'):
        check_basicsr_options(path)
    cfg = Config.fromfile(SRCNN_CONFIG)
    cfg.visualizer.vis_backends.append(dict(type='WandbVisBackend'))
    with pytest.raises(OptionsError, match=r'x\.py: visualizer\.vis_backends\[2\] \(WandbVisBackend\) needs wandb, '
                                           r'which is not installed: pip install wandb'):
        check_mmengine_config(cfg, 'x.py')


def test_wandb_needs_the_tensorboard_logger_in_basicsr(workdir, monkeypatch):
    from plugins.engine.basicsr.options_check import check_basicsr_options
    from plugins.engine.errors import OptionsError
    monkeypatch.chdir(workdir)
    monkeypatch.setattr('plugins.engine.optional_packages.is_installed', lambda module: True)
    path = write_options(SRCNN_TRAIN, workdir / 'wandb.yml', {'logger:wandb': WANDB, 'logger:use_tb_logger': False})
    with pytest.raises(OptionsError, match=r'logger:wandb needs logger:use_tb_logger: true'):
        check_basicsr_options(path)


@pytest.mark.skipif(not is_installed('wandb'), reason='needs the wandb extra (pip install -e ".[wandb]")')
def test_wandb_options_run_when_wandb_is_installed(workdir):
    """A training run with logger:wandb:project, offline: wandb writes its run folder in the working directory."""
    path = write_options(SRCNN_TRAIN, workdir / 'wandb.yml',
                         dict(quick(SRCNN_TRAIN, total_iter=1, every=100),
                              **{'logger:wandb': WANDB, 'logger:use_tb_logger': True}))
    env = dict(os.environ, WANDB_MODE='offline', WANDB_DIR=str(workdir), WANDB_SILENT='true', **ONE_THREAD)
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), '-opt', path], cwd=str(workdir),
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert glob.glob(str(workdir / 'wandb' / 'offline-run-*')), os.listdir(workdir)
