"""tools/export.py and plugins/common/export.py: TorchScript and ONNX files of the networks' inference forms, with
dynamic height and width, checked against PyTorch on an input of another size; the networks that cannot be exported
say why. Small networks and inputs; the tool runs in this process (``call_tool``)."""
import os.path as osp

import pytest
import torch
from tests.helpers import call_tool, options, repo_path

import plugins  # noqa: F401
from plugins.blindsr.cmdsr_arch import CMDSR
from plugins.classic.srcnn_arch import SRCNN
from plugins.common.export import NotExportable, export_and_check, export_form
from plugins.engine.basicsr.networks import build_network_from_options
from plugins.textsr.crnn_arch import CRNN
from plugins.textsr.tsrn_arch import TSRN

SRCNN_OPTIONS = repo_path('options/test/classic/srcnn_x2.yml')  # SRCNN x2 on Y: one input channel
LOWLIGHT_OPTIONS = repo_path('options/train/lowlight/backbone7x7_demo.yml')


def _onnx_dims(path):
    """{input name: [dim value or dim_param label, ...]} of an ONNX file."""
    import onnx
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in onnx.load(path).graph.input}


def _checkpoint(opt_path, tmp_path, seed=0):
    torch.manual_seed(seed)
    net = build_network_from_options(opt_path)
    path = tmp_path / 'net_g.pth'
    torch.save({'params': net.state_dict()}, path)
    return net, path


def test_tool_writes_torchscript_and_onnx_with_dynamic_size_that_match_pytorch(tmp_path, capsys):
    net, ckpt = _checkpoint(SRCNN_OPTIONS, tmp_path)
    run = call_tool(['export.py', '-opt', SRCNN_OPTIONS, '--checkpoint', ckpt, '--output', tmp_path / 'out',
                     '--input-size', '24x20'], tmp_path, capsys)
    name = options(SRCNN_OPTIONS)['name']
    pt, onnx_path = tmp_path / 'out' / f'{name}.pt', tmp_path / 'out' / f'{name}.onnx'
    assert f'torchscript  {pt}  check on image 1x1x40x28: max |exported - PyTorch| = ' in run.out, run.out
    assert f'onnx         {onnx_path}  check on image 1x1x40x28: max |exported - PyTorch| = ' in run.out, run.out
    assert _onnx_dims(str(onnx_path)) == {'image': [1, 1, 'height', 'width']}
    # The files run at a third size, with the checkpoint's weights (not the random ones of a fresh network).
    x = torch.rand(1, 1, 13, 31)
    with torch.no_grad():
        expected = net.eval()(x)
        got = torch.jit.load(str(pt))(x)
    assert got.shape == (1, 1, 26, 62) and torch.allclose(got, expected, atol=1e-5)
    import onnxruntime
    out = onnxruntime.InferenceSession(str(onnx_path)).run(None, {'image': x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(out), expected, atol=1e-4)


def test_the_check_measures_the_difference_on_another_size(tmp_path):
    form = export_form(SRCNN(num_in_ch=3, upscale=2), None, (16, 16))
    assert form.inputs == {'image': (1, 3, 16, 16)} and form.check['image'][2:] != (16, 16)
    (result,) = export_and_check(form, str(tmp_path), 'srcnn', ['torchscript'])
    assert result.ok and result.max_diff is not None and result.max_diff < 1e-5
    # A module whose traced graph froze its input size: the check on another size finds it.

    class FrozenSize(torch.nn.Module):
        def forward(self, x):  # int() turns the traced size into a constant
            return torch.nn.functional.interpolate(x, size=(int(x.shape[2]) * 2, int(x.shape[3]) * 2))

    frozen = export_form(FrozenSize(), {'num_in_ch': 3}, (16, 16))
    (result,) = export_and_check(frozen, str(tmp_path), 'frozen', ['torchscript'])
    assert not result.ok and 'check FAILED' in result.line() and '1x3x32x24' in result.line(), result.line()


def test_networks_with_more_than_an_image_export_their_inference_form(tmp_path):
    # CMDSR: the image and its support set, both with free sizes (the modulated convolutions take their plain form
    # without autograd, so both exporters record them).
    cmdsr = CMDSR(support_size=2, num_feat=8, num_block=1, upscale=2, cond_dim=8)
    form = export_form(cmdsr, None, (16, 16))
    assert set(form.inputs) == {'image', 'support'} and form.inputs['support'] == (1, 2, 3, 16, 16)
    script, onnx_result = export_and_check(form, str(tmp_path), 'cmdsr')
    assert script.ok and script.max_diff < 1e-4, script.line()
    assert onnx_result.ok and onnx_result.max_diff < 1e-3, onnx_result.line()
    assert _onnx_dims(onnx_result.path)['support'] == [1, 2, 3, 'support_height', 'support_width']
    # CRNN: a word image of height 32, free width; the output's length follows it.
    crnn = CRNN(num_classes=5, hidden=8)
    form = export_form(crnn, None, (32, 40))
    results = export_and_check(form, str(tmp_path), 'crnn')
    assert all(r.ok and r.max_diff < 1e-4 for r in results), [r.line() for r in results]
    assert _onnx_dims(results[1].path) == {'image': [1, 1, 32, 'width']}
    # TSRN: image + mask channel.
    tsrn = TSRN(num_feat=8, num_block=1, stn=False)
    results = export_and_check(export_form(tsrn, None, (16, 32)), str(tmp_path), 'tsrn')
    assert all(r.ok for r in results) and results[0].check_shapes == 'image 1x4x32x40', [r.line() for r in results]


def test_spdnorm_generator_exports_at_the_size_it_generates(tmp_path):
    pytest.importorskip('mmagic')
    from plugins.inpaint.generator_arch import SPDNormGenerator
    gen = SPDNormGenerator(z_dim=8, latent_size=4, channels=(8, 8, 4), mask_numbers=(2, 2), mask_kernels=(3, 3),
                           hidden=8)
    form = export_form(gen, None, (64, 64))
    assert form.inputs == {'noise': (1, 8), 'prior': (1, 3, 16, 16), 'mask': (1, 1, 16, 16)} and not form.dynamic
    results = export_and_check(form, str(tmp_path), 'spdnorm')
    assert all(r.ok and r.max_diff < 1e-4 for r in results), [r.line() for r in results]


def test_an_inpainting_config_exports_its_completion_with_dynamic_size(tmp_path, capsys):
    """The tool on an mmengine config and checkpoint: the model's ``inpaint`` (masked image + mask -> completion with
    the known pixels kept), not the bare generator."""
    pytest.importorskip('mmagic')
    from plugins.engine.mmengine.config_model import build_config_model, read_config
    config = repo_path('options/mmagic/inpaint/base_demo.py')
    torch.manual_seed(0)
    model = build_config_model(read_config(config), config).eval()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, tmp_path / 'iter_1.pth')
    run = call_tool(['export.py', config, '--checkpoint', tmp_path / 'iter_1.pth', '--output', tmp_path / 'out',
                     '--input-size', '32'], tmp_path, capsys)
    assert 'EncDecInpaintor' in run.out and 'the completion with the known pixels kept; H and W dynamic' in run.out
    onnx_path = tmp_path / 'out' / 'base_demo.onnx'
    assert f'onnx         {onnx_path}  check on image 1x3x48x40, mask 1x1x48x40: max |' in run.out, run.out
    assert _onnx_dims(str(onnx_path)) == {'image': [1, 3, 'height', 'width'], 'mask': [1, 1, 'height', 'width']}
    # The completion keeps the known pixels exactly, at a third size.
    img, mask = torch.rand(1, 3, 24, 36) * 2 - 1, (torch.rand(1, 1, 24, 36) > 0.5).float()
    with torch.no_grad():
        out = torch.jit.load(str(tmp_path / 'out' / 'base_demo.pt'))(img * (1 - mask), mask)
    assert out.shape == (1, 3, 24, 36) and torch.equal(out * (1 - mask), img * (1 - mask))


def test_a_network_that_cannot_be_exported_says_why_and_the_tool_exits_1(tmp_path, capsys):
    _, ckpt = _checkpoint(LOWLIGHT_OPTIONS, tmp_path)
    run = call_tool(['export.py', '-opt', LOWLIGHT_OPTIONS, '--checkpoint', ckpt, '--output', tmp_path / 'out',
                     '--format', 'torchscript'], tmp_path, capsys, check=False)
    assert run.status == 1
    assert 'torchscript  not exported: torch.jit.trace failed: ' in run.out, run.out
    assert 'computes a size with Python arithmetic on the input size' in run.out
    assert not osp.exists(tmp_path / 'out' / f"{options(LOWLIGHT_OPTIONS)['name']}.pt")
    with pytest.raises(NotExportable, match='not an inference network of its own'):
        from plugins.textsr.bridge_arch import TextBridge
        export_form(TextBridge(in_ch=8), None, (16, 64))


def test_bad_usage_exits_2(tmp_path, capsys):
    run = call_tool(['export.py', '-opt', SRCNN_OPTIONS, '--checkpoint', tmp_path / 'missing.pth', '--output',
                     tmp_path], tmp_path, capsys, check=False)
    assert run.status == 2 and 'error: checkpoint not found' in run.err, run.err
    run = call_tool(['export.py', '-opt', SRCNN_OPTIONS, '--checkpoint', 'x.pth', '--output', tmp_path,
                     '--input-size', '0x8'], tmp_path, capsys, check=False)
    assert run.status == 2 and '--input-size' in run.err
