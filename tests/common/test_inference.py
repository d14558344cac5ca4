"""tools/infer.py and plugins/common/tiled_inference.py: tiled forward passes equal whole-image ones, Y/RGB colour
handling, params_ema preferred, folder input, and clear errors. The tool runs in this process (``call_tool``) except
for the one test about its process (exit status and printed error of a real command line)."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from tests.helpers import call_tool, options, repo_path, run_tool

import plugins  # noqa: F401
from plugins.classic.srcnn_arch import SRCNN
from plugins.common.demo_data import read_hr
from plugins.common.image_io import list_images
from plugins.common.tiled_inference import super_resolve, tile_forward
from plugins.engine.errors import OptionsError

OPTIONS = repo_path('options/test/classic/srcnn_x2.yml')  # SRCNN x2, one input channel (Y)
SUFFIX = options(OPTIONS)['name']  # the options' name, the default suffix


def identity_srcnn(channels: int, scale: int, noise: float = 0., seed: int = 0) -> SRCNN:
    """SRCNN whose convolutions pass each channel through (the network is then torch's bicubic upsampling),
    plus Gaussian noise of std ``noise`` on every weight so the output depends on the whole receptive field."""
    torch.manual_seed(seed)
    net = SRCNN(num_in_ch=channels, upscale=scale).eval()
    with torch.no_grad():
        for conv in (net.extract, net.mapping, net.reconstruct):
            k = conv.kernel_size[0]
            conv.weight.normal_(0, noise)
            conv.bias.zero_()
            for c in range(channels):
                conv.weight[c, c, k // 2, k // 2] += 1.
    return net


def test_tile_forward_equals_whole_image():
    """SRCNN 9-5-5 at x2: bicubic support 2 LR px + conv receptive field 17 HR px (8 HR = 4 LR px each side),
    so 6 LR px of context make tiles exact; pad 9 with tiles that do not divide the image must match."""
    torch.manual_seed(0)
    net = SRCNN(num_in_ch=3, upscale=2).eval()
    lr = torch.rand(2, 3, 45, 70)
    with torch.inference_mode():
        whole = net(lr)
        tiled = tile_forward(net, lr, scale=2, tile=16, tile_pad=9)
        no_pad = tile_forward(net, lr, scale=2, tile=16, tile_pad=0)
        off = tile_forward(net, lr, scale=2, tile=0, tile_pad=9)
    assert tiled.shape == whole.shape == (2, 3, 90, 140)
    assert (tiled - whole).abs().max().item() < 1e-4
    assert torch.equal(off, whole)
    assert (no_pad - whole).abs().max().item() > 1e-3  # without context the tile seams show: the check is sensitive


def test_tile_forward_scale3_and_wrong_scale():
    net = SRCNN(num_in_ch=1, upscale=3).eval()
    lr = torch.rand(1, 1, 31, 40)
    with torch.inference_mode():
        assert (tile_forward(net, lr, 3, 12, 7) - net(lr)).abs().max().item() < 1e-4
        with pytest.raises(ValueError, match='scale'):
            tile_forward(net, lr, 2, 12, 7)


@pytest.mark.parametrize('channels', [1, 3])
def test_super_resolve_colour_pipeline(channels):
    """With a pass-through SRCNN the result is a bicubic upsampling of the colour image, whether the network runs on
    Y (with bicubic Cb/Cr) or on RGB: channel order and YCbCr round trip are right."""
    img = read_hr('chelsea.png')[100:160, 200:280]
    sr = super_resolve(identity_srcnn(channels, 2), img, scale=2, in_channels=channels, tile=24, tile_pad=8)
    assert sr.shape == (120, 160, 3) and sr.dtype == np.uint8
    ref = cv2.resize(img, (160, 120), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    diff = np.abs(sr.astype(np.float64) - ref)[4:-4, 4:-4]  # torch and OpenCV treat the border differently
    assert diff.mean() < 1.0 and diff.max() <= 6, (diff.mean(), diff.max())
    assert np.abs(sr[..., 0].astype(int) - sr[..., 2]).mean() > 5  # still a colour image


def test_list_images_errors(tmp_path):
    with pytest.raises(OptionsError, match='no images in folder'):
        list_images(str(tmp_path))
    with pytest.raises(OptionsError, match='input not found'):
        list_images(str(tmp_path / 'missing.png'))


@pytest.fixture
def images(tmp_path):
    """A folder with a 200x150 and an 80x60 crop of demo photos, and a checkpoint whose params_ema and params are
    two different noisy pass-through SRCNNs."""
    folder = tmp_path / 'lr'
    os.makedirs(folder)
    cv2.imwrite(str(folder / 'cat.png'), read_hr('chelsea.png')[60:210, 150:350])
    cv2.imwrite(str(folder / 'rocket.png'), read_hr('rocket.jpg')[100:160, 300:380])
    ema, params = identity_srcnn(1, 2, noise=0.02, seed=1), identity_srcnn(1, 2, noise=0.02, seed=2)
    ckpt = str(tmp_path / 'net_g_latest.pth')
    torch.save({'params': params.state_dict(), 'params_ema': ema.state_dict()}, ckpt)
    return folder, ckpt, ema, params


def test_infer_cli_tiled_untiled_and_params_ema(tmp_path, images, capsys):
    folder, ckpt, ema, params = images
    run = call_tool(['infer.py', '-opt', OPTIONS, '--checkpoint', ckpt, '--input', folder, '--tile', '48',
                     '--tile-pad', '10', '--device', 'cpu'], tmp_path, capsys)
    assert 'params_ema' in run.out
    out_dir = tmp_path / 'results' / f'{SUFFIX}_infer'  # the default output folder
    assert sorted(os.listdir(out_dir)) == [f'cat_{SUFFIX}.png', f'rocket_{SUFFIX}.png']
    call_tool(['infer.py', '-opt', OPTIONS, '--checkpoint', ckpt, '--input', folder / 'cat.png', '--tile', '0',
               '--output', 'whole', '--suffix', 'sr', '--device', 'cpu'], tmp_path, capsys)
    tiled = cv2.imread(str(out_dir / f'cat_{SUFFIX}.png')).astype(int)
    whole = cv2.imread(str(tmp_path / 'whole' / 'cat_sr.png')).astype(int)
    assert tiled.shape == whole.shape == (300, 400, 3)
    assert np.abs(tiled - whole).max() <= 1

    img = cv2.imread(str(folder / 'cat.png'))
    expected_ema = super_resolve(ema, img, 2, 1).astype(int)
    expected_params = super_resolve(params, img, 2, 1).astype(int)
    assert np.abs(expected_ema - expected_params).max() > 10  # the two weight sets are distinguishable
    assert np.abs(whole - expected_ema).max() <= 1  # params_ema was used


def test_infer_cli_checkpoint_mismatch(tmp_path, images, capsys):
    folder, _, _, _ = images
    bad = str(tmp_path / 'rgb_net.pth')
    torch.save({'params': SRCNN(num_in_ch=3).state_dict()}, bad)
    run = call_tool(['infer.py', '-opt', OPTIONS, '--checkpoint', bad, '--input', folder, '--device', 'cpu'],
                    tmp_path, capsys, check=False)
    assert run.status == 2, run.err
    assert 'error:' in run.err and 'rgb_net.pth' in run.err and 'shape mismatch' in run.err
    assert not osp.exists(tmp_path / 'results')  # nothing written


def test_infer_cli_missing_input(tmp_path, images):
    """The real command line: exit status 2 and the error on stderr."""
    _, ckpt, _, _ = images
    proc = run_tool(['infer.py', '-opt', OPTIONS, '--checkpoint', ckpt, '--input', 'nowhere/img.png'],
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert 'error: input not found: nowhere/img.png' in proc.stderr


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255. ** 2 / mse)


@pytest.mark.parametrize('flags, mode, bound', [
    (['--amp', 'bf16'], 'amp bf16', 40.),  # bfloat16 keeps 8 bits of mantissa: about 2e-3 relative
    (['--amp', 'fp16'], 'amp fp16', 50.),
    (['--channels-last'], 'channels_last', 60.),
    (['--compile', '--compile-backend', 'eager'], 'torch.compile (eager)', 60.),  # dynamo's graph capture
])
def test_infer_cli_speed_flags_match_fp32_with_tiles(tmp_path, images, capsys, flags, mode, bound):
    """Each speed flag runs tiled inference on a demo photo and writes an image close to the float32 one (PSNR in
    dB against it above ``bound``); autocast really runs in the lower precision (the images differ)."""
    folder, ckpt, _, _ = images
    common = ['infer.py', '-opt', OPTIONS, '--checkpoint', ckpt, '--input', folder / 'rocket.png', '--tile', '32',
              '--tile-pad', '10', '--device', 'cpu', '--suffix', '']  # 80x60: float16 convolutions are slow on CPU
    call_tool(common + ['--output', 'fp32'], tmp_path, capsys)
    run = call_tool(common + ['--output', 'fast', *flags], tmp_path, capsys)
    assert mode in run.out and 'tile 32 pad 10' in run.out
    ref, out = (cv2.imread(str(tmp_path / d / 'rocket.png')) for d in ('fp32', 'fast'))
    assert out.shape == ref.shape == (120, 160, 3)
    assert psnr(out, ref) > bound, psnr(out, ref)
    if '--amp' in flags:
        assert not np.array_equal(out, ref)


def test_tile_forward_returns_float32_under_autocast():
    """Under autocast the network returns bfloat16; tiled and whole passes still give float32 close to fp32."""
    torch.manual_seed(0)
    net = SRCNN(num_in_ch=3, upscale=2).eval()
    lr = torch.rand(1, 3, 30, 41)
    with torch.inference_mode():
        ref = net(lr)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert net(lr).dtype == torch.bfloat16
            tiled = tile_forward(net, lr, 2, 16, 9, channels_last=True)
            whole = tile_forward(net, lr, 2, 0, 0)
    assert tiled.dtype == whole.dtype == torch.float32
    assert (tiled - ref).abs().max().item() < 0.05 and (whole - ref).abs().max().item() < 0.05


def test_infer_cli_goes_on_past_a_corrupt_image_and_counts_it(tmp_path, images, capsys):
    """A corrupt image in the batch: one warning naming it, the other images are written, exit 1 with the count."""
    folder, ckpt, _, _ = images
    (folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'not really an image' * 10)
    run = call_tool(['infer.py', '-opt', OPTIONS, '--checkpoint', ckpt, '--input', folder, '--device', 'cpu',
                     '--output', 'out', '--suffix', ''], tmp_path, capsys, check=False)
    assert run.status == 1, run.err
    warnings = [line for line in run.err.splitlines() if line.startswith('warning:')]
    assert len(warnings) == 1 and 'broken.png' in warnings[0], run.err
    errors = [line for line in run.err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and errors[0].startswith('error: 1 of 3 image(s) could not be read') \
        and 'broken.png' in errors[0], run.err
    assert 'Traceback' not in run.err
    assert sorted(os.listdir(tmp_path / 'out')) == ['cat.png', 'rocket.png']


def test_infer_cli_junk_checkpoint_never_suggests_an_unsafe_reload(tmp_path, images, capsys):
    """A junk checkpoint and one holding pickled code: one line naming the file with our reason, never torch's
    advice to reload with weights_only=False."""
    folder, _, _, _ = images
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'hello, this is not a checkpoint' * 20)
    evil = tmp_path / 'evil.pth'
    torch.save({'params': {}, 'hook': os.system}, evil)  # loading it unsafely would resolve os.system
    for path, reason in ((junk, 'not a PyTorch checkpoint'),
                         (evil, 'it holds Python objects that a safe load refuses')):
        run = call_tool(['infer.py', '-opt', OPTIONS, '--checkpoint', path, '--input', folder, '--device', 'cpu'],
                        tmp_path, capsys, check=False)
        assert run.status == 2, run.err
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f'error: cannot read checkpoint {path}: {reason}'), run.err
        assert 'weights_only' not in run.err
