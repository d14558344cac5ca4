"""Text SR on a folder of word crops with tools/infer.py (plugins/textsr/inference.py): the LR input is made as the
TextZoom dataset makes it (size and mask channel), the written crops are the network's output, and the CSV holds what
a CRNN reads in bicubic and in SR. The tool runs in this process (``call_tool``); the networks have random weights
(the CRNN's made to read characters that depend on the image: variance-keeping convolutions, a strong head, the
blank class held down)."""
import csv
import importlib.util
import os
import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils import tensor2img

from tests.helpers import call_tool, options, repo_path, write_options

from plugins.textsr.crnn_arch import CRNN
from plugins.textsr.inference import lr_input
from plugins.textsr.labels import ALPHABET, ctc_greedy_decode
from plugins.textsr.synthetic_textzoom import font_files, render_word, write_textzoom_lmdb
from plugins.textsr.textzoom_dataset import TextZoomLMDBDataset
from plugins.textsr.tsrn_arch import TSRN, TextBicubic

TSRN_OPTIONS = repo_path('options/test/textsr/demo_synth.yml')  # TSRN 32 features, 2 blocks, 4 channels, x2
BICUBIC_OPTIONS = repo_path('options/test/textsr/bicubic_synth.yml')
SRCNN_OPTIONS = repo_path('options/test/classic/srcnn_x2.yml')
CROPS = {'Hello': (200, 50), 'world42': (128, 32), 'Zen': (90, 20)}  # word: (width, height) of its crop


@pytest.fixture(scope='module')
def crops(tmp_path_factory):
    """Word crops of three sizes, a TSRN checkpoint of the demo options' network and a crnn.pytorch-style CRNN."""
    root = tmp_path_factory.mktemp('textsr_infer')
    os.makedirs(root / 'crops')
    rng = random.Random(0)
    for word, size in CROPS.items():
        render_word(word, font_files()[0], rng).resize(size).save(root / 'crops' / f'{word}.png')
    torch.manual_seed(0)
    net_opt = {k: v for k, v in options(TSRN_OPTIONS)['network_g'].items() if k != 'type'}
    tsrn = TSRN(**net_opt)
    torch.save({'params': tsrn.state_dict()}, root / 'tsrn.pth')
    crnn = CRNN()
    with torch.no_grad():  # features that keep their scale, and a head that reads them rather than its bias
        for conv in crnn.cnn:
            if isinstance(conv, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(conv.weight, nonlinearity='relu')
        head = crnn.rnn[1].embedding
        head.weight.mul_(20.)
        head.bias.zero_()
        head.bias[0] = -50.  # no blank: every column reads a character
    torch.save({f'module.{k}': v for k, v in crnn.state_dict().items()}, root / 'crnn.pth')  # DataParallel keys
    return root, tsrn.eval(), crnn.eval()


def _rows(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def test_lr_input_is_what_the_textzoom_dataset_gives(tmp_path):
    """A crop stored as a TextZoom LMDB's LR image and the same crop as a file give the same network input."""
    from PIL import Image
    crop = render_word('Kayak', font_files()[0], random.Random(1)).resize((90, 20))
    crop.save(tmp_path / 'kayak.png')
    write_textzoom_lmdb(str(tmp_path / 'lmdb'), [{'hr': crop.resize((128, 32)), 'lr': crop, 'label': 'Kayak'}])
    lq = TextZoomLMDBDataset({'name': 't', 'dataroot': str(tmp_path / 'lmdb'), 'scale': 2})[0]['lq']
    ours = lr_input(cv2.imread(str(tmp_path / 'kayak.png')), scale=2, mask=True)
    assert ours.shape == lq.shape == (4, 16, 64)
    assert torch.equal(ours, lq)
    assert 0 < ours[3].mean() < 1 and set(ours[3].unique().tolist()) == {0., 1.}  # a binary text mask
    assert Image.open(tmp_path / 'kayak.png').size == (90, 20)


def test_tsrn_crops_and_recognizer_csv(crops, tmp_path, capsys):
    root, tsrn, crnn = crops
    run = call_tool(['infer.py', '-opt', TSRN_OPTIONS, '--checkpoint', root / 'tsrn.pth', '--input', root / 'crops',
                     '--recognizer', root / 'crnn.pth', '--output', 'out', '--suffix', 'sr', '--device', 'cpu'],
                    tmp_path, capsys)
    assert 'TSRN x2 (4 input channels)' in run.out
    assert sorted(os.listdir(tmp_path / 'out')) == sorted([f'{w}_sr.png' for w in CROPS] + ['text.csv'])
    rows = _rows(tmp_path / 'out' / 'text.csv')
    assert rows[0] == ['file', 'bicubic_text', 'sr_text']
    assert sorted(r[0] for r in rows[1:]) == sorted(f'{w}.png' for w in CROPS)
    for name, bicubic_text, sr_text in rows[1:]:
        img = cv2.imread(str(root / 'crops' / name))
        lq = lr_input(img, 2, mask=True)[None]
        with torch.no_grad():
            sr = tsrn(lq)[:, :3].clamp(0, 1).contiguous()
            expected_bicubic = ctc_greedy_decode(crnn(TextBicubic(2)(lq)[:, :3].contiguous()))[0]
            expected_sr = ctc_greedy_decode(crnn(sr))[0]
        written = cv2.imread(str(tmp_path / 'out' / name.replace('.png', '_sr.png')))
        assert written.shape == (32, 128, 3)  # TextZoom's HR size, whatever the crop's size
        assert np.abs(written.astype(int) - tensor2img(sr, rgb2bgr=True, min_max=(0, 1))).max() <= 1
        assert bicubic_text == expected_bicubic and sr_text == expected_sr
        assert bicubic_text and set(bicubic_text) <= set(ALPHABET)
    assert any(r[1] != r[2] for r in rows[1:])  # the two columns read different images
    assert f'bicubic and SR readings differ on {sum(r[1] != r[2] for r in rows[1:])}' in run.out


def test_bicubic_network_reads_the_same_in_both_columns(crops, tmp_path, capsys):
    """With the bicubic baseline (our default TextBicubic, the one the bicubic column reads) as the network, the two
    columns are one reading."""
    root, _, _ = crops
    bicubic = write_options(BICUBIC_OPTIONS, tmp_path / 'bicubic.yml',
                            overrides={'network_g': {'type': 'TextBicubic', 'scale': 2}})
    torch.save({'params': {}}, tmp_path / 'none.pth')  # TextBicubic has no weights
    call_tool(['infer.py', '-opt', bicubic, '--checkpoint', tmp_path / 'none.pth', '--input', root / 'crops',
               '--recognizer', root / 'crnn.pth', '--output', 'out', '--device', 'cpu'], tmp_path, capsys)
    rows = _rows(tmp_path / 'out' / 'text.csv')[1:]
    assert len(rows) == len(CROPS) and all(r[1] == r[2] != '' for r in rows)


def test_text_sr_errors(crops, tmp_path, capsys):
    root, _, _ = crops
    base = ['infer.py', '-opt', TSRN_OPTIONS, '--checkpoint', root / 'tsrn.pth', '--input', root / 'crops',
            '--output', 'never', '--device', 'cpu']
    cases = [(['--tile', '16'], "--tile is not for text SR: each word crop is resized to TextZoom's LR size (64x16)"),
             (['--recognizer', 'no_such.pth'], "--recognizer 'no_such.pth' not found"),
             (['--recognizer-input', 'crnn.pytorch'], '--recognizer-input needs --recognizer CRNN.pth'),
             (['--recognizer', 'ppocr', '--recognizer-input', 'textzoom'], '--recognizer-input is for a CRNN')]
    if importlib.util.find_spec('rapidocr_onnxruntime') is None:
        cases.append((['--recognizer', 'ppocr'], '--recognizer ppocr needs the PP-OCR extra: pip install -e '
                      '".[textsr-ocr]"'))
    for extra, message in cases:
        run = call_tool(base + extra, tmp_path, capsys, check=False)
        assert run.status == 2 and f'error: {message}' in run.err, (extra, run.err[-2000:])
    from basicsr.archs import build_network
    torch.save({'params': build_network(options(SRCNN_OPTIONS)['network_g']).state_dict()}, tmp_path / 'srcnn.pth')
    run = call_tool(['infer.py', '-opt', SRCNN_OPTIONS, '--checkpoint', tmp_path / 'srcnn.pth', '--input', root / 'crops', '--recognizer', root / 'crnn.pth'],
                    tmp_path, capsys, check=False)
    assert run.status == 2 and 'error: --recognizer is for text SR networks (TSRN); the network of' in run.err
    assert not (tmp_path / 'never').exists()


def test_the_crnn_reads_as_recognizer_input_says(crops):
    """--recognizer-input reaches the CRNN: TextZoom's [0, 1] by default, crnn.pytorch's [-1, 1] when asked; the
    two feed the same image differently (so a CRNN trained on one range reads the other worse)."""
    from plugins.textsr.crnn_arch import to_recognizer_input
    from plugins.textsr.inference import load_crnn
    root, _, _ = crops
    default = load_crnn(str(root / 'crnn.pth'), torch.device('cpu'))
    own = load_crnn(str(root / 'crnn.pth'), torch.device('cpu'), 'crnn.pytorch')
    assert (default.input_norm, own.input_norm) == ('textzoom', 'crnn.pytorch')
    img = torch.rand(1, 3, 32, 128)
    with torch.no_grad():
        assert not torch.allclose(default(img), own(img))  # same weights, other input range
    assert torch.allclose(to_recognizer_input(img, 'crnn.pytorch'), to_recognizer_input(img, 'textzoom') * 2 - 1)
