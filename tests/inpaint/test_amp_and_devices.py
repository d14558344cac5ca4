"""Inpainting line (seed 003) on a GPU, as far as a CPU shows it: mixed precision through the optimizer wrappers
(``tools/train.py --amp``: autocast and loss scaling in both inpaintors' steps, float32 where the losses need it),
noise drawn on the model's device, FID's network on the images' device, and no host copies in the generator loss.

torch autocasts on the CPU in float16 and bfloat16 and has a CPU GradScaler, so the float16 + loss scaler path runs
here as on a GPU (slowly: float16 convolutions are emulated on most CPUs, so the models here are small). The
``meta`` device stands in for a GPU where a tensor's device is what matters.
"""
import os.path as osp
import re

import pytest
import torch

pytest.importorskip('mmagic')
import plugins.inpaint  # noqa: E402,F401  (the inpainting line in MMagic's registries)
from mmagic.models.base_models import OneStageInpaintor  # noqa: E402
from mmagic.registry import METRICS, MODELS  # noqa: E402
from mmagic.structures import DataSample  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapperDict  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from plugins.engine.mmengine.optim_wrappers import DeviceAmpOptimWrapper  # noqa: E402
from tests.helpers import REPO  # noqa: E402
from tests.inpaint.test_components import stand_in_inception  # noqa: E402
from tests.inpaint.test_training import VAL_LINE, inpaint_runs, state_dict, train  # noqa: E402

CONFIGS = osp.join(REPO, 'options', 'mmagic', 'inpaint')


def _config(name: str):
    init_default_scope('mmagic')
    return Config.fromfile(osp.join(CONFIGS, name))


def small_base():
    """The Base inpaintor of base_demo.py at 8 channels."""
    cfg = _config('base_demo.py')
    cfg.model.encdec.base_channels = 8
    cfg.model.disc.base_channels = 8
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def small_pdgan(tmp_path):
    """The PD-GAN inpaintor of pdgan_demo.py with narrow layers, on an untrained prior saved to ``tmp_path``."""
    cfg = _config('pdgan_demo.py')
    cfg.model.prior.generator.base_channels = 8
    torch.manual_seed(0)
    torch.save(MODELS.build(cfg.model.prior.generator).state_dict(), tmp_path / 'prior.pth')
    cfg.model.prior.checkpoint = str(tmp_path / 'prior.pth')
    cfg.model.encdec.update(z_dim=16, channels=(16, 16, 8, 8, 8), hidden=8)
    cfg.model.disc.base_channels = 8
    return MODELS.build(cfg.model)


def batch(size: int, n: int = 2):
    """MMagic's inpainting batch before the data preprocessor: masked images (0-255, 127.5 in the hole), each
    sample's ground truth and mask (1 = hole)."""
    torch.manual_seed(1)
    data = dict(inputs=[], data_samples=[])
    for _ in range(n):
        gt = torch.rand(3, size, size) * 255
        mask = torch.zeros(1, size, size)
        mask[:, size // 4:size // 2, size // 4:size // 2] = 1
        data['inputs'].append(gt * (1 - mask) + 127.5 * mask)
        data['data_samples'].append(DataSample(gt_img=gt, mask=mask))
    return data


def amp_wrappers(model, dtype: str) -> OptimWrapperDict:
    """What ``--amp`` builds for the two optimizers (a small initial scale: float16 overflows less on random nets)."""
    return OptimWrapperDict(**{
        name: DeviceAmpOptimWrapper(dtype=dtype, loss_scale=dict(init_scale=256.),
                                    optimizer=torch.optim.Adam(getattr(model, name).parameters(), lr=1e-3))
        for name in ('generator', 'disc')})


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
@pytest.mark.parametrize('model_name', ['base', 'pdgan'])
def test_amp_train_step_autocasts_every_forward_and_backpropagates_through_the_scalers(model_name, dtype, tmp_path):
    """Under --amp the generator and discriminator forwards of a training step run in ``dtype``, each optimizer's
    loss goes through its wrapper's scaler (once per step: float16 scales it, bfloat16's scaler is off), both
    networks are updated, and the losses are finite. MMagic's own step calls loss.backward() itself: no autocast,
    and a scaler it bypasses."""
    model = small_base() if model_name == 'base' else small_pdgan(tmp_path)
    size = 32 if model_name == 'base' else 64  # PD-GAN's generator grows 4x4 by four 2x units
    wrappers = amp_wrappers(model, dtype)
    outputs = {'generator': [], 'disc': []}
    for name, dtypes in outputs.items():
        getattr(model, name).register_forward_hook(lambda module, args, out, dtypes=dtypes: dtypes.append(out.dtype))
    scaled = []
    for name, wrapper in wrappers.items():
        scale = wrapper.loss_scaler.scale
        wrapper.loss_scaler.scale = lambda loss, name=name, scale=scale: scaled.append(name) or scale(loss)
    before = {name: [p.detach().clone() for p in getattr(model, name).parameters()] for name in outputs}

    log_vars = model.train_step(batch(size), wrappers)

    cast = getattr(torch, dtype)
    assert outputs['generator'] == [cast]
    # the discriminator step on the fake(s) and the real images, the generator's GAN loss on each fake
    assert outputs['disc'] == [cast] * (5 if model_name == 'pdgan' else 3)
    assert sorted(scaled) == ['disc', 'generator']
    assert wrappers['generator'].loss_scaler.is_enabled() == (dtype == 'float16')
    for name in outputs:
        assert any(not torch.equal(a, b) for a, b in zip(before[name], getattr(model, name).parameters())), name
    assert all(torch.isfinite(v).all() for v in log_vars.values()), log_vars
    if model_name == 'pdgan':
        assert 'loss_diversity' in log_vars


def test_ms_ssim_runs_in_float32_under_autocast():
    """The same value with and without float16 autocast: SSIM's Gaussian filtering is not cast to float16."""
    loss = MODELS.build(dict(type='MSSSIML1Loss', win_size=3))
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 48, 48) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    reference = loss(pred, target)
    with torch.autocast('cpu', dtype=torch.float16):
        amp = loss(pred, target)
    assert amp.dtype == torch.float32 and torch.equal(amp, reference)


def test_generator_loss_matches_mmagics_without_host_copies(monkeypatch):
    """The generator's losses are MMagic's, term by term, without the four CPU copies of the images MMagic's
    generator_loss makes for a visualisation nothing reads (a device-to-host sync each on a GPU)."""
    model = small_base()
    model.disc.eval()  # spectral norm's power iteration would make the two calls see different discriminators
    torch.manual_seed(2)
    gt, fake_res = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    mask = (torch.rand(2, 1, 32, 32) > 0.5).float()
    fake_img, masked_img = fake_res * mask + gt * (1 - mask), gt * (1 - mask)
    _, expected = OneStageInpaintor.generator_loss(model, fake_res, fake_img, gt, mask, masked_img)
    copies, cpu = [], torch.Tensor.cpu

    def counted_cpu(self, *args, **kwargs):
        copies.append(tuple(self.shape))
        return cpu(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, 'cpu', counted_cpu)
    images, losses = model.generator_loss(fake_res, fake_img, gt, mask, masked_img)
    assert copies == []
    assert list(losses) == list(expected) == ['loss_g_fake', 'loss_l1_hole', 'loss_l1_valid', 'loss_tv']
    assert all(torch.equal(losses[k], expected[k]) for k in expected)
    assert images['fake_res'] is fake_res


def test_pdgan_noise_is_drawn_on_the_device(tmp_path):
    """Noise for a model on another device comes from that device's generator, not drawn on the CPU and copied
    (the CPU generator is untouched); a seeded draw uses a generator of that device."""
    model = small_pdgan(tmp_path)
    state = torch.get_rng_state()
    noise = model.sample_noise(4, 'meta')
    assert noise.device.type == 'meta' and noise.shape == (4, 16)
    assert torch.equal(torch.get_rng_state(), state)
    seeded = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(model.sample_noise(2, 'cpu', seed=3), seeded)


class DeviceProbe(torch.nn.Module):
    """Stands in for the Inception network: it has weights, records where its input and weights were at each
    call, and returns features on the CPU (tensors on the meta device have no values to return)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        self.calls.append((x.device.type, self.weight.device.type))
        return torch.zeros(x.shape[0], 4)


def test_fid_runs_its_network_on_the_device_of_the_images(tmp_path):
    """Validation hands InpaintFID the model's outputs on the model's device: the network moves there (once)."""
    fid = METRICS.build(dict(type='InpaintFID', inception_path=stand_in_inception(tmp_path / 'inception.pt')))
    fid.inception = probe = DeviceProbe()
    images = [torch.zeros(3, 8, 8, device='meta') for _ in range(2)]
    fid.process({}, [{'output': {'pred_img': image}, 'gt_img': image} for image in images])
    assert probe.calls == [('meta', 'meta')] * 2  # the completions, then the ground truths


def test_amp_trains_the_base_config_in_float16_with_a_loss_scaler_per_optimizer(workdir):
    """tools/train.py --amp on an inpainting config (MMagic's --amp fails there in MultiOptimWrapperConstructor):
    both optimizers train in float16 and each checkpointed optimizer carries its loss scaler's state."""
    log = train('base_demo.py', workdir, 'work', 2, 'train_dataloader.batch_size=1', 'train_cfg.val_interval=10',
                args=['--amp'])  # float16 convolutions are emulated on a CPU: one crop per iteration
    assert 'Iter(train) [2/2]' in log and re.search(r'loss_l1_hole: [\d.]+', log), log[-3000:]
    ckpt = state_dict(workdir / 'work' / 'iter_2.pth')
    for name in ('generator', 'disc'):
        assert ckpt['optimizer'][name]['loss_scaler']['scale'] > 0, name
    assert "type='DeviceAmpOptimWrapper'" in ckpt['meta']['cfg'] and "dtype='float16'" in ckpt['meta']['cfg']


def test_pdgan_trains_in_bfloat16(shared_dir, demo_data, workdir):
    """--amp-dtype bfloat16 on PD-GAN (on the shared Base run's prior), validation included."""
    folder = inpaint_runs(shared_dir, demo_data)
    log = train('pdgan_demo.py', workdir, 'work', 2, f'model.prior.checkpoint={folder / "base"}',
                'train_dataloader.batch_size=2', args=['--amp-dtype', 'bfloat16'])
    assert 'Iter(train) [2/2]' in log and re.search(r'loss_diversity: [\d.]+', log), log[-3000:]
    assert len(VAL_LINE.findall(log)) == 1
    ckpt = state_dict(workdir / 'work' / 'iter_2.pth')
    assert ckpt['optimizer']['generator']['loss_scaler'] == {}  # bfloat16: no loss scaling
