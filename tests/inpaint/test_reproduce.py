"""Inpainting line (seed 003) against its references (issue 15): PD-GAN's discriminator and feature-matching loss,
PD-GAN's recipe (pdgan_paper_256.py) trained 2 iterations on the demo data, SimAM where the SimAM reference puts
it, the PD-GAN generator checkpoint converter, and FID through BasicSR's public ``calculate_fid`` against an
independent computation. (The converter's output against PD-GAN's own code is measured outside the suite:
docs/reproduce.md.)"""
import importlib.util
import os.path as osp
import re

import numpy as np
import pytest
import torch

pytest.importorskip('mmagic')
from plugins.inpaint import inpaint_metric, reference_checkpoints  # noqa: E402  (registers the line in MMagic)
from mmagic.registry import MODELS  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from plugins.engine.errors import OptionsError  # noqa: E402
from tests.helpers import REPO  # noqa: E402

torch.set_num_threads(1)
init_default_scope('mmagic')  # DataPreprocessor and friends by MMagic's names
CONFIGS = osp.join(REPO, 'options', 'mmagic', 'inpaint')


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------------------------------------------
# PD-GAN's discriminator and feature matching
# ----------------------------------------------------------------------------------------------------------------
def pdgan_disc_param_count(input_nc=6, ndf=64, n_layers=4, num_d=2):
    """PD-GAN's NLayerDiscriminator layer by layer (models/network/Discriminator.py): conv4 with bias, then
    n_layers - 1 spectral convs whose bias get_nonspade_norm_layer deletes, then conv4 -> 1 with bias."""
    total, nf = input_nc * ndf * 16 + ndf, ndf
    for _ in range(1, n_layers):
        nf_prev, nf = nf, min(nf * 2, 512)
        total += nf_prev * nf * 16
    return num_d * (total + nf * 16 + 1)


def test_pdgan_discriminator_layout_takes_the_mask_and_matches_pdgans_parameter_count():
    disc = MODELS.build(dict(type='PDGANDiscriminator'))
    assert n_params(disc) == pdgan_disc_param_count() == 5_533_826
    scale = disc.scales[0]
    assert scale[0][0].weight.shape == (64, 6, 4, 4)  # 3 mask channels + RGB
    convs = [m for layer in scale for m in layer.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [hasattr(c, 'weight_orig') for c in convs] == [False, True, True, True, False]  # PD-GAN's placement
    assert [c.bias is None for c in convs] == [False, True, True, True, False]
    assert [sum(isinstance(m, torch.nn.InstanceNorm2d) for m in layer.modules()) for layer in scale] == [0, 1, 1, 1, 0]

    small = MODELS.build(dict(type='PDGANDiscriminator', base_channels=8, num_layers=4, num_scales=2)).eval()
    torch.manual_seed(0)
    img, mask = torch.rand(2, 3, 64, 64) * 2 - 1, (torch.rand(2, 1, 64, 64) > 0.5).float()
    out = small(img, mask)
    assert [[tuple(f.shape) for f in s] for s in out] == [
        [(2, 8, 33, 33), (2, 16, 17, 17), (2, 32, 9, 9), (2, 64, 10, 10), (2, 1, 11, 11)],
        [(2, 8, 17, 17), (2, 16, 9, 9), (2, 32, 5, 5), (2, 64, 6, 6), (2, 1, 7, 7)]]
    x = torch.cat([mask.expand(-1, 3, -1, -1), img], 1)  # the first layer sees cat[mask x3, image]
    assert torch.allclose(out[0][0], small.scales[0][0](x))
    assert not torch.allclose(small(img, 1 - mask)[0][-1], out[0][-1])
    with pytest.raises(ValueError, match=r'expected an image \(N, 3, H, W\) and its mask'):
        small(img)


def test_feature_matching_loss_equals_an_independent_computation():
    rng = np.random.RandomState(0)
    shapes = [[(2, 4, 9, 9), (2, 8, 5, 5), (2, 1, 6, 6)], [(2, 4, 5, 5), (2, 8, 3, 3), (2, 1, 4, 4)]]
    fake_np = [[rng.randn(*s) for s in scale] for scale in shapes]
    real_np = [[rng.randn(*s) for s in scale] for scale in shapes]
    expected = sum(np.abs(f - r).mean() for fs, rs in zip(fake_np, real_np) for f, r in zip(fs[:-1], rs[:-1]))
    expected *= 10 / 2  # lambda_feat / num_D; the logits (last) are left out
    fake = [[torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in s] for s in fake_np]
    real = [[torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in s] for s in real_np]
    loss = MODELS.build(dict(type='DiscFeatureMatchingLoss', loss_weight=10.))(fake, real)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert fake[0][0].grad is not None and fake[0][-1].grad is None and real[0][0].grad is None  # real detached


def test_pdgan_discriminator_in_the_model_hinge_per_scale_and_feature_matching(tmp_path):
    """EncDecInpaintor with PD-GAN's discriminator on the raw output: the GAN loss is the mean over the scales of
    the hinge loss of each scale's logits, feature matching compares with the real image's features."""
    model = MODELS.build(dict(
        type='EncDecInpaintor', data_preprocessor=dict(type='DataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        encdec=dict(type='InpaintEncoderDecoder', base_channels=8, dilations=(1,)),
        disc=dict(type='PDGANDiscriminator', base_channels=8, num_layers=3), disc_input='raw',
        loss_gan=dict(type='GANLoss', gan_type='hinge', loss_weight=1.0),
        loss_disc_feat=dict(type='DiscFeatureMatchingLoss', loss_weight=10.), train_cfg=dict(disc_step=1)))
    torch.manual_seed(0)
    gt, raw = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    composite = raw * mask + gt * (1 - mask)
    model.disc.eval()  # spectral norm without its power iteration: the same weights at every call
    _, losses = model.generator_loss(raw, composite, gt, mask, gt * (1 - mask))
    fake_out, real_out = model.disc(raw, mask), model.disc(gt, mask)
    assert losses['loss_g_fake'].item() == pytest.approx(-np.mean([s[-1].mean().item() for s in fake_out]), rel=1e-5)
    fm = 10 / 2 * sum((f - r).abs().mean().item() for fs, rs in zip(fake_out, real_out) for f, r in zip(fs[:-1], rs[:-1]))
    assert losses['loss_disc_feat'].item() == pytest.approx(fm, rel=1e-5)
    d = model.forward_train_d(raw, False, is_disc=True, mask=mask)['fake_loss']
    assert d.item() == pytest.approx(np.mean([(1 + s[-1]).clamp(min=0).mean().item() for s in fake_out]), rel=1e-5)
    with pytest.raises(ValueError, match="disc_input='both'"):
        MODELS.build(dict(type='EncDecInpaintor', encdec=dict(type='InpaintEncoderDecoder'), disc_input='both',
                          data_preprocessor=dict(type='DataPreprocessor')))


def test_real_loss_once_or_per_sample_in_the_discriminator_step():
    from mmengine.optim import OptimWrapper
    model = MODELS.build(dict(
        type='EncDecInpaintor', data_preprocessor=dict(type='DataPreprocessor'),
        encdec=dict(type='InpaintEncoderDecoder', base_channels=8, dilations=(1,)),
        disc=dict(type='PDGANDiscriminator', base_channels=8, num_layers=2), loss_gan=dict(type='GANLoss',
                                                                                          gan_type='hinge'),
        train_cfg=dict(disc_step=1)))
    model.disc.eval()  # fixed spectral-norm vectors
    wrapper = OptimWrapper(torch.optim.SGD(model.disc.parameters(), lr=0.))
    torch.manual_seed(0)
    gt, fakes, mask = torch.rand(1, 3, 16, 16), [torch.rand(1, 3, 16, 16) for _ in range(2)], torch.ones(1, 1, 16, 16)
    real = model.forward_train_d(gt, True, is_disc=True, mask=mask)['real_loss'].item()
    fake = sum(model.forward_train_d(f, False, is_disc=True, mask=mask)['fake_loss'].item() for f in fakes)
    once = model.discriminator_step(fakes, gt, mask, wrapper)
    twice = model.discriminator_step(fakes, gt, mask, wrapper, real_weight=2.)
    once, twice = ({k: float(v) for k, v in logs.items()} for logs in (once, twice))
    assert once['real_loss'] == pytest.approx(real) and once['fake_loss'] == pytest.approx(fake)
    assert twice['real_loss'] == pytest.approx(2 * real) and twice['loss'] == pytest.approx(fake + 2 * real)


def test_tv_loss_pdgan_row_slip_option_by_hand():
    """PD-GAN's TVloss: columns |x[j+1] - x[j]|, rows |x[first row] - x[last row]| under the vertical pair mask."""
    torch.manual_seed(0)
    img, mask = torch.rand(1, 3, 6, 5), torch.zeros(1, 1, 6, 5)
    mask[..., 2:4, 1:3] = 1
    x, m = img.numpy(), torch.nn.functional.max_pool2d(mask, 3, 1, 1).numpy()  # the hole dilated by one pixel
    cols = (m[..., :, 1:] * m[..., :, :-1] * np.abs(x[..., :, 1:] - x[..., :, :-1])).mean()
    slip = (m[..., 1:, :] * m[..., :-1, :] * np.abs(x[..., :1, :] - x[..., -1:, :])).mean()
    fixed = (m[..., 1:, :] * m[..., :-1, :] * np.abs(x[..., 1:, :] - x[..., :-1, :])).mean()
    tv = MODELS.build(dict(type='HoleTVLoss', loss_weight=0.1, pdgan_row_slip=True))
    assert tv(img, mask).item() == pytest.approx(0.1 * (cols + slip), rel=1e-6)
    assert MODELS.build(dict(type='HoleTVLoss', loss_weight=0.1))(img, mask).item() == pytest.approx(
        0.1 * (cols + fixed), rel=1e-6)


def test_vgg_input_as_pdgan_feeds_it(tmp_path):
    from tests.inpaint.test_components import _stand_in_vgg16
    path = _stand_in_vgg16(tmp_path / 'vgg16.pth')
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    raw = MODELS.build(dict(type='InpaintDiversityLoss', vgg_path=path, input_norm='none')).vgg
    ours = MODELS.build(dict(type='VGG16PerceptualLoss', vgg_path=path)).vgg
    assert torch.allclose(raw(x)['relu4_1'], raw.features(x))  # [-1, 1] as it is (PD-GAN's)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(ours(x)['relu4_1'], raw.features(((x + 1) / 2 - mean) / std), atol=1e-6)
    with pytest.raises(ValueError, match="input_norm='caffe'"):
        MODELS.build(dict(type='VGG16PerceptualLoss', vgg_path=path, input_norm='caffe'))


# ----------------------------------------------------------------------------------------------------------------
# PD-GAN's recipe
# ----------------------------------------------------------------------------------------------------------------
def test_pdgan_paper_recipe_values():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CONFIGS, 'pdgan_paper_256.py'))
    m = cfg.model
    assert (cfg.optim_wrapper.generator.optimizer.lr, cfg.optim_wrapper.disc.optimizer.lr) == (5e-4, 2e-3)
    assert cfg.optim_wrapper.generator.optimizer.betas == cfg.optim_wrapper.disc.optimizer.betas == (0.0, 0.9)
    assert (m.disc.type, m.disc.img_channels + m.disc.mask_channels, m.disc.norm) == ('PDGANDiscriminator', 6, 'IN')
    assert (m.loss_gan.gan_type, m.loss_disc_feat.loss_weight, m.loss_percep.loss_weight) == ('hinge', 10.0, 10.0)
    assert (m.loss_diversity.loss_weight, m.loss_tv.loss_weight) == (1.0, 0.1) and m.loss_diversity.vgg_path
    assert m.prior.composite is False and m.disc_input == 'raw' and m.real_loss_per_sample and 'ema_cfg' not in m
    assert m.encdec == dict(type='SPDNormGenerator') and 'loss_l1_hole' not in m
    ipe = cfg.iters_per_epoch
    assert (cfg.param_scheduler.begin, cfg.param_scheduler.end, cfg.train_cfg.max_iters) == (20 * ipe, 120 * ipe,
                                                                                             120 * ipe)


def test_pdgan_paper_recipe_trains_two_iterations_on_demo_data(workdir):
    """pdgan_paper_256.py's model and optimizers with the demo data and demo sizes (64x64, the demo generator, an
    untrained demo prior, random VGG16 weights in torchvision's layout); everything else is the recipe's."""
    from mmengine.config import Config
    from tests.inpaint.test_components import _stand_in_vgg16
    from tests.helpers import run_config
    vgg = _stand_in_vgg16(workdir / 'vgg16.pth')
    cfg = Config.fromfile(osp.join(CONFIGS, 'pdgan_paper_256.py'))
    demo = Config.fromfile(osp.join(CONFIGS, 'pdgan_demo.py'))
    torch.save(MODELS.build(demo.model.prior.generator).state_dict(), workdir / 'prior.pth')
    cfg.train_dataloader = demo.train_dataloader
    cfg.train_dataloader.batch_size = 2
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # validation is pdgan_demo.py's, tested there
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.model.encdec = demo.model.encdec
    cfg.model.prior.generator = demo.model.prior.generator
    cfg.model.prior.checkpoint = str(workdir / 'prior.pth')
    cfg.model.disc.base_channels = 8
    cfg.model.loss_percep.vgg_path = cfg.model.loss_diversity.vgg_path = vgg
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2
    cfg.param_scheduler.begin, cfg.param_scheduler.end = 1, 2
    path = workdir / 'pdgan_paper_demo.py'
    cfg.dump(str(path))
    run_config(str(path), workdir, args=['--work-dir', 'work'])
    (log,) = list((workdir / 'work').glob('*/*.log'))
    text = log.read_text()
    assert 'Iter(train) [2/2]' in text, text[-3000:]
    for term in ('loss_g_fake', 'loss_disc_feat', 'loss_percep', 'loss_tv', 'loss_diversity', 'real_loss'):
        assert re.search(rf'{term}: -?[\d.]+', text), (term, text[-3000:])
    assert re.search(r'Iter\(train\) \[1/2\]\s+disc\.lr: 2\.0000e-03\s+generator\.lr: 5\.0000e-04', text), text[-3000:]
    ckpt = torch.load(workdir / 'work' / 'iter_2.pth', map_location='cpu', weights_only=True)
    assert any(k.startswith('disc.scales.0.1.0.weight_orig') for k in ckpt['state_dict'])
    assert not any(k.startswith('generator_ema') for k in ckpt['state_dict'])  # PD-GAN keeps no EMA


def test_prior_is_raw_as_pdgan_or_composited(tmp_path):
    checkpoint = _prior_checkpoint(tmp_path)

    def build(**prior):
        return MODELS.build(dict(
            type='PDGANInpaintor', data_preprocessor=dict(type='DataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
            prior=dict(generator=dict(type='InpaintEncoderDecoder', base_channels=8, dilations=(1,)),
                       checkpoint=checkpoint, **prior),
            encdec=dict(type='SPDNormGenerator', z_dim=8, channels=(8, 8), mask_numbers=(2,), mask_kernels=(3,),
                        hidden=8))).eval()
    raw_model, composite_model = build(), build(composite=True)
    torch.manual_seed(0)
    masked, mask = torch.rand(1, 3, 8, 8) * 2 - 1, torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    masked = masked * (1 - mask)
    with torch.no_grad():
        raw = raw_model.prior(torch.cat([masked, mask], 1))
    assert torch.equal(raw_model.prior_image(masked, mask), raw)  # PD-GAN's pre_image, the default
    assert torch.equal(composite_model.prior_image(masked, mask), raw * mask + masked * (1 - mask))
    with pytest.raises(ValueError, match=r"prior has unknown keys \['composited'\]"):
        build(composited=True)


# ----------------------------------------------------------------------------------------------------------------
# SimAM placement
# ----------------------------------------------------------------------------------------------------------------
def test_simam_before_norm_as_the_simam_reference_and_after_norm_by_default():
    from plugins.inpaint.inpaint_blocks import ResBlock, SimAM
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 12)
    ref = ResBlock(8, 2, norm='IN', simam=True, simam_position='before_norm').eval()
    ours = ResBlock(8, 2, norm='IN', simam=True).eval()
    b = ref.body
    assert [type(m).__name__ for m in b] == ['Conv2d', 'InstanceNorm2d', 'LeakyReLU', 'Conv2d', 'SimAM',
                                             'InstanceNorm2d']
    simam = SimAM(1e-4)
    h = torch.nn.functional.leaky_relu(b[1](b[0](x)), 0.2)
    assert torch.allclose(ref(x), x + b[5](simam(b[3](h))), atol=1e-6)  # conv -> SimAM -> norm, then + x
    assert [type(m).__name__ for m in ours.body][4:] == ['InstanceNorm2d', 'SimAM']  # keys of old checkpoints
    h = torch.nn.functional.leaky_relu(ours.body[1](ours.body[0](x)), 0.2)
    assert torch.allclose(ours(x), x + simam(ours.body[4](ours.body[3](h))), atol=1e-6)
    gen = MODELS.build(dict(type='InpaintEncoderDecoder', base_channels=8, simam=True, simam_position='before_norm'))
    assert sum(isinstance(m, SimAM) for m in gen.modules()) == 4
    with pytest.raises(ValueError, match="simam_position='middle'"):
        ResBlock(8, simam=True, simam_position='middle')


# ----------------------------------------------------------------------------------------------------------------
# PD-GAN generator checkpoint -> ours
# ----------------------------------------------------------------------------------------------------------------
def pdgan_state_dict(ngf=4, z_dim=16, nhidden=8, latent=4, units=4, seed=0):
    """A state dict named and shaped as PD-GAN's SPDNormGenerator (models/network/pdgan.py, SPDNorm.py) at width
    ``ngf``: fc; per unit generated.<i>.block.{conv_0, conv_1 (spectral, bias), conv_s (spectral, no bias),
    norm_<j>.mlp_activate.0 / mlp_gamma / mlp_beta, v, mask_conv.mask_conv (no bias), conv_to_f.0 / .3,
    attention.0} and generated.<i>.up; conv_img. PD-GAN's own is ngf 64, z_dim 256, nhidden 128, 6 units."""
    g = torch.Generator().manual_seed(seed)
    mult = (16, 16, 16, 8, 4, 2, 1)[:units + 1]
    ks = (3, 3, 3, 3, 5, 5)
    sd = {'fc.weight': (16 * ngf * latent * latent, z_dim), 'fc.bias': (16 * ngf * latent * latent,)}
    for i in range(units):
        fin, fout = mult[i] * ngf, mult[i + 1] * ngf
        fmid = min(fin, fout)
        p = f'generated.{i}.block.'
        for name, cin, cout, k, bias in (('conv_0', fin, fmid, 3, True), ('conv_1', fmid, fout, 3, True),
                                         ('conv_s', fin, fout, 1, False)):
            sd.update({p + name + '.weight_orig': (cout, cin, k, k), p + name + '.weight_u': (cout,),
                       p + name + '.weight_v': (cin * k * k,)})
            if bias:
                sd[p + name + '.bias'] = (cout,)
        for j, ch in (('0', fin), ('1', fmid), ('s', fin)):
            q = f'{p}norm_{j}.'
            sd.update({q + 'mlp_activate.0.weight': (nhidden, 3, 3, 3), q + 'mlp_activate.0.bias': (nhidden,),
                       q + 'mlp_gamma.weight': (ch, nhidden, 3, 3), q + 'mlp_gamma.bias': (ch,),
                       q + 'mlp_beta.weight': (ch, nhidden, 3, 3), q + 'mlp_beta.bias': (ch,)})
        sd.update({p + 'v': (1,), p + 'mask_conv.mask_conv.weight': (1, 1, ks[i], ks[i]),
                   p + 'conv_to_f.0.weight': (nhidden, 3, 3, 3), p + 'conv_to_f.0.bias': (nhidden,),
                   p + 'conv_to_f.3.weight': (fin, nhidden, 3, 3), p + 'conv_to_f.3.bias': (fin,),
                   p + 'attention.0.weight': (fin, 2 * fin, 3, 3), p + 'attention.0.bias': (fin,),
                   f'generated.{i}.up.weight': (fout, fout, 4, 4), f'generated.{i}.up.bias': (fout,)})
    sd.update({'conv_img.weight': (3, mult[units] * ngf, 3, 3), 'conv_img.bias': (3,)})  # 64 = ngf at 6 units
    return {k: torch.randn(shape, generator=g) for k, shape in sd.items()}


def _convert_tool():
    spec = importlib.util.spec_from_file_location('convert_checkpoint', osp.join(REPO, 'tools', 'convert_checkpoint.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_pdgan_converter_maps_every_key_drops_v_and_mask_convs_and_loads_into_our_model(tmp_path, capsys):
    from mmengine.runner import load_checkpoint
    ref = pdgan_state_dict()
    out, how = reference_checkpoints.convert_pdgan_generator({'net': ref, 'optimize': {}})  # save_networks' GPU wrapping
    assert "SPDNormGenerator', z_dim=16, channels=(64, 64, 64, 32, 16), mask_numbers=(2, 3, 4, 5)" in how and 'load_from' in how
    gen = {k[len('generator.'):]: v for k, v in out['state_dict'].items() if k.startswith('generator.')}
    dropped = [k for k in ref if k.endswith('.v') or 'mask_conv' in k]
    assert len(dropped) == 8 and len(gen) == len(ref) - 8
    assert set(out['state_dict']) == {f'{p}{k}' for p in ('generator.', 'generator_ema.module.') for k in gen}
    assert torch.equal(gen['blocks.2.norm_1.gamma.weight'], ref['generated.2.block.norm_1.mlp_gamma.weight'])
    assert torch.equal(gen['blocks.3.soft_conv.weight'], ref['generated.3.block.attention.0.weight'])
    assert torch.equal(gen['blocks.1.prior_to_feature.3.bias'], ref['generated.1.block.conv_to_f.3.bias'])
    assert torch.equal(gen['ups.0.weight'], ref['generated.0.up.weight'])
    assert torch.equal(gen['blocks.0.norm_s.shared.0.weight'], ref['generated.0.block.norm_s.mlp_activate.0.weight'])
    assert out['meta']['encdec']['mask_kernels'] == (3, 3, 3, 3) and out['meta']['encdec']['hidden'] == 8
    ours = MODELS.build(dict(type='SPDNormGenerator', **out['meta']['encdec']))
    ours.load_state_dict(gen)  # strict: every key and shape of ours
    assert n_params(ours) == sum(v.numel() for k, v in ref.items() if not k.endswith(('_u', '_v', '.v'))
                                 and 'mask_conv' not in k)

    # the tool end to end, DataParallel prefix stripped; the output loads into the inpaintor (generator and EMA)
    torch.save({f'module.{k}': v for k, v in ref.items()}, tmp_path / 'ref.pth')
    assert _convert_tool().main(['--from', 'pdgan', str(tmp_path / 'ref.pth'), str(tmp_path / 'ours.pth')]) == 0
    assert 'load_from=OUT.pth' in capsys.readouterr().out
    model = MODELS.build(dict(
        type='PDGANInpaintor', data_preprocessor=dict(type='DataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3),
        prior=dict(generator=dict(type='InpaintEncoderDecoder', base_channels=8, dilations=(1,)),
                   checkpoint=_prior_checkpoint(tmp_path)),
        encdec=dict(type='SPDNormGenerator', **out['meta']['encdec']), ema_cfg=dict(momentum=0.01)))
    load_checkpoint(model, str(tmp_path / 'ours.pth'), map_location='cpu', strict=False)
    assert torch.equal(model.generator.blocks[2].conv_1.weight_orig, ref['generated.2.block.conv_1.weight_orig'])
    assert torch.equal(model.generator_ema.module.fc.weight, ref['fc.weight'])
    # tools/inpaint/sample.py's loader: the prior from the config, since the converted file has none
    from plugins.inpaint.sampling import load_inpaintor
    config = tmp_path / 'converted.py'
    config.write_text(f"_base_ = {osp.join(CONFIGS, 'pdgan_demo.py')!r}\n"
                      f"model = dict(encdec=dict(_delete_=True, type='SPDNormGenerator', **{out['meta']['encdec']!r}),"
                      f" prior=dict(generator=dict(base_channels=8, dilations=(1,)), "
                      f"checkpoint={str(tmp_path / 'prior.pth')!r}))\n")
    sampler = load_inpaintor(str(config), str(tmp_path / 'ours.pth'))
    assert torch.equal(sampler.inference_generator().blocks[3].soft_conv.weight,
                       ref['generated.3.block.attention.0.weight'])


def _prior_checkpoint(tmp_path):
    prior = MODELS.build(dict(type='InpaintEncoderDecoder', base_channels=8, dilations=(1,)))
    torch.save(prior.state_dict(), tmp_path / 'prior.pth')
    return str(tmp_path / 'prior.pth')


@pytest.mark.parametrize('edit, message', [
    (lambda sd: sd.update({'generated.0.block.extra.weight': torch.zeros(1)}), r"unexpected key 'generated\.0\.block"
                                                                               r"\.extra\.weight'"),
    (lambda sd: sd.update({'generated.1.block.conv_0.bias': torch.zeros(5)}), r"'generated\.1\.block\.conv_0\.bias' has "
                                                                              r"shape \(5,\), expected \(64,\)"),
    (lambda sd: sd.pop('generated.3.up.bias'), r"missing 1 key\(s\) of the generator, e\.g\. 'ups\.3\.bias'"),
    (lambda sd: sd.pop('fc.weight'), r"missing key 'fc\.weight'"),
])
def test_pdgan_converter_refuses_unexpected_keys_and_shapes(edit, message):
    sd = pdgan_state_dict()
    edit(sd)
    with pytest.raises(OptionsError, match=message):
        reference_checkpoints.convert_pdgan_generator(sd)


def test_pdgan_converter_tool_refuses_a_non_generator_file(tmp_path, capsys):
    torch.save({'net': {'discriminator_0.model0.0.weight': torch.zeros(1)}}, tmp_path / 'd.pth')
    assert _convert_tool().main(['--from', 'pdgan', str(tmp_path / 'd.pth'), str(tmp_path / 'o.pth')]) == 2
    assert re.search(r"error: pdgan checkpoint: unexpected key 'discriminator_0\.model0\.0\.weight'",
                     capsys.readouterr().err)
    assert not (tmp_path / 'o.pth').exists()


# ----------------------------------------------------------------------------------------------------------------
# FID through BasicSR's public API
# ----------------------------------------------------------------------------------------------------------------
def independent_fid(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), with the square root by eigen-decomposition:
    (S_a S_b)^1/2 has the eigenvalues sqrt(eig(S_a^1/2 S_b S_a^1/2)), so its trace is their sum."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(middle, 0, None)).sum())


def test_fid_uses_basicsr_public_api_and_equals_an_independent_computation():
    import scipy.linalg
    assert inpaint_metric.calculate_fid.__module__ == 'basicsr.metrics.fid'
    rng = np.random.RandomState(0)
    fake = rng.randn(40, 6) @ rng.randn(6, 6)
    real = rng.randn(50, 6) @ rng.randn(6, 6) + 0.5
    fid = inpaint_metric.frechet_distance(fake, real)
    assert fid == pytest.approx(independent_fid(fake, real), rel=1e-8)
    s_f, s_r = np.cov(fake, rowvar=False), np.cov(real, rowvar=False)  # and by scipy's sqrtm directly
    by_sqrtm = ((fake.mean(0) - real.mean(0)) ** 2).sum() + np.trace(s_f + s_r - 2 * scipy.linalg.sqrtm(s_f @ s_r).real)
    assert fid == pytest.approx(by_sqrtm, rel=1e-8) and fid > 1
    assert inpaint_metric.frechet_distance(fake, fake) == pytest.approx(0, abs=1e-8)
