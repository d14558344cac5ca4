"""Blind SR line end to end: every options file of options/train/blindsr trains a few iterations through
tools/train.py in this process (the demo one also with 2-process torchrun), validation per degradation task,
tools/test.py on the fixed-task test options, tools/infer.py with a support folder and with self-support, and the
bad-input errors."""
import glob
import os
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import build_once, make_workdir
from tests.helpers import (call_tool, has_option, options, quick, repo_path, run_options, run_tool, torchrun,
                           write_options)

torch.set_num_threads(1)
DEMO = 'options/train/blindsr/cmdsr_x4_demo.yml'
PLAIN = 'options/train/blindsr/basenet_x4_demo.yml'
TEST = 'options/test/blindsr/cmdsr_x4_fixed_tasks.yml'
TRAIN_OPTIONS = sorted(os.path.relpath(p, repo_path('')) for p in glob.glob(repo_path('options/train/blindsr/*.yml')))
# A small network, 2 tasks of small crops, 2 iterations, and 24x24-pixel validation crops: seconds per run.
SMALL_NET = {'network_g:num_feat': 16, 'network_g:num_block': 2}
# The options written for DIV2K/Set5 (paper, Real-ESRGAN) on the demo data with small tasks (the keys they have).
DEMO_DATA = {'num_gpu': 0, 'datasets:train:dataroot_gt': 'datasets/demo/train/HR',
             'datasets:val:dataroot_gt': 'datasets/demo/val/HR', 'datasets:train:gt_size': 32,
             'datasets:train:patches_per_task': 4, 'network_g:support_size': 2, 'datasets:val:support_size': 2,
             'datasets:val:support_patch': 8}


def small(rel: str) -> dict:
    """Overrides for a 2-iteration run of ``rel``: SMALL_NET, 96-pixel validation crops, no image cache, and for
    the options written for DIV2K/Set5 the demo data and small tasks."""
    opt = options(rel)
    overrides = {**quick(rel, total_iter=2, every=2, batch=2), **SMALL_NET}
    overrides.update({f'datasets:{phase}:gt_crop': 96 for phase, ds in opt['datasets'].items()
                      if 'gt_crop' in ds and ds['gt_crop'] is None})
    if has_option(opt, 'datasets:train:cache_images'):
        overrides['datasets:train:cache_images'] = False
    if has_option(opt, 'datasets:train:persistent_workers'):  # torch refuses it without workers
        overrides['datasets:train:persistent_workers'] = False
    if not opt['datasets']['train']['dataroot_gt'].startswith('datasets/demo/'):
        overrides.update({k: v for k, v in DEMO_DATA.items() if has_option(opt, k)})
    return overrides


def _psnr_per_task(log: str) -> dict:
    return {m[0]: float(m[1]) for m in re.findall(r'Validation (\S+)\n\s+# psnr: ([\d.]+)', log)}


def _run(folder, rel) -> SimpleNamespace:
    """A run of the shared ``trained`` folder: its options as run and experiment folder."""
    path = folder / os.path.basename(rel)
    opt = options(str(path))
    return SimpleNamespace(options_file=path, opt=opt, folder=folder / 'experiments' / opt['name'],
                           checkpoint=folder / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth')


def _log(run) -> str:
    logs = sorted(glob.glob(str(run.folder / 'train_*.log')), key=os.path.getmtime)
    assert logs, f'no training log in {run.folder}'
    return open(logs[-1]).read()


@pytest.fixture(scope='session')
def trained(shared_dir, demo_data) -> dict:
    """Every options file of options/train/blindsr trained for 2 iterations through tools/train.py in this process,
    once per session, in one shared folder: {options file: run}. Tests must not write there."""
    def build(folder):
        make_workdir(folder, demo_data)
        for rel in TRAIN_OPTIONS:
            run_options(rel, folder, small(rel))
    folder = build_once(shared_dir, 'blindsr_trained', build)
    return {rel: _run(folder, rel) for rel in TRAIN_OPTIONS}


@pytest.fixture
def demo_run(trained):
    return trained[DEMO]


def test_demo_training_steps_validation_per_task_and_checkpoint(demo_run):
    log = _log(demo_run)
    first = re.search(r'iter:\s+1,.*', log).group(0)
    second = re.search(r'iter:\s+2,.*', log).group(0)
    # the ConditionNet step runs at iteration 1 (and then every 10th), the BaseNet steps every iteration
    for key in ('l_contrast', 'd_intra', 'd_cross', 'l_pix_condition', 'l_pix'):
        assert key in first, first
    assert 'l_contrast' not in second and 'l_pix' in second
    psnr = _psnr_per_task(log)
    assert set(psnr) == {'blur2.6_noise15', 'blur1.0_noise0'} and all(v > 0 for v in psnr.values())
    ckpt = torch.load(demo_run.checkpoint, map_location='cpu', weights_only=True)
    for key in ('params', 'params_ema'):
        assert any(k.startswith('sr_net.modulations.') for k in ckpt[key])
        assert any(k.startswith('condition_net.') for k in ckpt[key])
    state = torch.load(demo_run.folder / 'training_states' / '2.state', map_location='cpu', weights_only=True)
    assert len(state['optimizers']) == 2 and len(state['schedulers']) == 2  # BaseNet and ConditionNet
    sr_params = state['optimizers'][0]['param_groups'][0]['params']
    cond_params = state['optimizers'][1]['param_groups'][0]['params']
    assert len(sr_params) == 8 * 2 + 4 * 2 and len(cond_params) == 4 * 2  # 8 convs + 4 modulations; 4 convs


def _losses(log: str, iteration: int) -> str:
    """The losses of an iteration's log line (after its learning rates and times)."""
    return re.search(rf'iter:\s+{iteration},.*time \(data\): [\d.]+ \([\d.]+\)\] (.*)', log).group(1)


def test_degrading_in_the_workers_trains_as_on_the_device(workdir, demo_run):
    """degrade_on: worker (the dataset degrades each task) and device (the model degrades the batch, the demo's
    default) give the same losses: the same crops, draws and noise (drawn in task order from torch's generator,
    no data workers here), the same LR."""
    assert options(DEMO)['datasets']['train']['degrade_on'] == 'device'
    run = run_options(DEMO, workdir, {**small(DEMO), 'datasets:train:degrade_on': 'worker'})
    log, device_log = run.log('train_*.log'), _log(demo_run)
    for iteration in (1, 2):
        assert _losses(log, iteration) == _losses(device_log, iteration)
    assert 'l_contrast' in _losses(log, 1)


def test_fixed_task_test_options_report_psnr_per_task(workdir, demo_run):
    overrides = {**SMALL_NET, 'path:pretrain_network_g': str(demo_run.checkpoint)}
    overrides.update({f'datasets:{phase}:gt_crop': 96 for phase in options(TEST)['datasets']})
    run = run_options(TEST, workdir, overrides, train=False)
    text = run.log('test_*.log')
    for task in ('blur2.6_noise15', 'blur0_noise0', 'blur1.5_noise50', 'blur3.5_noise5'):
        assert re.search(rf'Validation {re.escape(task)}\n\s+# psnr: [\d.]+', text), task
    assert glob.glob(str(run.folder / 'visualization' / 'blur2.6_noise15' / '*.png'))


def test_test_options_read_the_demo_checkpoint():
    assert options(TEST)['path']['pretrain_network_g'] == \
        f"experiments/{options(DEMO)['name']}/models/net_g_latest.pth"


@pytest.mark.parametrize('rel', [p for p in TRAIN_OPTIONS if p != DEMO], ids=lambda p: os.path.basename(p)[:-4])
def test_other_training_options_run(trained, rel):
    psnr = _psnr_per_task(_log(trained[rel]))
    assert psnr and all(v > 0 for v in psnr.values())


def test_torchrun_two_processes(workdir):
    opt = write_options(DEMO, workdir / 'ddp.yml', small(DEMO))
    run_tool(['train.py', '-opt', opt, '--launcher', 'pytorch'], workdir, launcher=torchrun(2))
    run_folder = workdir / 'experiments' / options(DEMO)['name']
    log = _log(SimpleNamespace(folder=run_folder))
    assert 'l_contrast' in log and _psnr_per_task(log)
    assert os.path.isfile(run_folder / 'models' / 'net_g_latest.pth')


def test_mismatched_patches_per_task_is_refused():
    from plugins.blindsr.cmdsr_arch import CMDSR, CMDSRBaseNet
    from plugins.blindsr.cmdsr_model import check_task_options
    opt = {'datasets': {'train': {'patches_per_task': 6}}}
    with pytest.raises(ValueError, match='patches_per_task is 6, but network_g:support_size is 5'):
        check_task_options(opt, CMDSR(support_size=5, num_feat=8, num_block=1))
    check_task_options(opt, CMDSR(condition='set', num_feat=8, num_block=1))  # any support size
    check_task_options(opt, CMDSRBaseNet(num_feat=8, num_block=1, modulated=False))  # no ConditionNet


# ---------------------------------------------------------------------------------------------------------------
# tools/infer.py
# ---------------------------------------------------------------------------------------------------------------
def _write_images(folder, sizes, channels=3):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        img = rng.integers(0, 256, (h, w) if channels == 1 else (h, w, channels), dtype=np.uint8)
        assert cv2.imwrite(str(folder / f'{i:02d}.png'), img)
    return str(folder)


@pytest.fixture(scope='module')
def infer_setup(tmp_path_factory, trained):
    folder = tmp_path_factory.mktemp('blindsr_infer')
    opt = write_options(DEMO, folder / 'infer.yml', SMALL_NET)
    inputs = _write_images(folder / 'infer_in', [(20, 24)])
    return folder, opt, str(trained[DEMO].checkpoint), inputs


def _infer(setup, *extra, capsys=None):
    """Run tools/infer.py's main() in this process (the imports are paid once); returns (exit code, stderr)."""
    workdir, opt, ckpt, inputs = setup
    run = call_tool(['infer.py', '-opt', opt, '--checkpoint', ckpt, '--input', inputs, '--device', 'cpu', *extra],
                    workdir, capsys, check=False)
    return run.status, run.err


def test_infer_with_a_support_folder_and_with_self_support(infer_setup, capsys):
    workdir = infer_setup[0]
    support = _write_images(workdir / 'support_ok', [(10, 12)] * 5)
    runs = [('--support', support, '--output', str(workdir / 'out_folder')),
            ('--self-support', '--output', str(workdir / 'out_self'), '--tile', '12', '--tile-pad', '2')]
    for extra in runs:
        code, err = _infer(infer_setup, *extra, capsys=capsys)
        assert code == 0, err
    for out in ('out_folder', 'out_self'):
        files = glob.glob(str(workdir / out / '*.png'))
        assert len(files) == 1 and cv2.imread(files[0]).shape == (80, 96, 3)


@pytest.mark.parametrize('case, message', [
    ('empty', 'the folder has no images'),
    ('sizes', 'all support patches must have the same size'),
    ('gray', 'has 1 channel(s), the network takes 3'),
    ('count', 'has 3 support image(s), but the network was built for support size 5'),
    ('none', 'needs a support set: give --support DIR'),
    ('both', 'not both'),
])
def test_infer_bad_support_input(infer_setup, case, message, capsys):
    workdir = infer_setup[0]
    folder = workdir / f'support_{case}'
    if case == 'empty':
        os.makedirs(folder, exist_ok=True)
    elif case == 'sizes':
        _write_images(folder, [(10, 12)] * 4 + [(12, 10)])
    elif case == 'gray':
        _write_images(folder, [(10, 12)] * 5, channels=1)
    elif case == 'count':
        _write_images(folder, [(10, 12)] * 3)
    extra = {'none': [], 'both': ['--support', str(folder), '--self-support']}.get(case, ['--support', str(folder)])
    code, err = _infer(infer_setup, *extra, capsys=capsys)
    assert code == 2 and message in err, err


def test_task_evaluation_of_the_comparison_tool(trained, demo_data):
    """The benchmark behind tools/blindsr/compare.py: PSNR per task for CMDSR (with its own and another task's
    support), the unconditioned BaseNet and bicubic, on the same seeded LR images."""
    from plugins.blindsr.task_evaluation import evaluate_tasks, markdown_table, task_datasets
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    nets = {}
    for name, rel in (('cmdsr', DEMO), ('plain', PLAIN)):
        run = trained[rel]
        net = build_network_from_options(str(run.options_file))
        load_network_weights(net, str(run.checkpoint))
        nets[name] = net.eval()
    tasks = task_datasets(f'{demo_data}/val/HR', 4, [(0, 0), (2.6, 15)], support_size=5, support_patch=12)
    for ds in tasks:
        ds.paths = ds.paths[:1]  # one image per task keeps it quick
    scores = evaluate_tasks(nets, tasks, 4, wrong_support_for=['cmdsr'])
    assert set(scores) == {'bicubic', 'cmdsr', 'cmdsr (support of another task)', 'plain'}
    assert list(scores['bicubic']) == ['blur0_noise0', 'blur2.6_noise15']
    assert scores['bicubic']['blur0_noise0'] > scores['bicubic']['blur2.6_noise15']  # the harder task
    table = markdown_table(scores)
    assert table.count('\n') == 6 and '| bicubic |' in table
