"""``tools/convert_checkpoint.py --from cmdsr``: an official CMDSR state dict, built here from the official code's
key names and shapes (``guanghaoyin/CMDSR`` ``models/CMDSR.py``), into our ``CMDSR``; ``official_bias: true``
against the official modulated convolution's grouped form with its ``repeat_interleave`` bias, written here."""
import re

import pytest
import torch
from torch.nn import functional as F

import plugins  # noqa: F401
from plugins.blindsr.cmdsr_arch import CMDSR
from plugins.blindsr.modulated_conv import ModulatedConv2d
from plugins.blindsr.reference_checkpoints import convert_official_cmdsr
from plugins.engine.errors import OptionsError
from tests.helpers import load_tool, run_options

torch.set_num_threads(1)


def official_state_dict(n_block=10, feat=64, support=20, scale=4, seed=0):
    """Random tensors under the official ``CMDSR.state_dict()`` keys and shapes (SRResNet_10 + ConditionNet '22')."""
    g = torch.Generator().manual_seed(seed)
    shapes = {'sr_net.input_conv.weight': (feat, 3, 3, 3), 'sr_net.input_conv.bias': (feat, )}
    for i in range(n_block):
        for c in (1, 2):
            shapes[f'sr_net.backbone.{i}.conv{c}.weight'] = (feat, feat, 3, 3)
            shapes[f'sr_net.backbone.{i}.conv{c}.bias'] = (feat, )
    stages = [(0, 9 * feat)] if scale == 3 else [(2 * s, 4 * feat) for s in range({2: 1, 4: 2}[scale])]
    for idx, out in stages:  # Upsampler(nn.Sequential): BaseConv2d, PixelShuffle, ...
        shapes[f'sr_net.upsampler.{idx}.weight'] = (out, feat, 3, 3)
        shapes[f'sr_net.upsampler.{idx}.bias'] = (out, )
    shapes['sr_net.output_conv.weight'] = (3, feat, 3, 3)
    shapes['sr_net.output_conv.bias'] = (3, )
    for j in range(2 * n_block):  # Modulations.modulations: EqualLinear(128, feat)
        shapes[f'sr_net.modulations.modulations.{j}.weight'] = (feat, 128)
        shapes[f'sr_net.modulations.modulations.{j}.bias'] = (feat, )
    for idx, (cout, cin) in {0: (64, 3 * support), 2: (64, 64), 5: (128, 64), 7: (128, 128)}.items():
        shapes[f'condition_net.condition.{idx}.weight'] = (cout, cin, 3, 3)  # VGG cfg[:5]: conv relu conv relu pool
        shapes[f'condition_net.condition.{idx}.bias'] = (cout, )
    return {k: torch.randn(s, generator=g) * 0.1 for k, s in shapes.items()}


def test_converter_maps_every_official_key_and_infers_the_network():
    state = official_state_dict(n_block=3, feat=16, support=5, scale=4)
    converted, how = convert_official_cmdsr(state)
    ours = converted['params']
    assert len(ours) == len(state)
    assert torch.equal(ours['sr_net.modulations.linears.4.bias'], state['sr_net.modulations.modulations.4.bias'])
    assert torch.equal(ours['condition_net.body.5.weight'], state['condition_net.condition.5.weight'])
    assert torch.equal(ours['sr_net.upsampler.2.weight'], state['sr_net.upsampler.2.weight'])
    for text in ('support_size: 5', 'num_block: 3', 'num_feat: 16', 'upscale: 4', 'official_bias: True',
                 'param_key_g: params', 'img_range: 255.0'):
        assert text in how
    net = CMDSR(support_size=5, num_block=3, num_feat=16, upscale=4, official_bias=True)
    net.load_state_dict(ours, strict=True)
    x3 = convert_official_cmdsr(official_state_dict(n_block=2, feat=8, support=2, scale=3))[1]
    assert 'upscale: 3' in x3 and 'support_size: 2' in x3


def official_modulated_conv(x, weight, bias, cond):
    """The official ``BaseConv2d.forward`` modulated path (in == out): per-sample weights in one grouped convolution
    and ``repeat_interleave(bias, b)``. x ``(b, c, h, w)``, weight ``(c, c, 3, 3)`` already scaled, cond ``(b, c)``."""
    b, c, h, w = x.shape
    wb = (weight[None] * cond[:, None, :, None, None]).reshape(b * c, c, 3, 3)
    out = F.conv2d(x.reshape(1, b * c, h, w), wb, torch.repeat_interleave(bias, b), padding=1, groups=b)
    return out.reshape(b, c, h, w)


def test_official_bias_reproduces_the_repeat_interleave_bias_and_the_default_fixes_it():
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 6, 3, padding=1, equalized=True, official_bias=True)
    with torch.no_grad():
        conv.bias.normal_()  # a trained bias
    x, cond = torch.randn(4, 6, 5, 7), torch.rand(4, 6) + 0.5
    official = official_modulated_conv(x, conv.weight * conv.weight_scale, conv.bias, cond)
    assert torch.allclose(conv(x, cond), official, atol=1e-5)
    conv.official_bias = False
    fixed = conv(x, cond)
    assert (fixed - official).abs().max() > 0.5  # the scrambled bias differs from ours for a batch
    # image b channel o got bias[(b * 6 + o) // 4] officially, bias[o] with the fix
    assert torch.allclose(official - fixed, (torch.repeat_interleave(conv.bias, 4).view(4, 6) - conv.bias)[
        :, :, None, None].expand_as(fixed), atol=1e-5)
    assert torch.allclose(conv(x[:1], cond[:1]), official_modulated_conv(x[:1], conv.weight * conv.weight_scale,
                                                                          conv.bias, cond[:1]), atol=1e-5)


@pytest.mark.parametrize('change, message', [
    (lambda s: s.update({'sr_net.extra.weight': torch.zeros(1)}), "unexpected key 'sr_net.extra.weight'"),
    (lambda s: s.pop('sr_net.modulations.modulations.3.bias'), "missing key 'sr_net.modulations.modulations.3.bias'"),
    (lambda s: s.update({'sr_net.backbone.1.conv2.weight': torch.zeros(16, 8, 3, 3)}),
     'sr_net.backbone.1.conv2.weight has shape'),
    (lambda s: s.update({'condition_net.condition.10.weight': torch.zeros(1)}),
     "unexpected key 'condition_net.condition.10.weight'"),
])
def test_converter_refuses_keys_and_shapes_of_another_network(change, message):
    state = official_state_dict(n_block=2, feat=16, support=2)
    change(state)
    with pytest.raises(OptionsError, match=message):
        convert_official_cmdsr(state)


def test_convert_checkpoint_tool_writes_what_our_network_loads(tmp_path, capsys):
    state = official_state_dict(n_block=2, feat=16, support=2)
    torch.save(state, tmp_path / 'official.pth')
    main = load_tool('convert_checkpoint.py').main
    assert main(['--from', 'cmdsr', str(tmp_path / 'official.pth'), str(tmp_path / 'ours.pth')]) == 0
    assert 'pretrain_network_g' in capsys.readouterr().out
    net = CMDSR(support_size=2, num_block=2, num_feat=16, official_bias=True)
    net.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True)['params'], strict=True)
    torch.save({'sr_net.input_conv.weight': 'not a tensor'}, tmp_path / 'bad.pth')
    assert main(['--from', 'cmdsr', str(tmp_path / 'bad.pth'), str(tmp_path / 'x.pth')]) == 2
    assert 'sr_net.input_conv.weight' in capsys.readouterr().err


def test_official_test_options_evaluate_a_converted_official_checkpoint(workdir):
    """``options/test/blindsr/cmdsr_x4_official.yml`` end to end (shrunk network, one set: the demo validation
    images under the official protocol) on a checkpoint the converter made from official key names."""
    torch.save(official_state_dict(n_block=2, feat=16, support=20), workdir / 'official.pth')
    main = load_tool('convert_checkpoint.py').main
    assert main(['--from', 'cmdsr', str(workdir / 'official.pth'), str(workdir / 'ours.pth')]) == 0
    run = run_options('options/test/blindsr/cmdsr_x4_official.yml', workdir, {
        'network_g:num_feat': 16, 'network_g:num_block': 2, 'path:pretrain_network_g': str(workdir / 'ours.pth'),
        'datasets:test_1:dataroot_gt': 'datasets/demo/val/HR', 'datasets:test_1:gt_crop': 200},
        train=False, delete=['datasets:test_2', 'datasets:test_3', 'datasets:test_4'])
    assert re.search(r'Validation Set5_blur2\.6_noise15\n\s+# psnr: [\d.]+', run.log('test_*.log'))
