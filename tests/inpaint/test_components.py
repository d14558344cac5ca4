"""Inpainting line (seed 003), unit level: SPDNorm maps, SimAM, generators, losses on hand-made tensors, mask
transforms, metrics and bad input. Training runs are in test_training.py."""
import math

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('mmagic')
import plugins.inpaint  # noqa: E402,F401  (the inpainting line in MMagic's registries)
from mmagic.registry import METRICS, MODELS, TRANSFORMS  # noqa: E402

from plugins.inpaint.inpaint_blocks import SimAM, SPDNormResBlock, hard_spd_map  # noqa: E402
from plugins.inpaint.generator_arch import PDGAN_MASK_KERNELS, InpaintEncoderDecoder, SPDNormGenerator  # noqa: E402
from plugins.inpaint.mask_transform import binarize_mask  # noqa: E402
from plugins.inpaint.inpaintor_model import check_image_and_mask  # noqa: E402

torch.set_num_threads(1)
E1, E2, E3 = math.exp(-1), math.exp(-2), math.exp(-3)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def hole_7x7():
    """A 7x7 mask whose 5x5 centre is a hole (1); the outer ring is known."""
    mask = torch.zeros(1, 1, 7, 7)
    mask[..., 1:6, 1:6] = 1
    return mask


# ----------------------------------------------------------------------------------------------------------------
# SPDNorm
# ----------------------------------------------------------------------------------------------------------------
def test_hard_map_rings_on_a_hand_made_mask():
    k2 = hard_spd_map(hole_7x7(), mask_number=2, kernel_size=3)[0, 0]
    expected = torch.tensor([[1, 1, 1, 1, 1, 1, 1],
                             [1, E1, E1, E1, E1, E1, 1],
                             [1, E1, E2, E2, E2, E1, 1],
                             [1, E1, E2, E2, E2, E1, 1],
                             [1, E1, E2, E2, E2, E1, 1],
                             [1, E1, E1, E1, E1, E1, 1],
                             [1, 1, 1, 1, 1, 1, 1]], dtype=torch.float32)
    assert torch.allclose(k2, expected)
    # Three rings: the centre pixel is the third ring (e^-3); with more rings than the hole needs, nothing changes.
    k3 = hard_spd_map(hole_7x7(), 3, 3)[0, 0]
    assert k3[3, 3] == pytest.approx(E3) and k3[2, 2] == pytest.approx(E2) and k3[1, 1] == pytest.approx(E1)
    assert torch.equal(hard_spd_map(hole_7x7(), 5, 3)[0, 0][1:6, 1:6], k3[1:6, 1:6] * 0 + torch.where(
        k3[1:6, 1:6] == k3[3, 3], torch.tensor(E3), k3[1:6, 1:6]))
    # A 5x5 dilation step grows two pixels a ring; the inner remainder of the hole gets e^-K.
    k5 = hard_spd_map(hole_7x7(), 1, 5)[0, 0]
    assert torch.allclose(k5[1:6, 1:6], torch.full((5, 5), E1))
    no_hole = hard_spd_map(torch.zeros(1, 1, 4, 4), 3, 3)
    assert torch.equal(no_hole, torch.ones_like(no_hole))


def test_soft_map_is_one_on_known_pixels_and_spdnorm_block_has_gradients():
    torch.manual_seed(0)
    block = SPDNormResBlock(8, 4, mask_number=2, mask_kernel=3, hidden=16)
    x = torch.randn(2, 8, 7, 7, requires_grad=True)
    prior = torch.rand(2, 3, 14, 14) * 2 - 1
    mask = hole_7x7().repeat(2, 1, 1, 1)
    soft = block.soft_map(x, prior[..., ::2, ::2], mask)
    known = mask.expand_as(soft) == 0
    assert torch.equal(soft[known], torch.ones_like(soft[known]))
    assert ((soft[~known] > 0) & (soft[~known] < 1)).all()
    out = block(x, prior, torch.nn.functional.interpolate(mask, scale_factor=2.))
    assert out.shape == (2, 4, 7, 7)
    out.square().mean().backward()
    assert x.grad.abs().sum() > 0 and block.soft_conv.weight.grad.abs().sum() > 0


def _reference_pdgan_generator_params(z_dim=256, ngf=64, hidden=128):
    """Parameters of KumapowerLIU/PD-GAN's SPDNormGenerator counted layer by layer from its source."""
    def conv(cin, cout, k, bias=True):
        return cin * cout * k * k + (cout if bias else 0)

    def spdnorm(c):
        return conv(3, hidden, 3) + 2 * conv(hidden, c, 3)

    total = z_dim * 16 * ngf * 16 + 16 * ngf * 16  # fc to 16*ngf x 4 x 4
    units = [(16, 16, 3), (16, 16, 3), (16, 8, 3), (8, 4, 3), (4, 2, 5), (2, 1, 5)]
    for fin, fout, ks in units:
        fin, fout = fin * ngf, fout * ngf
        fmid = min(fin, fout)
        total += conv(fin, fmid, 3) + conv(fmid, fout, 3) + conv(fin, fout, 1, bias=False)
        total += spdnorm(fin) + spdnorm(fmid) + spdnorm(fin)
        total += 1  # self.v, a parameter PD-GAN defines and never uses
        total += ks * ks  # MaskGet's all-ones conv, a (constant) parameter there, a max-pool here
        total += conv(3, hidden, 3) + conv(hidden, fin, 3)  # conv_to_f
        total += conv(2 * fin, fin, 3)  # attention (soft map)
        total += conv(fout, fout, 4)  # ConvTranspose2d(4, 2, 1)
    return total + conv(ngf, 3, 3)


def test_spdnorm_generator_matches_pdgan_parameter_count():
    with torch.device('meta'):
        gen = SPDNormGenerator()  # PD-GAN's 256x256 generator, built without memory
    unused = 6 + sum(k * k for k in PDGAN_MASK_KERNELS)
    assert n_params(gen) == 186_007_171 == _reference_pdgan_generator_params() - unused
    assert gen.out_size == 256


def test_spdnorm_generator_output_and_errors():
    torch.manual_seed(0)
    gen = SPDNormGenerator(z_dim=8, channels=(16, 8, 8), mask_numbers=(2, 3), mask_kernels=(3, 3), hidden=8,
                           self_attn_after=0)
    mask = torch.zeros(2, 1, 16, 16)
    out = gen(torch.randn(2, 8), torch.rand(2, 3, 16, 16) * 2 - 1, mask)
    assert out.shape == (2, 3, 16, 16) and out.abs().max() <= 1
    with pytest.raises(ValueError, match='must be 16x16'):
        gen(torch.randn(2, 8), torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r'expected \(N, 8\)'):
        gen(torch.randn(2, 5), torch.rand(2, 3, 16, 16), mask)
    with pytest.raises(ValueError, match='one entry more'):
        SPDNormGenerator(channels=(8, 8), mask_numbers=(2, 3), mask_kernels=(3, 3))


# ----------------------------------------------------------------------------------------------------------------
# SimAM, norms, base generator
# ----------------------------------------------------------------------------------------------------------------
def test_simam_matches_its_formula_and_has_no_parameters():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    lam = 1e-4
    expected = np.empty(x.shape)
    xn = x.numpy()
    for b in range(2):
        for c in range(3):
            v = xn[b, c]
            n = v.size - 1
            d = (v - v.mean()) ** 2
            y = d / (4 * (d.sum() / n + lam)) + 0.5
            expected[b, c] = v / (1 + np.exp(-y))
    simam = SimAM()
    assert simam.lam == 1e-4 and n_params(simam) == 0
    assert np.allclose(simam(x).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize('norm, layer', [('BN', torch.nn.BatchNorm2d), ('IN', torch.nn.InstanceNorm2d),
                                         ('GN', torch.nn.GroupNorm)])
def test_base_generator_norm_choice(norm, layer):
    gen = InpaintEncoderDecoder(base_channels=8, dilations=(1, 2), norm=norm, gn_groups=8)
    norms = [m for m in gen.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d,
                                                        torch.nn.GroupNorm))]
    assert norms and all(isinstance(m, layer) for m in norms)
    out = gen(torch.randn(2, 4, 16, 16))
    assert out.shape == (2, 3, 16, 16) and out.abs().max() <= 1


def test_base_generator_parameter_counts_of_the_demo_rows():
    """Pinned sizes of the demo configs' generators: SimAM adds none, GroupNorm as many as BatchNorm."""
    kw = dict(base_channels=32, num_down=2, dilations=(1, 2, 4, 1))
    base = InpaintEncoderDecoder(norm='BN', **kw)
    assert n_params(base) == 1_378_979
    assert n_params(InpaintEncoderDecoder(norm='BN', simam=True, **kw)) == n_params(base)
    assert n_params(InpaintEncoderDecoder(norm='GN', **kw)) == n_params(base)
    assert sum(isinstance(m, SimAM) for m in InpaintEncoderDecoder(simam=True, **kw).modules()) == 4
    attn = InpaintEncoderDecoder(self_attn=True, **kw)
    assert n_params(attn) - n_params(base) == 128 * 16 * 2 + 128 * 64 + 64 * 128 + 1  # SAGAN theta/phi/g/o + gamma
    with pytest.raises(ValueError, match='multiples of 8'):
        attn(torch.randn(1, 4, 36, 36))
    with pytest.raises(ValueError, match="norm='LN'"):
        InpaintEncoderDecoder(norm='LN')


# ----------------------------------------------------------------------------------------------------------------
# losses on hand-made tensors
# ----------------------------------------------------------------------------------------------------------------
def test_msssim_l1_mix():
    from pytorch_msssim import ms_ssim
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    build = lambda **kw: MODELS.build(dict(type='MSSSIML1Loss', win_size=3, **kw))  # noqa: E731
    assert build()(x, x).item() == pytest.approx(0, abs=1e-6)
    l1 = ((x - y).abs() / 2).mean()  # L1 on [0, 1] images
    assert build(alpha=0.)(x, y).item() == pytest.approx(l1.item(), rel=1e-5)
    msssim = ms_ssim((x + 1) / 2, (y + 1) / 2, data_range=1., win_size=3)
    assert build(alpha=1.)(x, y).item() == pytest.approx(1 - msssim.item(), rel=1e-5)
    mix = build(alpha=0.84, loss_weight=2.)(x, y)
    assert mix.item() == pytest.approx(2 * (0.84 * (1 - msssim.item()) + 0.16 * l1.item()), rel=1e-5)
    assert build().alpha == 0.84  # the paper's value is the default
    with pytest.raises(ValueError, match='too small for win_size 11'):
        MODELS.build(dict(type='MSSSIML1Loss'))(x, y)
    with pytest.raises(ValueError, match='alpha=1.5'):
        build(alpha=1.5)


def test_hole_tv_loss_by_hand():
    img = torch.zeros(1, 1, 4, 4)
    img[0, 0] = torch.tensor([[0., 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3], [5, 5, 5, 5]])
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 0, 0] = 1  # one hole pixel: its dilation is the top-left 2x2 block
    # horizontal pairs inside the block: (0,0)-(0,1) and (1,0)-(1,1), |1-0| each; vertical: two pairs of 0 difference
    expected = (1 + 1) / 12 + 0 / 12  # means over the 4x3 and 3x4 difference maps
    loss = MODELS.build(dict(type='HoleTVLoss', loss_weight=0.1))
    assert loss(img, mask).item() == pytest.approx(0.1 * expected)
    mask[..., 2, 0] = 1  # the block now reaches row 3: the vertical step 0 -> 5 counts (the fixed row term)
    assert loss(img, mask).item() > 0.1 * (expected + 4 / 12)
    with pytest.raises(ValueError, match='differ in size'):
        loss(img, torch.zeros(1, 1, 3, 3))


def test_diversity_loss_by_hand():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1., 3.], [5., 7.]]]])
    mask = torch.tensor([[[[1., 0.], [0., 1.]]]])
    loss = MODELS.build(dict(type='InpaintDiversityLoss', loss_weight=2.))
    assert loss(a, b, mask).item() == pytest.approx(2 / ((1 + 7) / 4 + 1e-5))  # only the hole counts


def _stand_in_vgg16(path):
    """Random VGG16 weights in torchvision's layout (``features.*`` plus a classifier key), saved locally."""
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    state = {f'features.{k}': v for k, v in make_layers(cfgs['D']).state_dict().items()}
    state['classifier.0.weight'] = torch.zeros(1)
    torch.save(state, path)
    return str(path)


def test_perceptual_and_vgg_diversity_losses_with_local_weights(tmp_path):
    vgg_path = _stand_in_vgg16(tmp_path / 'vgg16.pth')
    torch.manual_seed(1)
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    percep = MODELS.build(dict(type='VGG16PerceptualLoss', vgg_path=vgg_path, loss_weight=10.))
    assert len(percep.vgg.features) == 19  # up to relu4_1
    assert percep(x, x).item() == 0 and percep(x, y).item() > 0
    x.requires_grad_(True)
    percep(x, y).backward()
    assert x.grad.abs().sum() > 0 and not any(p.requires_grad for p in percep.vgg.parameters())
    div = MODELS.build(dict(type='InpaintDiversityLoss', vgg_path=vgg_path))
    feats = percep.vgg  # same weights: the diversity is 1 / L1 of relu4_1 features
    l1 = (feats(x.detach())['relu4_1'] - feats(y)['relu4_1']).abs().mean().item()
    assert div(x.detach(), y, torch.ones(1, 1, 32, 32)).item() == pytest.approx(1 / (l1 + 1e-5), rel=1e-4)
    with pytest.raises(FileNotFoundError, match="vgg_path 'nowhere/vgg16.pth' not found"):
        MODELS.build(dict(type='VGG16PerceptualLoss', vgg_path='nowhere/vgg16.pth'))


def test_lsgan_and_hinge_from_mmagic_ganloss():
    pred = torch.tensor([0.5, -1.5, 2.0])
    lsgan = MODELS.build(dict(type='GANLoss', gan_type='lsgan'))
    assert lsgan(pred, True, is_disc=True).item() == pytest.approx(((pred - 1) ** 2).mean().item())
    assert lsgan(pred, False, is_disc=True).item() == pytest.approx((pred ** 2).mean().item())
    hinge = MODELS.build(dict(type='GANLoss', gan_type='hinge'))
    assert hinge(pred, True, is_disc=True).item() == pytest.approx(((1 - pred).clamp(min=0)).mean().item())
    assert hinge(pred, False, is_disc=True).item() == pytest.approx(((1 + pred).clamp(min=0)).mean().item())
    assert hinge(pred, True, is_disc=False).item() == pytest.approx(-pred.mean().item())


def test_multiscale_patch_discriminator():
    disc = MODELS.build(dict(type='MultiScalePatchDiscriminator', base_channels=8, num_layers=3, num_scales=2))
    out = disc(torch.randn(2, 3, 64, 64))
    assert out.dim() == 2 and out.shape[0] == 2
    single = MODELS.build(dict(type='MultiScalePatchDiscriminator', base_channels=8, num_layers=3, num_scales=1))
    assert out.shape[1] > single(torch.randn(2, 3, 64, 64)).shape[1]
    assert all(hasattr(m, 'weight_orig') for m in disc.modules() if isinstance(m, torch.nn.Conv2d))


# ----------------------------------------------------------------------------------------------------------------
# masks
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['ff', 'bbox', 'irregular'])
def test_generated_masks_are_binary_holes_of_the_image_size(mode):
    results = dict(gt=np.zeros((48, 64, 3), np.uint8), gt_path='a/cat.png')
    fixed = TRANSFORMS.build(dict(type='RandomInpaintMask', mode=mode, fixed_per_image=True))
    mask = fixed(dict(results))['mask']
    assert mask.shape == (48, 64, 1) and set(np.unique(mask)) == {0, 1}
    assert 0.01 < mask.mean() < 0.9
    assert np.array_equal(fixed(dict(results))['mask'], mask)  # the same for this image every time
    other = fixed(dict(results, gt_path='a/dog.png'))['mask']
    assert not np.array_equal(other, mask)


def test_masks_from_a_folder(tmp_path):
    folder = tmp_path / 'masks'
    folder.mkdir()
    hole = np.zeros((16, 16), np.uint8)
    hole[4:8, 4:8] = 255
    cv2.imwrite(str(folder / 'm0.png'), hole)
    load = TRANSFORMS.build(dict(type='LoadMaskFromFolder', folder=str(folder)))
    out = load(dict(gt=np.zeros((16, 16, 3), np.uint8)))
    assert out['mask'].shape == (16, 16, 1) and out['mask'].sum() == 16 and out['mask'][5, 5, 0] == 1
    inverted = TRANSFORMS.build(dict(type='LoadMaskFromFolder', folder=str(folder), invert=True))
    assert inverted(dict(gt=np.zeros((16, 16, 3), np.uint8)))['mask'].sum() == 16 * 16 - 16
    with pytest.raises(ValueError, match=r'm0.png is 16x16 but the image .* is 20x16: masks must match'):
        load(dict(gt=np.zeros((16, 20, 3), np.uint8)))
    resized = TRANSFORMS.build(dict(type='LoadMaskFromFolder', folder=str(folder), resize=True))
    assert resized(dict(gt=np.zeros((32, 32, 3), np.uint8)))['mask'].sum() == 64
    with pytest.raises(FileNotFoundError, match="folder 'nope' not found"):
        TRANSFORMS.build(dict(type='LoadMaskFromFolder', folder='nope'))


def test_non_binary_masks_threshold_or_error():
    grey = np.array([[0, 100, 128], [200, 255, 127]], np.uint8)
    assert binarize_mask(grey, 'g.png')[..., 0].tolist() == [[0, 0, 1], [1, 1, 0]]  # hole above 127
    assert binarize_mask(grey, 'g.png', threshold=50)[..., 0].tolist() == [[0, 1, 1], [1, 1, 1]]
    with pytest.raises(ValueError, match=r'mask g.png is not binary \(values 0, 100, 127, 128, 200, 255\)'):
        binarize_mask(grey, 'g.png', on_nonbinary='error')
    assert binarize_mask(np.array([[0, 1]], np.uint8), 'b.png', on_nonbinary='error')[..., 0].tolist() == [[0, 1]]


def test_image_and_mask_checks():
    img = torch.zeros(1, 3, 8, 8)
    check_image_and_mask(img, torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r'mask of size \(8, 6\) does not match the image of size \(8, 8\)'):
        check_image_and_mask(img, torch.zeros(1, 1, 8, 6))
    with pytest.raises(ValueError, match='mask is not binary'):
        check_image_and_mask(img, torch.full((1, 1, 8, 8), 0.5))


def test_missing_prior_checkpoint_is_a_clear_error(tmp_path):
    from mmengine.registry import init_default_scope
    init_default_scope('mmagic')
    prior = dict(type='InpaintEncoderDecoder', base_channels=8, dilations=(1,))
    cfg = dict(type='PDGANInpaintor', data_preprocessor=dict(type='DataPreprocessor'),
               encdec=dict(type='SPDNormGenerator', z_dim=8, channels=(8, 8), mask_numbers=(2,), mask_kernels=(3,),
                           hidden=8), prior=dict(generator=prior, checkpoint=str(tmp_path / 'no.pth')))
    with pytest.raises(FileNotFoundError, match=r"prior.checkpoint '.*no.pth' not found: train the base model"):
        MODELS.build(cfg)
    with pytest.raises(FileNotFoundError, match='is a directory without last_checkpoint'):
        MODELS.build(dict(cfg, prior=dict(generator=prior, checkpoint=str(tmp_path))))
    torch.save({'state_dict': {'generator.net.0.weight': torch.zeros(1)}}, tmp_path / 'wrong.pth')
    with pytest.raises(RuntimeError, match='net.0.weight'):
        MODELS.build(dict(cfg, prior=dict(generator=prior, checkpoint=str(tmp_path / 'wrong.pth'))))


# ----------------------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------------------
def test_tv_metric_by_hand():
    tv = METRICS.build(dict(type='InpaintTV', scaling=100))
    pred = torch.zeros(3, 2, 3)
    pred[:, :, 1:] = 255.  # one horizontal step of 1 in each row, out of 2 per row; no vertical change
    assert tv.process_image(None, pred, None) == pytest.approx(0.5)
    tv.results = [{'TV': 0.5}, {'TV': 0.25}]
    assert tv.compute_metrics(tv.results)['TV'] == pytest.approx(37.5)


class _StandInInception(torch.nn.Module):
    """Stands in for StyleGAN's TorchScript Inception: uint8 RGB in, per-channel mean and std features out."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = x.float() / 255.
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def stand_in_inception(path) -> str:
    torch.jit.script(_StandInInception()).save(str(path))
    return str(path)


def test_fid_metric_with_stand_in_inception(tmp_path):
    fid = METRICS.build(dict(type='InpaintFID', inception_path=stand_in_inception(tmp_path / 'inception.pt')))
    torch.manual_seed(0)
    gts = [torch.rand(3, 16, 16) * 255 for _ in range(12)]
    fid.process({}, [{'output': {'pred_img': g}, 'gt_img': g} for g in gts])
    assert fid.compute_metrics(fid.results)['FID'] == pytest.approx(0, abs=1e-6)
    fid.results = []
    fid.process({}, [{'output': {'pred_img': g * 0.5}, 'gt_img': g} for g in gts])
    assert fid.compute_metrics(fid.results)['FID'] > 0.01
    with pytest.raises(ValueError, match='at least 2 images'):
        fid.compute_metrics(fid.results[:1])
    with pytest.raises(FileNotFoundError, match="inception_path 'no/inception.pt' not found"):
        METRICS.build(dict(type='InpaintFID', inception_path='no/inception.pt'))
