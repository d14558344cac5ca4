"""Classic SR line (seed 002): SRCNN/FSRCNN networks, the HR-only dataset, every x2 options file, SRCNN x2 against
bicubic through the demo tool, the ablation tool."""
import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

from tests.classic.conftest import SRCNN_BUDGET, SRCNN_DEMO, small_val_overrides
from tests.helpers import call_tool, load_tool, options, quick, repo_path, run_options, write_options

# Every SRCNN/FSRCNN options file (x2 rows, the FSRCNN x4 rows) but the demo's (trained by the srcnn_x2_trained
# fixture for the bicubic comparison).
X2_OPTIONS = sorted(osp.relpath(p, repo_path('')) for p in glob.glob(repo_path('options/train/classic/*.yml'))
                    if options(p)['network_g']['type'] in ('SRCNN', 'FSRCNN') and not p.endswith(SRCNN_DEMO))


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('kwargs, count', [
    (dict(), 57281),  # 9-5-5, seed's table
    (dict(kernel_sizes=(9, 1, 5)), 5248 + 2080 + 801),  # the ECCV base setting 9-1-5
    (dict(num_in_ch=3), 3 * 64 * 81 + 64 + 51232 + 32 * 3 * 25 + 3),
])
def test_srcnn_parameter_counts(kwargs, count):
    from plugins.classic.srcnn_arch import SRCNN
    assert n_params(SRCNN(**kwargs)) == count


def test_srcnn_layer_sizes_shapes_and_kernel_check():
    """Seed 002's torchsummary table: 5,248 + 51,232 + 801 = 57,281 parameters for one (Y) channel."""
    from plugins.classic.srcnn_arch import SRCNN
    net = SRCNN(num_in_ch=1, upscale=2)
    assert [p.numel() for p in net.parameters()] == [5184, 64, 51200, 32, 800, 1]
    assert net(torch.rand(2, 1, 21, 17)).shape == (2, 1, 42, 34)
    assert SRCNN(num_in_ch=3, upscale=1)(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)
    with pytest.raises(ValueError, match='odd'):
        SRCNN(kernel_sizes=(9, 4, 5))


@pytest.mark.parametrize('kwargs, count', [
    (dict(form='seed'), 12809),  # the seed's table: d=56, s=12, m=4, ConvTranspose2d without stride
    (dict(form='paper'), 12809),  # same layers, stride = scale
    (dict(form='seed', d=64, s=32), 48321),  # widened
    (dict(form='seed', d=64, s=32, mapping_kernel=1, norm='instance'), 15809),  # normalised
])
def test_fsrcnn_parameter_counts(kwargs, count):
    from plugins.classic.fsrcnn_arch import FSRCNN
    assert n_params(FSRCNN(**kwargs)) == count


def test_the_instancenorm_control_differs_from_the_in_row_only_by_the_norm():
    """fsrcnn_x2_in_control.yml isolates the InstanceNorm of the seed's IN row: same d, s, mapping kernel and every
    other option; 15,809 - 4 affine norms of 32 channels x (weight + bias) = 15,553 parameters."""
    from plugins.classic.fsrcnn_arch import FSRCNN
    in_row, control = (options(f'options/train/classic/{stem}.yml')
                       for stem in ('fsrcnn_x2_in', 'fsrcnn_x2_in_control'))
    assert in_row['network_g'].pop('norm') == 'instance' and control['network_g'].pop('norm') is None
    assert {k: v for k, v in in_row.items() if k != 'name'} == {k: v for k, v in control.items() if k != 'name'}
    net_opt = {k: v for k, v in control['network_g'].items() if k != 'type'}
    assert n_params(FSRCNN(**net_opt)) == 15809 - 4 * 2 * 32 == 15553


def test_the_fsrcnn_x4_rows_share_everything_but_the_network_with_the_srresnet_rows():
    """The seed's FSRCNN-vs-SRResNet comparison: same data, crops, optimiser, schedule and metrics; FSRCNN in the
    paper's form on RGB (24,683 parameters), the loss of each pair."""
    from plugins.classic.fsrcnn_arch import FSRCNN
    for loss in ('mse', 'l1'):
        fsrcnn = options(f'options/train/classic/fsrcnn_x4_{loss}.yml')
        srresnet = options(f'options/train/classic/srresnet_x4_in_blocks_trunk_{loss}.yml')
        net = fsrcnn.pop('network_g')
        assert net == dict(type='FSRCNN', num_in_ch=3, d=56, s=12, m=4, mapping_kernel=3, norm=None, upscale=4,
                           form='paper')
        srresnet.pop('network_g')
        assert {k: v for k, v in fsrcnn.items() if k != 'name'} == {k: v for k, v in srresnet.items() if k != 'name'}
        assert n_params(FSRCNN(**{k: v for k, v in net.items() if k != 'type'})) == 24683


@pytest.mark.parametrize('form', ['seed', 'paper'])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_fsrcnn_shapes_and_gradients(form, scale):
    from plugins.classic.fsrcnn_arch import FSRCNN
    net = FSRCNN(upscale=scale, form=form)
    x = torch.rand(2, 1, 13, 11, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 1, 13 * scale, 11 * scale)
    out.mean().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None for p in net.parameters())


def test_fsrcnn_rejects_bad_options():
    from plugins.classic.fsrcnn_arch import FSRCNN
    with pytest.raises(ValueError, match="form must be 'paper' or 'seed'"):
        FSRCNN(form='same')
    with pytest.raises(ValueError, match="norm must be None or 'instance'"):
        FSRCNN(norm='batch')


def _dataset(**opt):
    import plugins  # noqa: F401
    from basicsr.data import build_dataset
    return build_dataset(dict(dict(name='t', type='BicubicDegradationDataset', io_backend={'type': 'disk'}), **opt))


@pytest.mark.parametrize('backend, folder', [('disk', 'val/HR'), ('lmdb', 'val/HR.lmdb')])
def test_hr_only_dataset_makes_the_matlab_bicubic_lr(demo_data, backend, folder):
    import cv2
    ds = _dataset(dataroot_gt=osp.join(demo_data, folder), io_backend={'type': backend}, scale=3, phase='val')
    item = ds[0]
    assert len(ds) == 3 and item['gt'].shape[1:] == (300, 444) and item['lq'].shape[1:] == (100, 148)
    made = (item['lq'].numpy().transpose(1, 2, 0)[..., ::-1] * 255).round()
    stored = cv2.imread(osp.join(demo_data, 'val/LR_bicubic/X3/chelsea.png')).astype(np.float64)
    np.testing.assert_array_equal(made, stored)  # identical to the pre-made benchmark-style LR


def test_hr_only_dataset_training_crops_y_channel(demo_data):
    ds = _dataset(dataroot_gt=osp.join(demo_data, 'train/HR_sub'), scale=4, phase='train', gt_size=48,
                  use_hflip=True, use_rot=True, color='y')
    item = ds[7]
    assert item['gt'].shape == (1, 48, 48) and item['lq'].shape == (1, 12, 12)
    assert 0 <= item['lq'].min() and item['lq'].max() <= 1


def test_hr_only_dataset_errors(demo_data, tmp_path):
    with pytest.raises(ValueError, match='gt_size must be an integer multiple of scale 3'):
        _dataset(dataroot_gt=osp.join(demo_data, 'train/HR_sub'), scale=3, phase='train', gt_size=50)
    with pytest.raises(ValueError, match='smaller than gt_size 192'):
        _dataset(dataroot_gt=osp.join(demo_data, 'train/HR_sub'), scale=2, phase='train', gt_size=192)[0]
    with pytest.raises(FileNotFoundError, match='no images in'):
        _dataset(dataroot_gt=str(tmp_path), scale=2, phase='val')


@pytest.mark.parametrize('rel', X2_OPTIONS, ids=osp.basename)
def test_every_srcnn_and_fsrcnn_options_file_trains_and_validates(workdir, small_val, rel):
    """Two iterations of batch 2, validation (on two 64x64 crops of the validation images) and checkpoint."""
    run = run_options(rel, workdir, {**quick(rel), **small_val_overrides(rel, small_val)})
    assert (run.models / 'net_g_latest.pth').is_file()
    log = run.log('train_*.log')
    assert '# psnr:' in log and '# ssim:' in log


def test_srcnn_x2_beats_bicubic_after_short_cpu_training(srcnn_x2_trained, workdir, capsys):
    """SRCNN x2 of the demo options trained on CPU at a short budget (SRCNN_BUDGET, tests/classic/conftest.py: 2000
    iterations of batch 4, 32x32 crops), scored by tools/classic/demo.py --skip-training on the validation split:
    better than bicubic on every image."""
    assert srcnn_x2_trained.opt == options(SRCNN_DEMO, SRCNN_BUDGET)  # the demo's options but for the budget
    os.symlink(srcnn_x2_trained.workdir / 'experiments', workdir / 'experiments')
    run = call_tool(['classic/demo.py', '-opt', srcnn_x2_trained.options_file, '--skip-training',
                     '--output', 'results/demo'], workdir, capsys)
    name = srcnn_x2_trained.opt['name']
    metrics = json.load(open(workdir / 'results' / 'demo' / f'{name}.json'))
    assert metrics['param_key'] == 'params_ema'
    assert metrics['checkpoint'] == osp.join('experiments', name, 'models', 'net_g_latest.pth')
    assert len(metrics['images']) == 3
    for image in metrics['images']:
        assert image['psnr_ours'] > image['psnr_bicubic'], image
    assert metrics['mean']['psnr_ours'] > metrics['mean']['psnr_bicubic'] + 0.1
    import cv2
    picture = cv2.imread(str(workdir / 'results' / 'demo' / f'{name}.png'))
    assert picture is not None and picture.shape[1] > 1000
    assert f"picture: {osp.join('results', 'demo', name + '.png')}" in run.out


def test_demo_tool_trains_with_tools_train_py_then_scores(workdir, small_val, monkeypatch):
    """Without --skip-training the demo tool runs `python tools/train.py -opt <options>` first, then scores the
    checkpoint that run wrote (here the training command runs in this process, for two iterations, and the
    validation split is two 64x64 crops)."""
    demo = load_tool('classic/demo.py')
    commands = []

    def train_here(cmd, check):
        commands.append(cmd)
        assert check and cmd[2] == '-opt'
        run_options(cmd[3], workdir, name='as_run')
    monkeypatch.setattr(demo.subprocess, 'run', train_here)
    path = write_options(SRCNN_DEMO, workdir / 'demo.yml',
                         {**quick(SRCNN_DEMO), **small_val_overrides(SRCNN_DEMO, small_val)})
    monkeypatch.chdir(workdir)
    demo.main(['-opt', path, '--output', 'out'])
    assert commands == [[demo.sys.executable, repo_path('tools/train.py'), '-opt', path]]
    name = options(SRCNN_DEMO)['name']
    metrics = json.load(open(workdir / 'out' / f'{name}.json'))
    assert metrics['param_key'] == 'params_ema' and [i['name'] for i in metrics['images']] == ['chelsea', 'rocket']
    assert (workdir / 'out' / f'{name}.png').is_file()


def test_parse_validation_log():
    from plugins.engine.basicsr.budget_runs import parse_validation_log
    log = ('x\nValidation demo_val\n\t # psnr: 20.5\tBest: 20.5 @ 100 iter\n\t # ssim: 0.5\tBest: ...\n\n'
           'y\nValidation demo_val\n\t # psnr: 25.0\tBest: 25.0 @ 200 iter\n\t # ssim: 0.7\tBest: ...\n\n'
           'End of training.\nValidation demo_val\n\t # psnr: 25.0\tBest: 25.0 @ 201 iter\n\t # ssim: 0.7\n\n')
    assert parse_validation_log(log, 100) == {'iter': [100, 200], 'psnr': [20.5, 25.0], 'ssim': [0.5, 0.7]}


def test_ablate_tool_writes_table_plot_and_json(workdir, small_val, capsys):
    """tools/classic/ablate.py in this process; each of its runs is a tools/train.py process, as for a user
    (validated on two 64x64 crops of the validation images, given to every run by --force_yml)."""
    rels = ('options/train/classic/srcnn_x2_l1.yml', 'options/train/classic/fsrcnn_x2_in.yml')
    opts = [write_options(rel, workdir / osp.basename(rel), {'datasets:train:num_worker_per_gpu': 0}) for rel in rels]
    run = call_tool(['classic/ablate.py', '-opt', *opts, '--iters', '4', '--val-freq', '2', '--output',
                     'docs_out/abl', '--force_yml', 'datasets:train:batch_size_per_gpu=2',
                     f"datasets:val:dataroot_gt={small_val / 'HR'}"], workdir, capsys)
    table = open(workdir / 'docs_out' / 'abl.md').read()
    srcnn, fsrcnn = (options(rel)['name'] for rel in rels)
    assert '| bicubic |' in table and f'| {srcnn} | SRCNN | L1Loss | 57,281 |' in table
    assert f'| {fsrcnn} | FSRCNN | MSELoss | 15,809 |' in table
    data = json.load(open(workdir / 'docs_out' / 'abl.json'))
    assert [r['curves']['iter'] for r in data['runs']] == [[2, 4], [2, 4]]
    assert (workdir / 'docs_out' / 'abl.png').stat().st_size > 10000
    assert 'plot: docs_out/abl.png' in run.out


def test_ablate_tool_rejects_a_budget_that_is_not_a_multiple_of_val_freq(workdir, capsys):
    run = call_tool(['classic/ablate.py', '-opt', repo_path('options/train/classic/srcnn_x2_l1.yml'), '--iters', '5',
                     '--val-freq', '2'], workdir, capsys, check=False)
    assert run.status == 2 and 'must be a positive multiple of --val-freq' in run.err
    assert not (workdir / 'experiments').exists()  # refused before any run


@pytest.mark.parametrize('tool, suffixes', [('classic/ablate.py', ('.md', '.png', '.json')),
                                            ('blindsr/compare.py', ('.md', '.json'))])
def test_comparison_tools_refuse_to_replace_a_report_without_overwrite(tool, suffixes, workdir, capsys):
    """The documented commands write the committed figures under docs/: a rerun stops before any training unless
    --overwrite says the figures are to be replaced."""
    (workdir / 'docs_out').mkdir()
    (workdir / 'docs_out' / f'report{suffixes[-1]}').write_text('committed figures')
    args = ['-opt', repo_path('options/train/classic/srcnn_x2_l1.yml')] if tool == 'classic/ablate.py' else []
    run = call_tool([tool, *args, '--iters', '2', '--output', 'docs_out/report'] +
                    (['--val-freq', '2'] if tool == 'classic/ablate.py' else []), workdir, capsys, check=False)
    assert run.status == 2 and f'docs_out/report{suffixes[-1]} already exist: pass --overwrite' in run.err
    assert not (workdir / 'experiments').exists()
    assert (workdir / 'docs_out' / f'report{suffixes[-1]}').read_text() == 'committed figures'
