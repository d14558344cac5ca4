"""CMDSR networks: parameter counts of the official code, shapes and gradients, the grouped modulated convolution,
identity modulation == plain BaseNet, both ConditionNet forms, the RRDB BaseNet (== BasicSR's RRDBNet without
modulation), and the contrastive loss."""
import pytest
import torch
from torch.nn import functional as F

import plugins  # noqa: F401
from plugins.blindsr.cmdsr_arch import CMDSR, CMDSRBaseNet, CMDSRConditionNet
from plugins.blindsr.contrastive_loss import TaskContrastiveLoss, derangement
from plugins.blindsr.modulated_conv import ModulatedConv2d, Modulations
from plugins.blindsr.cmdsr_rrdb_arch import CMDSRRRDBNet

torch.set_num_threads(1)


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _assert_all_params_have_grad(net: torch.nn.Module):
    missing = [n for n, p in net.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, f'no gradient for {missing}'


def test_parameter_counts_equal_the_official_code():
    net = CMDSR()  # x4, 64 channels, 10 blocks, stacked ConditionNet with support 20
    assert _count(net.sr_net) == 1_202_627
    assert _count(net.sr_net.modulations) == 165_120
    assert len(net.sr_net.modulations.linears) == 20
    assert _count(CMDSRBaseNet(modulated=False)) == 1_037_507
    assert _count(net.condition_net) == 292_992
    assert _count(net) == 1_495_619
    # the set form's first convolution takes one image: 3 * 64 * 9 + 64 instead of 60 * 64 * 9 + 64
    assert _count(CMDSRConditionNet(form='set')) == 292_992 - 34_624 + 1_792


@pytest.mark.parametrize('upscale', [2, 3, 4])
@pytest.mark.parametrize('condition', ['stacked', 'set'])
def test_cmdsr_shapes_and_gradients(upscale, condition):
    torch.manual_seed(0)
    net = CMDSR(condition=condition, support_size=3, upscale=upscale, num_feat=8, num_block=2)
    x = torch.rand(4, 3, 6, 5, requires_grad=True)  # 2 tasks x 2 images, non-square
    support = torch.rand(2, 3, 3, 7, 4)  # 2 tasks x 3 support patches, non-square, another size than x
    out = net(x, support)
    assert out.shape == (4, 3, 6 * upscale, 5 * upscale)
    out.abs().mean().backward()
    assert x.grad.abs().sum() > 0
    _assert_all_params_have_grad(net)


def test_condition_net_forms_and_support_sizes():
    torch.manual_seed(0)
    support = torch.rand(3, 5, 3, 9, 6)
    stacked = CMDSRConditionNet(support_size=5)
    assert stacked(support).shape == (3, 128, 1, 1)
    with pytest.raises(ValueError, match='built for support size 5.*got 4 support images'):
        stacked(support[:, :4])
    free = CMDSRConditionNet(form='set')
    assert free.support_size is None
    for s in (1, 5, 11):
        assert free(torch.rand(2, s, 3, 8, 8)).shape == (2, 128, 1, 1)
    # the set form is the mean of per-patch features: the order of the support images does not matter
    assert torch.allclose(free(support), free(support[:, torch.randperm(5)]), atol=1e-6)
    with pytest.raises(ValueError, match='support images have 1 channels, the network takes 3'):
        free(torch.rand(2, 5, 1, 8, 8))
    with pytest.raises(ValueError, match=r'\(tasks, support size, channels, h, w\)'):
        free(torch.rand(2, 15, 8, 8))
    with pytest.raises(ValueError, match="form must be one of"):
        CMDSRConditionNet(form='pooled')


def grouped_modulated_conv(conv: ModulatedConv2d, x: torch.Tensor, mod: torch.Tensor) -> torch.Tensor:
    """The reference: the B per-sample weights ``W * m[b]`` as one grouped convolution over the batch (the official
    BaseConv2d's way, with its reshape and bias repetition corrected), as ModulatedConv2d ran before it scaled the
    input instead."""
    b, c, h, w = x.shape
    weight = conv.weight * conv.weight_scale
    weight = (weight[None] * mod[:, None, :, None, None]).reshape(b * conv.out_channels, c, *conv.kernel_size)
    bias = None if conv.bias is None else conv.bias.repeat(b)
    out = F.conv2d(x.reshape(1, b * c, h, w), weight, bias, conv.stride, conv.padding, conv.dilation, groups=b)
    return out.reshape(b, conv.out_channels, *out.shape[-2:])


@pytest.mark.parametrize('equalized', [False, True])
def test_modulated_conv_equals_the_grouped_per_sample_weights_with_gradients(equalized):
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, padding=1, equalized=equalized)  # in != out: the official reshape fails
    with torch.no_grad():
        conv.bias.normal_()  # a trained bias: the official repeat_interleave would scramble it
    x, mod = torch.rand(4, 5, 6, 6), torch.rand(4, 5) + 0.5
    grads = []
    for forward in (conv, lambda a, m: grouped_modulated_conv(conv, a, m)):
        conv.zero_grad()
        xi, mi = x.clone().requires_grad_(), mod.clone().requires_grad_()
        out = forward(xi, mi)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append((out.detach(), xi.grad, mi.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    for name, ours, reference in zip(('output', 'x', 'modulation', 'weight', 'bias'), *grads):
        assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-5), name
    # and per-sample convolutions with the modulated weights agree (no demodulation)
    w = conv.weight * conv.weight_scale
    per_sample = torch.cat([F.conv2d(x[b:b + 1], w * mod[b][None, :, None, None], conv.bias, padding=1)
                            for b in range(4)])
    assert torch.allclose(grads[0][0], per_sample, atol=1e-5)
    with pytest.raises(ValueError, match=r'modulation must be \(batch 4, in_channels 5\)'):
        conv(x, mod[:2])


def _plain_autograd(conv, x, mod):
    """The dense form left to autograd (which keeps the scaled input for the backward pass)."""
    return F.conv2d(x * mod[:, :, None, None], conv.weight * conv.weight_scale, conv.bias, padding=1)


def test_modulated_conv_backward_keeps_no_scaled_copy_of_the_input():
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 6, 3, padding=1, equalized=True)
    x, mod = torch.rand(4, 6, 10, 10, requires_grad=True), (torch.rand(4, 6) + 0.5).requires_grad_()
    for forward, keeps_copy in ((conv, False), (lambda a, m: _plain_autograd(conv, a, m), True)):
        kept = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            forward(x, mod)
        activations = [t for t in kept if t.shape == x.shape]
        assert any(t.data_ptr() == x.data_ptr() for t in activations)
        assert any(t.data_ptr() != x.data_ptr() for t in activations) == keeps_copy


def test_modulated_conv_under_bf16_autocast_matches_autograd():
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, padding=1, equalized=True)
    with torch.no_grad():
        conv.bias.normal_()
    x, mod = torch.rand(4, 5, 6, 6), torch.rand(4, 5) + 0.5
    results = []
    for forward in (conv, lambda a, m: _plain_autograd(conv, a, m)):
        conv.zero_grad()
        xi, mi = x.clone().requires_grad_(), mod.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = forward(xi, mi)
        (out.float() * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append((out, xi.grad, mi.grad, conv.weight.grad.clone(), conv.bias.grad.clone()))
    assert results[0][0].dtype == torch.bfloat16
    for name, ours, reference in zip(('output', 'x', 'modulation', 'weight', 'bias'), *results):
        assert ours.dtype == reference.dtype and torch.allclose(ours.float(), reference.float(), rtol=1e-2,
                                                                atol=1e-2), name


def test_cmdsr_output_equals_the_grouped_form():
    """A whole CMDSR (both BaseNets) with the dense form equals the same network run with grouped convolutions."""
    torch.manual_seed(0)
    for base, extra in (('srresnet', {}), ('rrdb', {'num_grow_ch': 4, 'img_range': 1.})):
        net = CMDSR(base=base, support_size=2, num_feat=8, num_block=1, **extra).eval()
        x, support = torch.rand(4, 3, 6, 5), torch.rand(2, 2, 3, 6, 5)
        with torch.no_grad():
            dense = net(x, support)
            convs = [m for m in net.modules() if isinstance(m, ModulatedConv2d)]
            originals = {m: m.forward for m in convs}
            for m in convs:
                m.forward = (lambda conv: lambda a, mod=None: originals[conv](a) if mod is None else
                             grouped_modulated_conv(conv, a, mod))(m)
            grouped = net(x, support)
        assert torch.allclose(dense, grouped, rtol=1e-5, atol=1e-5), base


def test_tasks_and_images_per_task_may_change_between_training_and_inference():
    torch.manual_seed(0)
    net = CMDSR(support_size=2, num_feat=8, num_block=1).eval()
    x, support = torch.rand(6, 3, 5, 5), torch.rand(3, 2, 3, 5, 5)
    with torch.no_grad():
        batched = net(x, support)  # 3 tasks x 2 images
        one_by_one = torch.cat([net(x[2 * t + i:2 * t + i + 1], support[t:t + 1]) for t in range(3) for i in range(2)])
        assert torch.allclose(batched, one_by_one, atol=1e-5)
        assert net(x, support[:1]).shape == (6, 3, 20, 20)  # one task for all 6 images
    with pytest.raises(ValueError, match='cannot be split evenly over 4 condition vectors'):
        net(x, torch.rand(4, 2, 3, 5, 5))


def test_identity_modulation_reproduces_the_plain_basenet():
    torch.manual_seed(0)
    cmdsr = CMDSR(support_size=2, num_feat=16, num_block=3)
    plain = CMDSRBaseNet(num_feat=16, num_block=3, modulated=False)
    state = {k: v for k, v in cmdsr.sr_net.state_dict().items() if not k.startswith('modulations.')}
    plain.load_state_dict(state, strict=True)
    x, support = torch.rand(4, 3, 6, 6), torch.rand(2, 2, 3, 6, 6)
    with torch.no_grad():
        for lin in cmdsr.sr_net.modulations.linears:  # zero weights, bias 1: every scale is exactly 1
            lin.weight.zero_()
        assert torch.allclose(cmdsr(x, support), plain(x), atol=1e-5)
        # and a modulated net given no condition runs as the plain net
        assert torch.allclose(cmdsr.sr_net(x, None), plain(x), atol=1e-6)
        # a non-identity modulation changes the output
        cmdsr.sr_net.modulations.linears[0].bias.fill_(2.)
        assert not torch.allclose(cmdsr(x, support), plain(x), atol=1e-3)


def test_modulations_start_near_identity():
    torch.manual_seed(0)
    mods = Modulations([64] * 4)
    scales = torch.stack(mods(torch.zeros(3, 128, 1, 1), images_per_task=2))
    assert scales.shape == (4, 6, 64) and torch.equal(scales, torch.ones_like(scales))


def test_rrdb_basenet_matches_basicsr_rrdbnet_and_is_modulated():
    from basicsr.archs.rrdbnet_arch import RRDBNet
    torch.manual_seed(0)
    for scale in (2, 4):
        ours = CMDSRRRDBNet(num_feat=8, num_block=2, num_grow_ch=4, upscale=scale, modulated=False)
        ref = RRDBNet(3, 3, scale=scale, num_feat=8, num_block=2, num_grow_ch=4)
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
        ours.load_state_dict(ref.state_dict())  # Real-ESRGAN weights load as they are
        x = torch.rand(2, 3, 6, 8)
        with torch.no_grad():
            assert torch.allclose(ours(x), ref(x), atol=1e-5)
    net = CMDSR(base='rrdb', support_size=2, img_range=1., num_feat=8, num_block=1, num_grow_ch=4)
    assert len(net.sr_net.modulations.linears) == 15  # 3 dense blocks x 5 convolutions per RRDB
    assert [lin.weight.shape[0] for lin in net.sr_net.modulations.linears[:5]] == [8, 12, 16, 20, 24]
    x = torch.rand(4, 3, 5, 6, requires_grad=True)
    out = net(x, torch.rand(2, 2, 3, 5, 6))
    assert out.shape == (4, 3, 20, 24)
    out.mean().backward()
    _assert_all_params_have_grad(net)
    with pytest.raises(ValueError, match='upscale must be 2 or 4'):
        CMDSRRRDBNet(upscale=3)


def test_bad_upscale_and_base_are_refused():
    with pytest.raises(ValueError, match='upscale must be 2, 3, 4 or 8, got 5'):
        CMDSRBaseNet(upscale=5)
    with pytest.raises(ValueError, match="base must be one of"):
        CMDSR(base='edsr')


def test_derangement_has_no_fixed_point():
    g = torch.Generator().manual_seed(0)
    for n in (2, 3, 8):
        for _ in range(20):
            perm = derangement(n, g)
            assert sorted(perm.tolist()) == list(range(n)) and all(perm[i] != i for i in range(n))
    with pytest.raises(ValueError, match='at least 2 tasks'):
        derangement(1)


def test_contrastive_loss_per_vector_and_official_per_channel():
    f1, f2 = torch.zeros(2, 4, 1, 1), torch.zeros(2, 4, 1, 1)
    f2[1] = 1.  # task 1's halves differ by 1 in each of 4 channels
    perm = torch.tensor([1, 0])
    loss, d_in, _ = TaskContrastiveLoss()(f1, f2, perm)
    assert d_in.item() == pytest.approx((0 + 2) / 2, abs=1e-4)  # vector distances 0 and sqrt(4)
    _, d_in_official, _ = TaskContrastiveLoss(per_channel=True)(f1, f2, perm)
    assert d_in_official.item() == pytest.approx((0 + 1) / 2, abs=1e-4)  # |1| per channel
    # the official code's F.pairwise_distance on (T, D, 1, 1) is what per_channel reproduces
    official = F.pairwise_distance(f1, f2, keepdim=True)
    assert official.shape == (2, 4, 1, 1) and official.mean().item() == pytest.approx(d_in_official.item(), abs=1e-5)
    assert torch.isfinite(loss)


def test_contrastive_loss_is_lower_for_grouped_than_for_shuffled_supports():
    """Condition vectors of a real ConditionNet on supports degraded per task: halves of the same task make a
    lower loss than halves whose tasks were shuffled."""
    from plugins.blindsr.degradations import apply_paper_degradation
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 64, 64)
    hr = F.avg_pool2d(F.interpolate(hr, scale_factor=4, mode='bilinear'), 4)  # some smooth structure
    tasks = [{'sigma_x': s, 'noise': n} for s, n in ((0.3, 0), (3.5, 0), (1.0, 40), (2.5, 70))]
    crops = torch.stack([hr[0, :, y:y + 32, x:x + 32] for y in (0, 16, 32) for x in (0, 16, 32)][:8])
    support = torch.stack([apply_paper_degradation(crops, t, 2, generator=torch.Generator().manual_seed(i))
                           for i, t in enumerate(tasks)])  # (4 tasks, 8, 3, 16, 16)
    net = CMDSRConditionNet(support_size=4)
    loss_fn = TaskContrastiveLoss()
    perm = torch.tensor([1, 2, 3, 0])
    with torch.no_grad():
        f1, f2 = net(support[:, :4]), net(support[:, 4:])
        grouped, d_in, d_x = loss_fn(f1, f2, perm)
        shuffled, *_ = loss_fn(f1, net(support[perm, 4:]), perm)
    assert d_in < d_x
    assert grouped < shuffled
