"""SRResNetIN (seed 002's SRResNet with its InstanceNorm placements), LocalVGGPerceptualLoss, and every SRResNet /
SRGAN options file run for two iterations through tools/train.py in this process, plus tools/test.py on a trained
checkpoint (the SRGAN generator's pretraining, trained once per session: the ``srresnet_pretrained`` fixture)."""
import glob
import os
import os.path as osp
import re
import shutil

import cv2
import pytest
import torch

from tests.classic.conftest import SRRESNET_PRETRAIN as PRETRAIN
from tests.classic.conftest import small_val_overrides
from tests.helpers import options, quick, repo_path, run_options


def _classic_x4(model_type: str) -> list:
    """The x4 training options files of options/train/classic whose model is ``model_type`` and whose generator is
    SRResNetIN (the FSRCNN x4 rows are tested with the other FSRCNN files, in test_classic.py)."""
    return sorted(osp.relpath(p, repo_path('')) for p in glob.glob(repo_path('options/train/classic/*.yml'))
                  if options(p)['scale'] == 4 and options(p)['model_type'] == model_type
                  and options(p)['network_g']['type'] == 'SRResNetIN')


SRRESNET_OPTIONS = _classic_x4('SRModel')
SRGAN_OPTIONS = _classic_x4('SRGANModel')
SRRESNET_TEST = 'options/test/classic/srresnet_x4.yml'
STAND_IN_VGG = 'experiments/pretrained_models/vgg19_to_relu2_2_random.pth'


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _stand_in_vgg19_features(path, num_layers: int) -> None:
    """A features-only state dict of a randomly initialised torchvision VGG19, truncated after ``num_layers``."""
    from torchvision.models import vgg
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(vgg.make_layers(vgg.cfgs['E'])[:num_layers].state_dict(), path)


# ---------------------------------------------------------------------------------------------------------------
# SRResNetIN
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('norm_in_blocks, norm_after_trunk, expected', [(True, True, 1_546_883),
                                                                        (False, False, 1_542_659),
                                                                        (False, True, 1_542_787)])
def test_parameter_counts_match_the_seed_tables(norm_in_blocks, norm_after_trunk, expected):
    from plugins.classic.srresnet_arch import SRResNetIN
    net = SRResNetIN(norm_in_blocks=norm_in_blocks, norm_after_trunk=norm_after_trunk)
    assert _count(net) == expected
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 32 * norm_in_blocks + norm_after_trunk and all(m.affine for m in norms)


def test_layers_follow_the_seed_table():
    from plugins.classic.srresnet_arch import SRResNetIN
    net = SRResNetIN()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [_count(c) for c in convs] == [15_616] + [36_864] * 32 + [36_928, 147_456, 147_456, 15_555]
    slopes = {m.negative_slope for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}
    assert {m.negative_slope
            for m in SRResNetIN(negative_slope=0.1).modules() if isinstance(m, torch.nn.LeakyReLU)} == {0.1}


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_shapes_and_gradients(upscale):
    from plugins.classic.srresnet_arch import SRResNetIN
    torch.manual_seed(0)
    net = SRResNetIN(num_feat=16, num_block=2, upscale=upscale)
    x = torch.rand(2, 3, 6, 5, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 3, 6 * upscale, 5 * upscale)
    out.abs().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    no_grad = [
        n for n, p in net.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
    ]
    assert not no_grad, f'no gradient for {no_grad}'
    stages = [m.upscale_factor for m in net.modules() if isinstance(m, torch.nn.PixelShuffle)]
    assert stages == {2: [2], 3: [3], 4: [2, 2]}[upscale]


def test_bad_upscale_is_refused():
    from plugins.classic.srresnet_arch import SRResNetIN
    with pytest.raises(ValueError, match='upscale must be 2, 3, 4 or 8, got 5'):
        SRResNetIN(upscale=5)


def test_registered_and_distinct_from_basicsr_networks():
    import plugins  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY
    from plugins.classic.perceptual_loss import LocalVGGPerceptualLoss
    from plugins.classic.srresnet_arch import SRResNetIN
    assert ARCH_REGISTRY.get('SRResNetIN') is SRResNetIN
    assert LOSS_REGISTRY.get('LocalVGGPerceptualLoss') is LocalVGGPerceptualLoss


# ---------------------------------------------------------------------------------------------------------------
# LocalVGGPerceptualLoss
# ---------------------------------------------------------------------------------------------------------------
def test_vgg_loss_missing_weights_says_how_to_provide_them(tmp_path):
    from plugins.classic.perceptual_loss import LocalVGGPerceptualLoss
    path = str(tmp_path / 'nowhere' / 'vgg19-dcbb9e9d.pth')
    with pytest.raises(FileNotFoundError) as err:
        LocalVGGPerceptualLoss({'conv5_4': 1.0}, vgg_weights_path=path)
    message = str(err.value)
    for part in ('vgg_weights_path', path, 'never downloads', 'vgg19-dcbb9e9d.pth', 'internet',
                 'remove perceptual_opt'):
        assert part in message, message


def test_vgg_loss_reads_full_and_features_only_files(tmp_path):
    """A torchvision-style file (``features.N.*`` plus classifier keys) and a features-only file give the same
    features as torchvision's own layers on ImageNet-normalised input; only the needed layers are built."""
    from torchvision.models import vgg
    from plugins.classic.perceptual_loss import LocalVGGPerceptualLoss
    torch.manual_seed(0)
    features = vgg.make_layers(vgg.cfgs['E'])[:9].eval()  # up to relu2_2
    full = {f'features.{k}': v for k, v in features.state_dict().items()}
    full['classifier.0.weight'] = torch.zeros(2, 2)  # ignored, like the real file's classifier
    torch.save(full, tmp_path / 'full.pth')
    torch.save(features.state_dict(), tmp_path / 'features.pth')
    x, gt = torch.rand(2, 3, 24, 24, requires_grad=True), torch.rand(2, 3, 24, 24)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = torch.nn.functional.l1_loss(features((x - mean) / std), features((gt - mean) / std))
    for name in ('full.pth', 'features.pth'):
        loss = LocalVGGPerceptualLoss({'relu2_2': 1.0}, str(tmp_path / name), perceptual_weight=2.0)
        assert len(loss.vgg.vgg_net) == 9 and list(loss.vgg.vgg_net._modules)[-1] == 'relu2_2'
        percep, style = loss(x, gt)
        assert style is None and torch.allclose(percep, 2 * expected, atol=1e-6)
    # Gradients reach the input, never the frozen VGG, which stays in eval mode.
    percep.backward()
    assert x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss.parameters())
    loss.train()
    assert not loss.vgg.training


def test_vgg_loss_style_l2_and_layer_weights(tmp_path):
    from plugins.classic.perceptual_loss import LocalVGGPerceptualLoss
    _stand_in_vgg19_features(str(tmp_path / 'f.pth'), 9)
    x, gt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    one = LocalVGGPerceptualLoss({'conv1_2': 1.0}, str(tmp_path / 'f.pth'), criterion='l2', style_weight=1.0)
    two = LocalVGGPerceptualLoss({
        'conv1_2': 1.0,
        'conv2_2': 0.5
    },
                                 str(tmp_path / 'f.pth'),
                                 criterion='l2',
                                 style_weight=1.0)
    (p1, s1), (p2, s2) = one(x, gt), two(x, gt)
    assert p1 > 0 and s1 > 0 and p2 > p1 and s2 > s1
    assert torch.allclose(one(x, x)[0], torch.zeros(()))


def test_vgg_loss_reports_missing_layers_and_bad_names(tmp_path):
    from plugins.classic.perceptual_loss import LocalVGGPerceptualLoss
    _stand_in_vgg19_features(str(tmp_path / 'f.pth'), 9)  # up to relu2_2
    with pytest.raises(ValueError, match=r'lacks 2 of the 10 tensors .* 10\.weight \(conv3_1\)'):
        LocalVGGPerceptualLoss({'conv3_1': 1.0}, str(tmp_path / 'f.pth'))
    with pytest.raises(ValueError, match=r"names \['conv9_9'\]"):
        LocalVGGPerceptualLoss({'conv9_9': 1.0}, str(tmp_path / 'f.pth'))
    with pytest.raises(ValueError, match='criterion must be one of'):
        LocalVGGPerceptualLoss({'conv1_1': 1.0}, str(tmp_path / 'f.pth'), criterion='l3')


# ---------------------------------------------------------------------------------------------------------------
# Options files through tools/train.py and tools/test.py (in this process)
# ---------------------------------------------------------------------------------------------------------------
def test_x4_options_files_are_found():
    """The tests below are parametrised over the x4 options files found by model type, so a new file is tested by
    construction; here: the search finds the SRGAN rows, and the pretraining file among the SRResNet rows (an empty
    parametrisation would test nothing)."""
    assert PRETRAIN in SRRESNET_OPTIONS and SRGAN_OPTIONS


def test_srgan_and_test_options_read_the_pretraining_checkpoint():
    ckpt = f"experiments/{options(PRETRAIN)['name']}/models/net_g_latest.pth"
    for rel in SRGAN_OPTIONS + [SRRESNET_TEST]:
        opt = options(rel)
        assert opt['path']['pretrain_network_g'] == ckpt, rel
        assert opt['network_g'] == options(PRETRAIN)['network_g'], rel


@pytest.mark.parametrize('rel', SRRESNET_OPTIONS, ids=lambda p: osp.basename(p)[:-4])
def test_train_srresnet_options(request, small_val, rel):
    if rel == PRETRAIN:  # already run once for the session (srresnet_pretrained), no need for a second run
        run_folder = request.getfixturevalue('srresnet_pretrained').folder
    else:
        work = request.getfixturevalue('workdir')
        run_folder = run_options(rel, work, {**quick(rel), **small_val_overrides(rel, small_val)}).folder
    opt = options(rel)
    models = run_folder / 'models'
    assert {p.name for p in models.iterdir()} >= {'net_g_2.pth', 'net_g_latest.pth'}
    log = _train_log(run_folder)
    assert re.search(r'l_pix: [-+\d.e]+', log) and re.search(r'# psnr: [\d.]+', log), log[-3000:]
    assert re.search(r'# ssim: [\d.]+', log)
    # The checkpoint is the configured SRResNetIN (strict load into the network of the options).
    from plugins.classic.srresnet_arch import SRResNetIN
    net_opt = {k: v for k, v in opt['network_g'].items() if k != 'type'}
    SRResNetIN(**net_opt).load_state_dict(torch.load(models / 'net_g_latest.pth', map_location='cpu')['params'])


def _train_log(run_folder) -> str:
    logs = sorted(glob.glob(str(run_folder / 'train_*.log')), key=osp.getmtime)
    assert logs, f'no training log in {run_folder}'
    return open(logs[-1]).read()


def _copy_to_default_path(checkpoint, workdir, rel) -> str:
    """Put ``checkpoint`` where the options file ``rel`` looks for it (its path:pretrain_network_g)."""
    path = options(rel)['path']['pretrain_network_g']
    os.makedirs((workdir / path).parent)
    shutil.copy(checkpoint, workdir / path)
    return path


def test_test_pipeline_on_a_trained_checkpoint(workdir, small_val, srresnet_pretrained):
    _copy_to_default_path(srresnet_pretrained.checkpoint, workdir, SRRESNET_TEST)
    run = run_options(SRRESNET_TEST, workdir, small_val_overrides(SRRESNET_TEST, small_val), train=False)
    test_log = run.log('test_*.log')
    assert 'params_ema' in test_log
    psnr = float(re.search(r'# psnr: ([\d.]+)', test_log).group(1))
    assert 5 < psnr < 60 and re.search(r'# ssim: [\d.]+', test_log)
    images = sorted(glob.glob(str(run.folder / 'visualization' / 'demo_val' / '*.png')))
    assert [osp.basename(p).split('_')[0] for p in images] == ['chelsea', 'rocket']
    assert cv2.imread(images[0]).shape == (64, 64, 3)


@pytest.mark.parametrize('rel', SRGAN_OPTIONS, ids=lambda p: osp.basename(p)[:-4])
def test_train_srgan_options_from_the_srresnet_checkpoint(workdir, small_val, rel, srresnet_pretrained):
    opt = options(rel)
    assert opt['network_d']['input_size'] == opt['datasets']['train']['gt_size']
    pretrain = _copy_to_default_path(srresnet_pretrained.checkpoint, workdir, rel)
    overrides = {**quick(rel), **small_val_overrides(rel, small_val)}
    vgg = 'perceptual_opt' in opt['train']
    if vgg:  # stand-in weights: a random VGG19 up to relu2_2 (1 MB) instead of the 548 MB ImageNet file
        _stand_in_vgg19_features(str(workdir / STAND_IN_VGG), 9)
        overrides.update({'train:perceptual_opt:vgg_weights_path': STAND_IN_VGG,
                          'train:perceptual_opt:layer_weights': {'relu2_2': 1.0}})
    run = run_options(rel, workdir, overrides)
    log = run.log('train_*.log')
    assert f'Loading SRResNetIN model from {pretrain}' in log, log[:3000]
    for key in ('l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake'):
        assert re.search(rf'{key}: [-+\d.e]+', log), key
    assert bool(re.search(r'l_g_percep: [-+\d.e]+', log)) == vgg
    assert re.search(r'# psnr: [\d.]+', log)
    assert {p.name for p in run.models.iterdir()} >= {'net_g_2.pth', 'net_d_2.pth', 'net_g_latest.pth'}
