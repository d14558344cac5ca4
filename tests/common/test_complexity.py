"""tools/benchmark.py and plugins/common/complexity.py: parameters, exact FLOPs, latency, input size and errors."""
import json

import pytest
import torch
from tests.helpers import call_tool, repo_path

import plugins  # noqa: F401
from plugins.classic.srcnn_arch import SRCNN
from plugins.common.complexity import benchmark, count_flops, count_parameters, resolve_input_size
from plugins.engine.errors import OptionsError

OPTIONS = repo_path('options/train/classic/srcnn_x2.yml')


def srcnn_flops(n, cin, h, w, scale=2, feats=(64, 32), kernels=(9, 5, 5)):
    """2 FLOPs per multiply-accumulate of the three convolutions at the upsampled size; FlopCounterMode counts
    neither the biases nor the bicubic upsampling nor the ReLUs."""
    chans = (cin,) + tuple(feats) + (cin,)
    macs_per_pixel = sum(k * k * chans[i] * chans[i + 1] for i, k in enumerate(kernels))  # 57,184 for Y
    return 2 * macs_per_pixel * n * (h * scale) * (w * scale)


@pytest.mark.parametrize('flag', ['--output', '--json'])  # --json: the former name, kept as an alias
def test_benchmark_cli_srcnn(tmp_path, capsys, flag):
    run = call_tool(['benchmark.py', '-opt', OPTIONS, '--input-size', '1x1x32x32', '--runs', '2', '--warmup', '1',
                     '--device', 'cpu', flag, 'out.json'], tmp_path, capsys)
    stdout = run.out
    assert '57,281' in stdout
    assert 'FlopCounterMode' in stdout and 'NOT count' in stdout
    with open(tmp_path / 'out.json') as f:
        result = json.load(f)
    assert result['params'] == result['trainable_params'] == 57281
    assert srcnn_flops(1, 1, 32, 32) == 2 * 57184 * 64 * 64
    assert result['flops'] == srcnn_flops(1, 1, 32, 32) == 468_451_328
    assert result['macs'] == result['flops'] // 2
    assert f'{result["flops"]:,}' in stdout
    assert result['input_size'] == [1, 1, 32, 32] and result['output_size'] == [1, 1, 64, 64]
    assert result['latency_ms']['median'] > 0 and result['latency_ms']['mean'] > 0
    assert len(result['latency_ms']['all']) == 2
    assert result['peak_memory_bytes'] >= 0 and result['peak_memory_method'].startswith('CPU')
    assert result['torch_version'] and result['num_threads'] >= 1 and result['device'] == 'cpu'


def test_benchmark_fp16_on_cpu_fails():
    with pytest.raises(OptionsError, match='--fp16 needs a CUDA device'):
        benchmark(SRCNN(), (1, 1, 16, 16), device='cpu', fp16=True)


def test_count_flops_rgb_batch_and_params():
    net = SRCNN(num_in_ch=3, upscale=3)
    flops, by_op, out_shape = count_flops(net, (2, 3, 10, 12))
    assert flops == srcnn_flops(2, 3, 10, 12, scale=3) and out_shape == (2, 3, 30, 36)
    assert set(by_op) == {'aten.convolution'}
    assert count_parameters(net) == (sum(p.numel() for p in net.parameters()),) * 2
    assert next(net.parameters()).device.type == 'cpu'  # counted on a meta copy, the network is untouched


def test_resolve_input_size():
    net = SRCNN(num_in_ch=1)
    opt = {'network_g': {'type': 'SRCNN', 'num_in_ch': 1}}
    size, origin = resolve_input_size(None, opt, net)
    assert size == (1, 1, 1080, 1920) and 'network_g.num_in_ch' in origin  # C follows the network
    opt['benchmark'] = {'input_size': [2, 1, 64, 48]}
    assert resolve_input_size(None, opt, net)[0] == (2, 1, 64, 48)
    assert resolve_input_size('1x1x8x8', opt, net)[0] == (1, 1, 8, 8)  # the command line wins
    with pytest.raises(OptionsError, match='network takes 1 input channel'):
        resolve_input_size('1x3x8x8', opt, net)
    with pytest.raises(OptionsError, match='N x C x H x W'):
        resolve_input_size('3x64x64', opt, net)


def test_benchmark_cli_amp_channels_last_and_compile(tmp_path, capsys):
    """--amp bf16 (CPU autocast), --channels-last and --compile with a backend that compiles in seconds all run and
    are reported; FLOPs and parameters do not depend on them."""
    call_tool(['benchmark.py', '-opt', OPTIONS, '--input-size', '1x1x24x24', '--runs', '1', '--warmup', '1',
               '--device', 'cpu', '--amp', 'bf16', '--channels-last', '--compile', '--compile-backend', 'eager',
               '--json', 'out.json'], tmp_path, capsys)
    with open(tmp_path / 'out.json') as f:
        result = json.load(f)
    assert result['modes'] == {'channels_last': True, 'compile': True, 'fp16': False, 'amp': 'bf16',
                               'compile_backend': 'eager'}
    assert result['flops'] == srcnn_flops(1, 1, 24, 24) and result['params'] == 57281
    assert result['latency_ms']['median'] > 0 and result['images_per_s'] > 0


def test_benchmark_amp_outputs_follow_the_mode():
    """The timed passes really run under autocast: the network's output dtype inside the benchmark is bfloat16."""
    net = SRCNN()
    seen = []
    net.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    benchmark(net, (1, 1, 12, 12), device='cpu', runs=1, warmup=0, amp='bf16')
    assert seen[-1] == torch.bfloat16
    benchmark(net, (1, 1, 12, 12), device='cpu', runs=1, warmup=0)
    assert seen[-1] == torch.float32


def test_benchmark_fp16_and_amp_exclude_each_other(tmp_path, capsys):
    run = call_tool(['benchmark.py', '-opt', OPTIONS, '--input-size', '1x1x8x8', '--device', 'cpu', '--amp', 'fp16',
                     '--fp16'], tmp_path, capsys, check=False)
    assert run.status == 2 and 'exclude each other' in run.err
