"""Low-light line: synthetic pairs, the LOL-layout dataset, training (PSNR above the input's), every options file
through tools/train.py and tools/test.py, and tools/infer.py --brightness (all in this process)."""
import glob
import json
import os.path as osp
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import build_once
from tests.lowlight.conftest import GAIN, lowlight_workdir as _lowlight_workdir
from tests.helpers import call_tool, options, quick, repo_path, run_options

import plugins  # noqa: F401
from plugins.lowlight.brightness import IMAGENET_BRIGHTNESS, parse_brightness_option
from plugins.lowlight.lowlight_dataset import LowLightPairedDataset
from plugins.lowlight.synthetic_pairs import make_pairs

# The lab's 2-step and two-optimizer rows run in tests/lowlight/test_gen_y_training.py (Share, both steps, resume);
# tests/test_options_files.py resolves and checks every file.
SEED_ROWS = sorted(osp.basename(p) for p in glob.glob(repo_path('options/train/lowlight/*.yml'))
                   if not p.endswith(('_demo.yml', '_two_optim.yml')) and '_2steps_' not in p)
DEMO = 'options/train/lowlight/backbone7x7_demo.yml'
TEST = 'options/test/lowlight/backbone7x7_demo.yml'
torch.set_num_threads(1)  # the tools run in this process: one thread, as the house rule


@pytest.fixture
def lowlight_root(tmp_path, pairs) -> Path:
    """A scratch working directory with the synthetic pairs as datasets/lowlight_demo and datasets/LOL."""
    return _lowlight_workdir(tmp_path / 'work', pairs)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from basicsr.metrics import calculate_psnr
    return calculate_psnr(a, b, crop_border=0)


def test_synthetic_pairs_are_darker_reproducible_and_recorded(pairs, tmp_path):
    data = pairs
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


def test_dataset_crops_and_augments_from_folders_and_lmdb(pairs, tmp_path):
    from plugins.common.image_io import make_lmdb
    data = tmp_path / 'lol'  # a copy: the LMDB folders are written next to the images
    shutil.copytree(pairs, data)
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


# The CPU demo options trained for 250 iterations (batch 4, 48x48 crops).
TRAIN_BUDGET = {**quick(DEMO, total_iter=250, every=250, batch=4), 'datasets:train:gt_size': 48,
                'logger:print_freq': 50}


@pytest.fixture(scope='session')
def trained(shared_dir, pairs):
    """DEMO trained on TRAIN_BUDGET in this process, once per session: (its working folder, checkpoint)."""
    def build(folder):
        run_options(DEMO, _lowlight_workdir(folder, pairs), TRAIN_BUDGET)
    folder = build_once(shared_dir, 'lowlight_trained', build)
    ckpt = folder / 'experiments' / options(DEMO)['name'] / 'models' / 'net_g_latest.pth'
    assert ckpt.is_file()
    return folder, ckpt


def test_training_raises_validation_psnr_above_the_input(trained):
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import load_options
    from plugins.lowlight.brightness import add_brightness_plane, mean_luminance
    root, ckpt = trained
    net = build_network_from_options(load_options(repo_path(DEMO)))
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
def test_seed_options_train_a_few_iterations(name, lowlight_root):
    rel = f'options/train/lowlight/{name}'
    run = run_options(rel, lowlight_root, {**quick(rel, total_iter=2, every=2, batch=2), 'num_gpu': 0,
                                      'datasets:train:gt_size': 144})
    assert (run.models / 'net_g_latest.pth').is_file()


def test_test_options_run_on_the_trained_checkpoint(trained, lowlight_root):
    _, ckpt = trained
    run = run_options(TEST, lowlight_root, {'path:pretrain_network_g': str(ckpt)}, train=False)
    assert len(glob.glob(str(run.folder / 'visualization' / '*' / '*.png'))) == 3


def test_test_options_read_the_demo_checkpoint():
    assert options(TEST)['path']['pretrain_network_g'] == \
        f"experiments/{options(DEMO)['name']}/models/net_g_latest.pth"


def _infer(args, cwd, capsys, check=True):
    return call_tool(['infer.py', '-opt', repo_path(TEST), *args], cwd, capsys, check=check)


def test_infer_brightness_raises_output_luminance_monotonically(trained, pairs, tmp_path, capsys):
    _, ckpt = trained
    image = sorted(glob.glob(str(pairs / 'eval15/low/*.png')))[0]
    args = ['--checkpoint', ckpt, '--input', image, '--output', tmp_path, '--suffix', 'x', '--device', 'cpu']
    _infer(args + ['--brightness', '0.15', '0.35', '0.6'], tmp_path, capsys)
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
    run = _infer(['--checkpoint', ckpt, '--input', image, '--output', tmp_path, '--device', 'cpu'] + extra, tmp_path,
                 capsys, check=False)
    assert run.status == 2 and message in run.err


def test_infer_too_small_image(trained, tmp_path, capsys):
    _, ckpt = trained
    image = tmp_path / 'small.png'
    cv2.imwrite(str(image), np.full((20, 30, 3), 20, np.uint8))
    run = _infer(['--checkpoint', ckpt, '--input', image, '--output', tmp_path, '--device', 'cpu', '--brightness',
                  '0.4'], tmp_path, capsys, check=False)
    assert run.status == 2
    assert 'small.png: Backbone7x7: the image is 20x30; both sides must be at least 33 pixels' in run.err


@pytest.mark.parametrize('name, change, message', [
    ('gen_y_backbone7x7_gt.yml', {'delete': ['train:y_opt']}, 'train:y_opt is required for Gen_Y'),
    ('backbone7x7_gt.yml', {'overrides': {'brightness:mode': 'GT'}},
     "brightness.mode must be one of ('gt', 'imagenet', 'target')"),
    ('backbone7x7_gt.yml', {'overrides': {'datasets:val:pad_to_multiple': 0}},
     "(calculate_lowlight_lab_psnr) compares the pair padded as the lab's evaluation: set "
     'datasets:val:pad_to_multiple: 16'),
])
def test_bad_training_options_stop_before_training(name, change, message, lowlight_root):
    rel = f'options/train/lowlight/{name}'
    overrides = {**quick(rel, total_iter=2, every=2, batch=2), 'num_gpu': 0, **change.get('overrides', {})}
    with pytest.raises(ValueError) as err:
        run_options(rel, lowlight_root, overrides, delete=change.get('delete', ()))
    assert message in str(err.value)
    assert not glob.glob(str(lowlight_root / 'experiments' / '*' / 'models' / '*.pth'))  # no training step
