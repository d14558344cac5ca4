"""Low-light line: synthetic pairs, the LOL-layout dataset, training (PSNR above the input's), every options file
through tools/train.py and tools/test.py, and tools/infer.py --brightness."""
import glob
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import REPO, quick_overrides, write_options

import plugins  # noqa: F401
from plugins.lowlight.brightness import IMAGENET_BRIGHTNESS, parse_brightness_option
from plugins.lowlight.lowlight_dataset import LowLightPairedDataset
from plugins.lowlight.synthetic_pairs import make_pairs

SEED_ROWS = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, 'options/train/lowlight/*.yml'))
                   if not p.endswith('_demo.yml'))
DEMO = 'options/train/lowlight/backbone7x7_demo.yml'
GAIN = {'target_gain': (0.5, 1.5)}
torch.set_num_threads(1)  # the tools run in this process (see _run_in_process): one thread, as the house rule


@pytest.fixture(scope='module')
def lowlight_root(tmp_path_factory):
    """A working directory whose datasets/lowlight_demo (and datasets/LOL) hold small synthetic pairs."""
    root = tmp_path_factory.mktemp('lowlight')
    data = root / 'datasets' / 'lowlight_demo'
    # targets re-exposed at random: only the brightness plane tells the output brightness (see the infer test)
    make_pairs(str(data), variants=3, max_side=256, seed=0, ranges=GAIN)
    os.symlink(data, root / 'datasets' / 'LOL')
    return root


def _run_in_process(tool_main, argv, cwd, monkeypatch):
    """Run a tool's main in this process (no interpreter start-up per run); SystemExit(0) counts as success."""
    monkeypatch.chdir(cwd)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    try:
        tool_main(argv)
    except SystemExit as err:
        assert err.code in (0, None), f'{argv} exited {err.code}'


def _train(opt_path, cwd, monkeypatch):
    from plugins.engine.cli import main
    _run_in_process(lambda argv: main(argv, is_train=True), ['-opt', str(opt_path)], cwd, monkeypatch)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from basicsr.metrics import calculate_psnr
    return calculate_psnr(a, b, crop_border=0)


def test_synthetic_pairs_are_darker_reproducible_and_recorded(lowlight_root, tmp_path):
    data = lowlight_root / 'datasets' / 'lowlight_demo'
    record = json.load(open(data / 'params.json'))
    assert record['seed'] == 0 and set(record['pairs']) == {'our485', 'eval15'}
    for pair in record['pairs']['our485']:
        assert {'exposure', 'gamma', 'gain', 'shot', 'read', 'target_gain', 'noise_seed'} <= set(pair)
        assert 0.5 <= pair['target_gain'] <= 1.5
        low = cv2.imread(str(data / 'our485' / 'low' / pair['name']))
        high = cv2.imread(str(data / 'our485' / 'high' / pair['name']))
        assert low.shape == high.shape and low.mean() < high.mean()
        assert abs(low.mean() / 255 - pair['low_mean']) < 1e-6
    again = make_pairs(str(tmp_path / 'again'), variants=3, max_side=256, seed=0, ranges=GAIN)
    assert again['pairs'] == record['pairs']
    with pytest.raises(ValueError, match="darkening range 'gama' is unknown"):
        make_pairs(str(tmp_path / 'bad'), ranges={'gama': (1, 2)})


def test_dataset_crops_and_augments_from_folders_and_lmdb(lowlight_root):
    from plugins.common.image_io import make_lmdb
    data = lowlight_root / 'datasets' / 'lowlight_demo'
    base = {'name': 'lol', 'dataroot': str(data), 'split': 'our485', 'phase': 'train', 'gt_size': 64,
            'use_hflip': True, 'use_rot': True, 'io_backend': {'type': 'disk'}}
    item = LowLightPairedDataset(base)[0]
    assert item['lq'].shape == item['gt'].shape == (3, 64, 64)
    assert item['lq'].mean() < item['gt'].mean()
    for kind in ('low', 'high'):
        make_lmdb(str(data / 'eval15' / kind))
    val = LowLightPairedDataset({'name': 'lol', 'dataroot': str(data), 'split': 'eval15', 'phase': 'val',
                                 'io_backend': {'type': 'lmdb'}})
    first = cv2.imread(sorted(glob.glob(str(data / 'eval15' / 'high' / '*.png')))[0])
    assert val[0]['gt'].shape == (3,) + first.shape[:2]
    with pytest.raises(FileNotFoundError, match='expected the LOL layout'):
        LowLightPairedDataset(dict(base, split='eval16'))


def test_brightness_option_errors():
    assert parse_brightness_option({'mode': 'imagenet'})['value'] == IMAGENET_BRIGHTNESS
    with pytest.raises(ValueError, match=r"brightness.mode must be one of \('gt', 'imagenet', 'target'\)"):
        parse_brightness_option({'mode': 'GT'})
    with pytest.raises(ValueError, match='brightness.value must be a finite number'):
        parse_brightness_option({'mode': 'target', 'value': float('nan')})


@pytest.fixture(scope='module')
def trained(lowlight_root, tmp_path_factory):
    """The CPU demo options trained for 250 iterations (batch 4, 48 crops): (working dir, checkpoint)."""
    mp = pytest.MonkeyPatch()
    replace = {k: v for k, v in quick_overrides(total_iter=250, every=250, batch=4).items() if 'tb_logger' not in k}
    replace[r'gt_size: 96'] = 'gt_size: 48'
    opt = write_options(DEMO, lowlight_root / 'demo.yml', replace)  # (the demo has no TensorBoard already)
    _train(opt, lowlight_root, mp)
    mp.undo()
    ckpt = lowlight_root / 'experiments' / 'backbone7x7_demo' / 'models' / 'net_g_latest.pth'
    assert ckpt.is_file()
    return lowlight_root, ckpt


def test_training_raises_validation_psnr_above_the_input(trained):
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import load_options
    from plugins.lowlight.brightness import add_brightness_plane, mean_luminance
    root, ckpt = trained
    net = build_network_from_options(load_options(osp.join(REPO, DEMO)))
    load_network_weights(net, str(ckpt))
    net.eval()
    psnr_in, psnr_out = [], []
    for low_path in sorted(glob.glob(str(root / 'datasets/lowlight_demo/eval15/low/*.png'))):
        low, high = cv2.imread(low_path), cv2.imread(low_path.replace('/low/', '/high/'))
        to_t = lambda im: torch.from_numpy(im[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255.  # noqa: E731
        with torch.inference_mode():
            out = net(add_brightness_plane(to_t(low), mean_luminance(to_t(high))))
        out = (out[0].clamp(0, 1).permute(1, 2, 0).numpy()[..., ::-1] * 255.).round().astype(np.uint8)
        psnr_in.append(_psnr(low, high))
        psnr_out.append(_psnr(out, high))
    assert np.mean(psnr_out) > np.mean(psnr_in) + 1, (psnr_in, psnr_out)


@pytest.mark.parametrize('name', SEED_ROWS)
def test_seed_options_train_a_few_iterations(name, lowlight_root, tmp_path, monkeypatch):
    replace = dict(quick_overrides(total_iter=2, every=2, batch=2))
    replace.update({r'^num_gpu: 1.*': 'num_gpu: 0', r'gt_size: 384': 'gt_size: 144',
                    r'^name: .*': f'name: quick_{name[:-4]}'})
    opt = write_options(f'options/train/lowlight/{name}', tmp_path / name, replace)
    _train(opt, lowlight_root, monkeypatch)
    assert (lowlight_root / 'experiments' / f'quick_{name[:-4]}' / 'models' / 'net_g_latest.pth').is_file()


def test_test_options_run_on_the_trained_checkpoint(trained, tmp_path, monkeypatch):
    from plugins.engine.cli import main
    root, ckpt = trained
    opt = write_options('options/test/lowlight/backbone7x7_demo.yml', tmp_path / 't.yml',
                        {r'pretrain_network_g: .*': f'pretrain_network_g: {ckpt}'})
    _run_in_process(lambda argv: main(argv, is_train=False), ['-opt', opt], root, monkeypatch)
    assert len(glob.glob(str(root / 'results' / 'backbone7x7_demo_test' / 'visualization' / '*' / '*.png'))) == 3


def _infer_main():
    spec = importlib.util.spec_from_file_location('lowlight_infer_tool', osp.join(REPO, 'tools', 'infer.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_infer_brightness_raises_output_luminance_monotonically(trained, tmp_path, monkeypatch):
    root, ckpt = trained
    image = sorted(glob.glob(str(root / 'datasets/lowlight_demo/eval15/low/*.png')))[0]
    args = ['-opt', osp.join(REPO, 'options/test/lowlight/backbone7x7_demo.yml'), '--checkpoint', str(ckpt),
            '--input', image, '--output', str(tmp_path), '--suffix', 'x', '--device', 'cpu']
    _run_in_process(_infer_main(), args + ['--brightness', '0.15', '0.35', '0.6'], root, monkeypatch)
    stem = osp.splitext(osp.basename(image))[0]
    means = [cv2.imread(str(tmp_path / f'{stem}_x_b{v}.png'))[..., ::-1].astype(float) @ [0.299, 0.587, 0.114]
             for v in ('0.15', '0.35', '0.6')]
    means = [m.mean() for m in means]
    assert means[0] < means[1] < means[2], means


@pytest.mark.parametrize('extra, message', [
    ([], 'takes 4 input channels (RGB + a brightness plane) and the images have 3: give --brightness'),
    (['--brightness', 'nan'], '--brightness must be a finite number in [0, 1]'),
    (['--brightness', '0.5', '--tile', '64'], '--tile is not supported with --brightness'),
])
def test_infer_bad_brightness_options(extra, message, trained, tmp_path, capsys):
    _, ckpt = trained
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.full((64, 64, 3), 20, np.uint8))
    with pytest.raises(SystemExit) as err:
        _infer_main()(['-opt', osp.join(REPO, 'options/test/lowlight/backbone7x7_demo.yml'), '--checkpoint',
                       str(ckpt), '--input', str(image), '--output', str(tmp_path), '--device', 'cpu'] + extra)
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_infer_too_small_image(trained, tmp_path, capsys):
    _, ckpt = trained
    image = tmp_path / 'small.png'
    cv2.imwrite(str(image), np.full((20, 30, 3), 20, np.uint8))
    with pytest.raises(SystemExit):
        _infer_main()(['-opt', osp.join(REPO, 'options/test/lowlight/backbone7x7_demo.yml'), '--checkpoint',
                       str(ckpt), '--input', str(image), '--output', str(tmp_path), '--device', 'cpu',
                       '--brightness', '0.4'])
    assert 'small.png: Backbone7x7: the image is 20x30; both sides must be at least 33 pixels' in capsys.readouterr().err


@pytest.mark.parametrize('name, replace, message', [
    ('gen_y_backbone7x7_gt.yml', {r'^  y_opt:\n    type: L1Loss.*\n.*\n.*\n': ''}, 'train:y_opt is required for Gen_Y'),
    ('backbone7x7_gt.yml', {r'^  mode: gt': '  mode: GT'}, "brightness.mode must be one of ('gt', 'imagenet', 'target')"),
])
def test_bad_training_options_stop_before_training(name, replace, message, lowlight_root, tmp_path, monkeypatch):
    replace = dict(quick_overrides(total_iter=2, every=2, batch=2), **{r'^num_gpu: 1.*': 'num_gpu: 0'}, **replace)
    opt = write_options(f'options/train/lowlight/{name}', tmp_path / name, replace)
    with pytest.raises(ValueError) as err:
        _train(opt, lowlight_root, monkeypatch)
    assert message in str(err.value)
