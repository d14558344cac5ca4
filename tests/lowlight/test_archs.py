"""Low-light line: guided-filter layers, Backbone7x7 and Gen_Y networks (parameter counts of the lab's code, MACs,
shapes, gradients, the eval fast path) and their bad-input errors."""
import pytest
import torch
import torch.nn.functional as F

import plugins  # noqa: F401
from plugins.common.complexity import count_flops, count_parameters
from plugins.lowlight.backbone7x7_arch import Backbone7x7, Gen_Y_Backbone7x7, Gen_Y_Backbone7x7_Share
from plugins.lowlight.brightness import IMAGENET_BRIGHTNESS, add_brightness_plane
from plugins.lowlight.guided_filter import (AdaptiveNorm, ConvGuidedFilter, FastGuidedFilter, GuidedFilter, box_filter,
                                            run_folded)

torch.set_num_threads(1)


def _box_mean_direct(x, r):
    """Mean over (2r+1)^2 windows clipped at the borders, by average pooling over the valid pixels only."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def _reference_coefficients(x, y, r, eps):
    mx, my = _box_mean_direct(x, r), _box_mean_direct(y, r)
    a = (_box_mean_direct(x * y, r) - mx * my) / (_box_mean_direct(x * x, r) - mx * mx + eps)
    return a, my - a * mx


@pytest.mark.parametrize('r', [1, 2, 5])
def test_box_filter_equals_direct_window_sums(r):
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    direct_sum = F.avg_pool2d(x, 2 * r + 1, 1, r, count_include_pad=True) * (2 * r + 1) ** 2  # zero-padded
    torch.testing.assert_close(box_filter(x, r), direct_sum)


def test_fast_guided_filter_same_resolution_matches_direct_reference():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 21, 19, dtype=torch.float64), torch.rand(2, 3, 21, 19, dtype=torch.float64)
    a, b = _reference_coefficients(x, y, 2, 1e-3)
    torch.testing.assert_close(FastGuidedFilter(2, 1e-3)(x, y, x), a * x + b)
    # the classic filter smooths A and b once more
    torch.testing.assert_close(GuidedFilter(2, 1e-3)(x, y), _box_mean_direct(a, 2) * x + _box_mean_direct(b, 2))


def test_guided_filters_output_size_follows_guide_for_odd_sizes_and_channels():
    lr_x, lr_y = torch.rand(1, 1, 13, 9), torch.rand(1, 5, 13, 9)  # 1-channel guide, 5-channel image
    out = FastGuidedFilter(1)(lr_x, lr_y, torch.rand(1, 1, 51, 35))
    assert out.shape == (1, 5, 51, 35)
    gf = ConvGuidedFilter(1, channels=5)
    assert gf(torch.rand(2, 5, 13, 9), torch.rand(2, 5, 13, 9), torch.rand(2, 5, 53, 37)).shape == (2, 5, 53, 37)
    with pytest.raises(ValueError, match='guide must have 1 channel or as many'):
        FastGuidedFilter(1)(torch.rand(1, 2, 9, 9), torch.rand(1, 3, 9, 9), torch.rand(1, 2, 20, 20))
    with pytest.raises(ValueError, match='larger than the window'):
        box_filter(torch.rand(1, 1, 5, 5), 2)


def test_conv_guided_filter_starts_as_a_box_filter_and_learns():
    gf = ConvGuidedFilter(2)
    assert torch.all(gf.box_filter.weight == 1) and gf.box_filter.dilation == (2, 2)
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    gf(x, y, torch.rand(2, 3, 64, 64)).mean().backward()
    assert gf.box_filter.weight.grad.abs().sum() > 0 and gf.conv_a[0].weight.grad.abs().sum() > 0


def test_folded_adaptive_norm_equals_eval_mode_modules():
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 1, bias=False), AdaptiveNorm(8, w0=0.3, w1=0.8),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))
    seq(torch.randn(4, 4, 8, 8))  # training step: running statistics move
    seq.eval()
    x = torch.randn(2, 4, 10, 7)
    torch.testing.assert_close(run_folded(seq, x), seq(x))


@pytest.mark.parametrize('cls, kwargs, params', [
    (Backbone7x7, {}, 427_556),  # the lab's final Backbone7x7 (guidance map from RGB + brightness)
    (Backbone7x7, {'guide_rgb_only': True}, 427_540),  # SwiftNetSlim_GFLAndMap_BN2 (seed table: 427,534)
    (Gen_Y_Backbone7x7, {}, 853_458),
    (Gen_Y_Backbone7x7_Share, {}, 494_981),
])
def test_parameter_counts_equal_the_labs_code(cls, kwargs, params):
    assert count_parameters(cls(**kwargs)) == (params, params)


def test_backbone7x7_macs_at_4x1920x1056():
    """FlopCounterMode counts convolutions and matrix products (the inference path computes the full-resolution
    guidance map as two matrix products); not norms, pooling, interpolation or element-wise ops."""
    flops, by_op, shape = count_flops(Backbone7x7().eval(), (1, 4, 1056, 1920))
    assert shape == (1, 3, 1056, 1920)
    assert abs(flops / 2 / 7.23e9 - 1) < 0.01, flops / 2
    assert set(by_op) == {'aten.convolution', 'aten.addmm'}
    assert by_op['aten.addmm'] == 2 * 1056 * 1920 * (4 * 16 + 16 * 3)  # G(x) at full resolution, nothing more


def test_state_dict_names_follow_the_labs_modules():
    keys = set(Backbone7x7().state_dict())
    for key in ('encoder.conv1.weight', 'encoder.layer2.0.downsample.0.weight', 'spp.spp.spp_fuse.norm.running_mean',
                'decoder.up3.blend_conv.conv.weight', 'post.norm.weight', 'filter.conv_a.1.w_0',
                'guided_map.1.bn.weight', 'guided_map.3.bias'):
        assert key in keys
    assert 'genY.decoder2.up1.skip_conv.conv.weight' in Gen_Y_Backbone7x7().state_dict()
    assert 'post2.conv.weight' in Gen_Y_Backbone7x7_Share().state_dict()


@pytest.mark.parametrize('cls, size', [(Backbone7x7, (75, 101)), (Gen_Y_Backbone7x7, (150, 139)),
                                       (Gen_Y_Backbone7x7_Share, (133, 160))])
def test_any_size_shapes_gradients_and_eval(cls, size):
    torch.manual_seed(0)
    net = cls()
    x = add_brightness_plane(torch.rand(2, 3, *size), IMAGENET_BRIGHTNESS)
    aux, out = net(x, return_aux=True)
    assert out.shape == (2, 3, *size)
    assert aux.shape[-2:] == ((size[0] + 15) // 16 * 4, (size[1] + 15) // 16 * 4) if cls is Backbone7x7 else \
        aux.shape == (2, 1, *size)
    (out.mean() + aux.mean()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()
    with torch.inference_mode():
        assert torch.isfinite(net(x)).all() and net(x).shape == (2, 3, *size)


def test_gen_y_enhancer_does_not_backpropagate_into_the_y_head():
    net = Gen_Y_Backbone7x7()
    _, out = net(add_brightness_plane(torch.rand(1, 3, 144, 144), 0.4), return_aux=True)
    out.mean().backward()
    assert all(p.grad is None for p in net.genY.parameters())


def test_brightness_plane_changes_the_output():
    net = Backbone7x7().eval()
    rgb = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert not torch.allclose(net(add_brightness_plane(rgb, 0.2)), net(add_brightness_plane(rgb, 0.8)))


def test_bad_inputs_fail_with_clear_messages():
    net = Backbone7x7().eval()
    with pytest.raises(ValueError, match=r'takes \(N, 4, H, W\) = RGB \+ a brightness plane.*--brightness'):
        net(torch.rand(1, 3, 64, 64))
    plane = add_brightness_plane(torch.rand(1, 3, 64, 64), 0.5)
    plane[:, 3, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='brightness plane .* non-finite'):
        net(plane)
    with pytest.raises(ValueError, match='brightness must be a finite number in'):
        add_brightness_plane(torch.rand(1, 3, 64, 64), float('inf'))
    with pytest.raises(ValueError, match='image is 20x64; both sides must be at least 33'):
        net(add_brightness_plane(torch.rand(1, 3, 20, 64), 0.5))
    with pytest.raises(ValueError, match='at least 132'):
        Gen_Y_Backbone7x7_Share()(add_brightness_plane(torch.rand(1, 3, 100, 200), 0.5))
    with pytest.raises(ValueError, match='in_ch must be 4'):
        Backbone7x7(in_ch=3)


@pytest.mark.parametrize('cls, size', [(Backbone7x7, (70, 99)), (Gen_Y_Backbone7x7_Share, (140, 150))])
def test_inference_fast_path_equals_the_layer_by_layer_path(cls, size):
    torch.manual_seed(0)
    net = cls()
    net(add_brightness_plane(torch.rand(2, 3, *size), 0.3))  # one training step moves the BN statistics
    net.eval()
    x = add_brightness_plane(torch.rand(2, 3, *size), 0.45)
    with torch.inference_mode():
        fast = net(x)  # row-block tail (plugins/lowlight/fast_path.py)
    reference = net(x).detach()  # autograd on: the layer-by-layer modules
    assert fast.shape == reference.shape == (2, 3, *size)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        channels_last = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, reference, rtol=1e-4, atol=1e-4)
