"""tools/infer.py and tools/benchmark.py on mmengine configs and mmengine checkpoints: the SRCNN config gives what
MMagic's own test step gives, inpainting with masks (file or folder, white = hole) and PD-GAN's several samples,
and one-line errors for masks and checkpoints that do not fit. The tools run in this process (``call_tool``) on the
session's trained checkpoints (the 4-iteration SRCNN run, the Base and PD-GAN inpainting runs)."""
import json
import os

import cv2
import numpy as np
import pytest
import torch

from tests.engine.mmengine_runs import CONFIG as SRCNN_CONFIG
from tests.helpers import call_tool, repo_path

pytest.importorskip('mmagic')
from tests.inpaint.test_training import inpaint_runs  # noqa: E402  (the session's Base and PD-GAN runs)

BASE = repo_path('options/mmagic/inpaint/base_demo.py')
PDGAN = repo_path('options/mmagic/inpaint/pdgan_demo.py')


def test_srcnn_config_infer_matches_mmagic_test_step(mmengine_srcnn_run, demo_data, tmp_path, capsys):
    """The network infer runs (DataPreprocessor normalisation, channel order) gives exactly the prediction of the
    model's own ``val_step`` on the config's validation pipeline, for the same checkpoint and image."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    from plugins.engine.mmengine.config_model import build_config_model, read_config
    folder, _ = mmengine_srcnn_run
    ckpt = str(folder / 'work' / 'iter_4.pth')
    cfg = read_config(SRCNN_CONFIG)
    dataset = cfg.val_dataloader.dataset.copy()
    dataset.data_root = os.path.join(demo_data, 'val')
    item = DATASETS.build(dataset)[0]
    model = build_config_model(cfg, SRCNN_CONFIG, ckpt)
    with torch.no_grad():
        sample = model.val_step(pseudo_collate([item]))[0]
    expected = sample.output.pred_img.permute(1, 2, 0).round().byte().numpy()  # BGR 0-255 after destruct
    stem = os.path.splitext(os.path.basename(sample.img_path))[0]

    run = call_tool(['infer.py', SRCNN_CONFIG, '--checkpoint', ckpt, '--input', sample.img_path, '--output', 'out',
                     '--device', 'cpu'], tmp_path, capsys)
    assert 'SRCNN x2 (3 input channels)' in run.out and '[state_dict]' in run.out
    assert os.listdir(tmp_path / 'out') == [f'{stem}_srcnn_x2_demo.png']
    written = cv2.imread(str(tmp_path / 'out' / f'{stem}_srcnn_x2_demo.png'))
    assert written.shape == expected.shape
    assert np.abs(written.astype(int) - expected).max() <= 1


@pytest.fixture(scope='module')
def inpaint(shared_dir, demo_data, tmp_path_factory):
    """The trained Base and PD-GAN checkpoints, and a folder of two photos (240x200 and 64x64) with a mask folder."""
    runs = inpaint_runs(shared_dir, demo_data)
    root = tmp_path_factory.mktemp('inpaint_infer')
    os.makedirs(root / 'img')
    os.makedirs(root / 'masks')
    photo = cv2.imread(os.path.join(demo_data, 'val', 'HR', 'chelsea.png'))
    cv2.imwrite(str(root / 'img' / 'cat.png'), photo[50:250, 100:340])
    cv2.imwrite(str(root / 'img' / 'small.jpg'), photo[:64, :64])
    for name, (h, w), box in (('cat', (200, 240), (80, 120, 60, 150)), ('small', (64, 64), (20, 40, 10, 50))):
        mask = np.zeros((h, w), np.uint8)
        mask[box[0]:box[1], box[2]:box[3]] = 255
        cv2.imwrite(str(root / 'masks' / f'{name}.png'), mask)
    return runs, root


def test_pdgan_samples_with_a_mask_folder(inpaint, capsys):
    runs, root = inpaint
    call_tool(['infer.py', PDGAN, '--checkpoint', runs / 'pdgan' / 'iter_2.pth', '--input', root / 'img',
               '--mask', root / 'masks', '--num', '3', '--output', 'pd', '--device', 'cpu'], root, capsys)
    names = sorted(os.listdir(root / 'pd'))
    assert names == [f'{s}_pdgan_demo_s{k}.png' for s in ('cat', 'small') for k in range(3)]
    for stem, src in (('cat', 'cat.png'), ('small', 'small.jpg')):
        image = cv2.imread(str(root / 'img' / src))
        hole = cv2.imread(str(root / 'masks' / f'{stem}.png'), cv2.IMREAD_GRAYSCALE) > 127
        outs = [cv2.imread(str(root / 'pd' / f'{stem}_pdgan_demo_s{k}.png')).astype(int) for k in range(3)]
        for out in outs:
            assert out.shape == image.shape
            assert np.array_equal(out[~hole], image[~hole])  # known pixels are the input's, at its own size
        assert np.abs(outs[0][hole] - outs[1][hole]).mean() > 1  # each sample draws its own noise
        assert np.abs(outs[1][hole] - outs[2][hole]).mean() > 1


def test_base_inpainting_with_one_mask_file_is_deterministic(inpaint, capsys):
    runs, root = inpaint
    args = ['infer.py', BASE, '--checkpoint', runs / 'base' / 'iter_4.pth', '--input', root / 'img' / 'cat.png',
            '--mask', root / 'masks' / 'cat.png', '--device', 'cpu']
    call_tool(args + ['--output', 'b1'], root, capsys)
    call_tool(args + ['--output', 'b2'], root, capsys)
    first, second = (cv2.imread(str(root / d / 'cat_base_demo.png')) for d in ('b1', 'b2'))
    assert first.shape == (200, 240, 3) and np.array_equal(first, second)
    hole = cv2.imread(str(root / 'masks' / 'cat.png'), cv2.IMREAD_GRAYSCALE) > 127
    image = cv2.imread(str(root / 'img' / 'cat.png'))
    assert np.array_equal(first[~hole], image[~hole]) and np.abs(first[hole].astype(int) - image[hole]).mean() > 5


def test_inpainting_errors(inpaint, capsys):
    runs, root = inpaint
    os.makedirs(root / 'bad', exist_ok=True)
    cv2.imwrite(str(root / 'bad' / 'cat.png'), np.zeros((10, 12), np.uint8))
    base = ['infer.py', BASE, '--checkpoint', runs / 'base' / 'iter_4.pth', '--input', root / 'img', '--device', 'cpu']
    cases = [
        (['--mask', root / 'bad' / 'cat.png'], f'mask {root / "bad" / "cat.png"} is 12x10 but the image '
         f'{root / "img" / "cat.png"} is 240x200: a mask must have its image\'s size'),
        (['--mask', root / 'bad'], f'--mask {root / "bad"}: no mask for {root / "img" / "small.jpg"}'),
        ([], 'inpainting needs --mask FILE_OR_DIR'),
        (['--mask', root / 'masks', '--num', '2'], '--num 2: EncDecInpaintor is deterministic'),
        (['--mask', root / 'masks', '--tile', '32'], '--tile is not for inpainting'),
    ]
    for extra, message in cases:
        run = call_tool(base + extra + ['--output', 'never'], root, capsys, check=False)
        assert run.status == 2 and f'error: {message}' in run.err, (extra, run.err[-2000:])
        assert not (root / 'never').exists()  # refused before any image
    run = call_tool(['infer.py', BASE, '--checkpoint', runs / 'pdgan' / 'iter_2.pth', '--input', root / 'img',
                     '--mask', root / 'masks'], root, capsys, check=False)
    assert run.status == 2 and f'error: checkpoint {runs / "pdgan" / "iter_2.pth"} does not fit the model of' in run.err


def test_benchmark_takes_mmengine_configs(inpaint, tmp_path, capsys):
    runs, _ = inpaint
    common = ['--runs', '1', '--warmup', '0', '--device', 'cpu']
    call_tool(['benchmark.py', SRCNN_CONFIG, '--input-size', '1x3x32x32', '--json', 'srcnn.json', *common],
              tmp_path, capsys)
    srcnn = json.loads((tmp_path / 'srcnn.json').read_text())
    assert srcnn['network'] == 'SRCNN' and srcnn['output_size'] == [1, 3, 64, 64]
    assert srcnn['params'] == 64 * 3 * 81 + 64 + 32 * 64 * 25 + 32 + 3 * 32 * 25 + 3  # 9-5-5, 64/32 channels, RGB
    run = call_tool(['benchmark.py', PDGAN, '--checkpoint', runs / 'pdgan' / 'iter_2.pth', '--json', 'pd.json',
                     *common], tmp_path, capsys)
    pdgan = json.loads((tmp_path / 'pd.json').read_text())
    # the whole inpainting step (prior + SPDNorm generator) at the generator's 64x64, by default
    assert pdgan['network'] == 'InpaintStep' and pdgan['input_size'] == [1, 4, 64, 64]
    assert pdgan['output_size'] == [1, 3, 64, 64] and pdgan['flops'] > 0
    assert 'InpaintStep.in_channels' in run.out
