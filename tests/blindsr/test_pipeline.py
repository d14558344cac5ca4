"""Blind SR line end to end: every options file of options/train/blindsr trains a few iterations through
tools/train.py (the demo one also with 2-process torchrun), validation per degradation task, tools/test.py on the
fixed-task test options, tools/infer.py with a support folder and with self-support, and the bad-input errors."""
import glob
import importlib.util
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import REPO, quick_overrides, run_tool, torchrun, write_options

ONE_THREAD = {'OMP_NUM_THREADS': '1'}
torch.set_num_threads(1)
DEMO = 'options/train/blindsr/cmdsr_x4_demo.yml'
PLAIN = 'options/train/blindsr/basenet_x4_demo.yml'
PAPER = 'options/train/blindsr/cmdsr_x4_paper.yml'
REALESRGAN = 'options/train/blindsr/cmdsr_x4_realesrgan.yml'
TEST = 'options/test/blindsr/cmdsr_x4_fixed_tasks.yml'
# A small network, 2 tasks of small crops, 2 iterations, and 24x24-pixel validation crops: seconds per run.
SMALL = {
    **quick_overrides(total_iter=2, every=2, batch=2),
    r'^  num_feat: 64': '  num_feat: 16',
    r'^  num_block: (10|23)': '  num_block: 2',
    r'^    gt_crop: ~': '    gt_crop: 96',
    r'^    cache_images: true.*': '    cache_images: false',
}
DEMO_DATA = {r'datasets/DIV2K/DIV2K_train_HR$': 'datasets/demo/train/HR',
             r'datasets/Set5/GTmod12$': 'datasets/demo/val/HR',
             r'^num_gpu: auto': 'num_gpu: 0',
             r'^    num_worker_per_gpu: \d+': '    num_worker_per_gpu: 0'}


@pytest.fixture(scope='module')
def blind_dir(tmp_path_factory, demo_data):
    """A working directory with the demo data, shared by this module's runs."""
    path = tmp_path_factory.mktemp('blindsr')
    os.makedirs(path / 'datasets')
    os.symlink(demo_data, path / 'datasets' / 'demo')
    return path


def _log(workdir, name: str) -> str:
    logs = sorted(glob.glob(str(workdir / 'experiments' / name / 'train_*.log')))
    assert logs, f'no training log for {name}'
    return open(logs[-1]).read()


def _psnr_per_task(log: str) -> dict:
    return {m[0]: float(m[1]) for m in re.findall(r'Validation (\S+)\n\s+# psnr: ([\d.]+)', log)}


def _other_options_overrides(src: str) -> dict:
    """SMALL + demo data + small tasks for the paper / Real-ESRGAN / plain options (those keys they have)."""
    replace = {**SMALL, **DEMO_DATA,
               r'^    gt_size: (192|256)': '    gt_size: 32',
               r'^    patches_per_task: (40|12)': '    patches_per_task: 4',
               r'^  support_size: (20|6)': '  support_size: 2',
               r'^    support_size: (20|6)': '    support_size: 2',
               r'^    support_patch: (48|64)': '    support_patch: 8'}
    text = open(os.path.join(REPO, src)).read()
    return {k: v for k, v in replace.items() if re.search(k, text, re.M)}


@pytest.fixture(scope='module')
def trained(blind_dir):
    """Train every options file of options/train/blindsr for 2 iterations through tools/train.py, the four runs
    at once (the 2 cores are shared; each run is one thread). Returns {options file: completed process}."""
    runs = {DEMO: write_options(DEMO, blind_dir / 'demo.yml', SMALL)}
    for src in (PLAIN, PAPER, REALESRGAN):
        runs[src] = write_options(src, blind_dir / os.path.basename(src), _other_options_overrides(src))
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ONE_THREAD)
    procs = {src: subprocess.Popen([sys.executable, os.path.join(REPO, 'tools', 'train.py'), '-opt', opt],
                                   cwd=str(blind_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True) for src, opt in runs.items()}
    done = {}
    for src, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f'{src} exited {proc.returncode}\n{out[-3000:]}\n{err[-5000:]}'
        done[src] = proc
    return done


@pytest.fixture(scope='module')
def demo_checkpoint(blind_dir, trained):
    return blind_dir / 'experiments/101_CMDSR_x4_demo/models/net_g_latest.pth'


def test_demo_training_steps_validation_per_task_and_checkpoint(blind_dir, demo_checkpoint):
    log = _log(blind_dir, '101_CMDSR_x4_demo')
    first = re.search(r'iter:\s+1,.*', log).group(0)
    second = re.search(r'iter:\s+2,.*', log).group(0)
    # the ConditionNet step runs at iteration 1 (and then every 10th), the BaseNet steps every iteration
    for key in ('l_contrast', 'd_intra', 'd_cross', 'l_pix_condition', 'l_pix'):
        assert key in first, first
    assert 'l_contrast' not in second and 'l_pix' in second
    psnr = _psnr_per_task(log)
    assert set(psnr) == {'blur2.6_noise15', 'blur1.0_noise0'} and all(v > 0 for v in psnr.values())
    ckpt = torch.load(demo_checkpoint, map_location='cpu', weights_only=True)
    for key in ('params', 'params_ema'):
        assert any(k.startswith('sr_net.modulations.') for k in ckpt[key])
        assert any(k.startswith('condition_net.') for k in ckpt[key])
    state = torch.load(blind_dir / 'experiments/101_CMDSR_x4_demo/training_states/2.state', map_location='cpu',
                       weights_only=False)
    assert len(state['optimizers']) == 2 and len(state['schedulers']) == 2  # BaseNet and ConditionNet
    sr_params = state['optimizers'][0]['param_groups'][0]['params']
    cond_params = state['optimizers'][1]['param_groups'][0]['params']
    assert len(sr_params) == 8 * 2 + 4 * 2 and len(cond_params) == 4 * 2  # 8 convs + 4 modulations; 4 convs


def test_fixed_task_test_options_report_psnr_per_task(blind_dir, demo_checkpoint):
    opt = write_options(TEST, blind_dir / 'test.yml', {
        r'^  num_feat: 64': '  num_feat: 16', r'^  num_block: 10': '  num_block: 2',
        r'^    gt_crop: ~': '    gt_crop: 96',
        r'experiments/101_CMDSR_x4_demo/models/net_g_latest.pth': str(demo_checkpoint)})
    run_tool(['test.py', '-opt', opt], blind_dir, env=ONE_THREAD)
    logs = glob.glob(str(blind_dir / 'results/101_CMDSR_x4_demo_test/test_*.log'))
    text = open(logs[-1]).read()
    for task in ('blur2.6_noise15', 'blur0_noise0', 'blur1.5_noise50', 'blur3.5_noise5'):
        assert re.search(rf'Validation {re.escape(task)}\n\s+# psnr: [\d.]+', text), task
    assert glob.glob(str(blind_dir / 'results/101_CMDSR_x4_demo_test/visualization/blur2.6_noise15/*.png'))


@pytest.mark.parametrize('name', ['102_BaseNet_x4_demo', '100_CMDSR_x4_paper', '103_CMDSR_RRDB_x4_realesrgan'])
def test_other_training_options_run(blind_dir, trained, name):
    psnr = _psnr_per_task(_log(blind_dir, name))
    assert psnr and all(v > 0 for v in psnr.values())


def test_torchrun_two_processes(blind_dir):
    opt = write_options(DEMO, blind_dir / 'ddp.yml', {**SMALL, r'^name: .*': 'name: 104_CMDSR_ddp'})
    run_tool(['train.py', '-opt', opt, '--launcher', 'pytorch'], blind_dir, env=ONE_THREAD, launcher=torchrun(2))
    log = _log(blind_dir, '104_CMDSR_ddp')
    assert 'l_contrast' in log and _psnr_per_task(log)
    assert os.path.isfile(blind_dir / 'experiments/104_CMDSR_ddp/models/net_g_latest.pth')


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
def infer_setup(blind_dir, demo_checkpoint):
    opt = write_options(DEMO, blind_dir / 'infer.yml', {r'^  num_feat: 64': '  num_feat: 16',
                                                        r'^  num_block: 10': '  num_block: 2'})
    inputs = _write_images(blind_dir / 'infer_in', [(20, 24)])
    return blind_dir, opt, str(demo_checkpoint), inputs


def _infer(setup, *extra, capsys=None, monkeypatch=None):
    """Run tools/infer.py's main() in this process (the imports are paid once); returns (exit code, stderr)."""
    workdir, opt, ckpt, inputs = setup
    spec = importlib.util.spec_from_file_location('blindsr_infer_tool', os.path.join(REPO, 'tools', 'infer.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.chdir(workdir)
    capsys.readouterr()
    try:
        tool.main(['-opt', opt, '--checkpoint', ckpt, '--input', inputs, '--device', 'cpu', *extra])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_infer_with_a_support_folder_and_with_self_support(infer_setup, capsys, monkeypatch):
    workdir = infer_setup[0]
    support = _write_images(workdir / 'support_ok', [(10, 12)] * 5)
    runs = [('--support', support, '--output', str(workdir / 'out_folder')),
            ('--self-support', '--output', str(workdir / 'out_self'), '--tile', '12', '--tile-pad', '2')]
    for extra in runs:
        code, err = _infer(infer_setup, *extra, capsys=capsys, monkeypatch=monkeypatch)
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
def test_infer_bad_support_input(infer_setup, case, message, capsys, monkeypatch):
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
    code, err = _infer(infer_setup, *extra, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and message in err, err


def test_task_evaluation_of_the_comparison_tool(blind_dir, trained, demo_data):
    """The benchmark behind tools/compare_blindsr.py: PSNR per task for CMDSR (with its own and another task's
    support), the unconditioned BaseNet and bicubic, on the same seeded LR images."""
    from plugins.blindsr.task_evaluation import evaluate_tasks, markdown_table, task_datasets
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    nets = {}
    for name, yml in (('cmdsr', 'demo.yml'), ('plain', 'basenet_x4_demo.yml')):
        net = build_network_from_options(str(blind_dir / yml))
        exp = {'cmdsr': '101_CMDSR_x4_demo', 'plain': '102_BaseNet_x4_demo'}[name]
        load_network_weights(net, str(blind_dir / 'experiments' / exp / 'models/net_g_latest.pth'))
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
