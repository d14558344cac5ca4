"""Inpainting line (seed 003), training level: every config of options/mmagic/inpaint trained a few iterations with
mmengine's Runner through tools/train.py's entry point (in this process, ``run_config``), resume, a 2-process
torchrun run, PD-GAN on the base model's prior, diverse samples and tools/inpaint/sample.py.

The Base (4 iterations) and PD-GAN (2 iterations, on Base's prior) runs are built once per session
(``build_once``) and read by several tests; a test that writes next to them works on a copy."""
import glob
import importlib.util
import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import build_once, make_workdir
from tests.helpers import REPO, run_config, run_tool, torchrun

pytest.importorskip('mmagic')
import plugins.inpaint  # noqa: E402,F401  (the inpainting line in MMagic's registries, for load_inpaintor)

CONFIGS = osp.join(REPO, 'options', 'mmagic', 'inpaint')
FAST = ['train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
VAL_LINE = re.compile(r'Iter\(val\) \[\d+/\d+\]\s+MAE: ([\d.]+)\s+PSNR: ([\d.]+)\s+TV: ([\d.]+)')


def _logs(work) -> set:
    return set(glob.glob(osp.join(str(work), '*', '*.log')))


def train(config: str, cwd, work: str, iters: int, *options: str, resume: bool = False, args=()) -> str:
    """``tools/train.py CONFIG`` in this process, in ``cwd``, into ``cwd/work`` (``args``: more flags, e.g.
    ``--amp``); returns the text of the run's log."""
    config = config if osp.isabs(config) else osp.join(CONFIGS, config)
    before = _logs(osp.join(cwd, work))
    run_config(config, cwd, args=['--work-dir', work, *(['--resume'] if resume else []), *args],
               cfg_options=[f'train_cfg.max_iters={iters}', *FAST, *options])
    (log,) = _logs(osp.join(cwd, work)) - before
    with open(log) as f:
        return f.read()


def state_dict(path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


def inpaint_runs(shared_dir, demo_data):
    """Base (4 iterations) then PD-GAN (2 iterations) on its prior, built once per session: ``<folder>/base`` and
    ``<folder>/pdgan`` with their logs ``<folder>/base.log`` and ``<folder>/pdgan.log``. Read only."""
    def build(folder):
        make_workdir(folder, demo_data)
        (folder / 'base.log').write_text(train('base_demo.py', folder, 'base', 4))
        (folder / 'pdgan.log').write_text(train('pdgan_demo.py', folder, 'pdgan', 2, 'model.prior.checkpoint=base'))
    return build_once(shared_dir, 'inpaint_base_pdgan', build)


@pytest.fixture(scope='module')
def runs(shared_dir, demo_data):
    folder = inpaint_runs(shared_dir, demo_data)
    return folder, {name: (folder / f'{name}.log').read_text() for name in ('base', 'pdgan')}


def test_base_trains_with_two_optimizers_ema_and_validation(runs):
    cwd, logs = runs
    log = logs['base']
    assert 'Iter(train) [4/4]' in log and re.search(r'loss_l1_hole: [\d.]+.*loss_tv: [\d.]+', log)
    assert re.search(r'fake_loss: [\d.]+\s+real_loss: [\d.]+\s+loss_g_fake', log)  # LSGAN on both sides
    scores = VAL_LINE.findall(log)
    assert len(scores) == 2, log[-2000:]
    for mae, psnr, tv in scores:
        assert 0 < float(mae) < 100 and 5 < float(psnr) < 60 and 0 < float(tv) < 100
    ckpt = state_dict(cwd / 'base' / 'iter_4.pth')
    assert set(ckpt['optimizer']) == {'generator', 'disc'}
    sd = ckpt['state_dict']
    assert sd['generator_ema.steps'].item() == 4
    w, w_ema = sd['generator.net.0.weight'], sd['generator_ema.module.net.0.weight']
    assert not torch.equal(w, w_ema)  # the average lags the trained weights
    assert any(k.startswith('disc.') for k in sd)


def test_resume_continues_training_and_ema(runs, workdir):
    folder, _ = runs
    shutil.copytree(folder / 'base', workdir / 'base')
    (workdir / 'base' / 'last_checkpoint').write_text(str(workdir / 'base' / 'iter_4.pth'))  # the copy's own
    log = train('base_demo.py', workdir, 'base', 6, resume=True)
    assert re.search(r'Auto resumed from the latest checkpoint \S*iter_4\.pth', log), log[-3000:]
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [1/6]' not in log
    sd = state_dict(workdir / 'base' / 'iter_6.pth')['state_dict']
    assert sd['generator_ema.steps'].item() == 6  # the EMA went on from its saved state


def test_pdgan_trains_on_the_base_prior(runs):
    cwd, logs = runs
    log = logs['pdgan']
    assert re.search(r'PD-GAN prior weights: \S*base/iter_4\.pth \(generator_ema\.module\)', log), log[-3000:]
    assert re.search(r'loss_l1_hole: [\d.]+.*loss_tv: [\d.]+\s+loss_diversity: [\d.]+', log)
    assert len(VAL_LINE.findall(log)) == 1
    sd = state_dict(cwd / 'pdgan' / 'iter_2.pth')['state_dict']
    base = state_dict(cwd / 'base' / 'iter_4.pth')['state_dict']
    assert torch.equal(sd['prior.net.0.weight'], base['generator_ema.module.net.0.weight'])  # frozen prior


def _demo_input(cwd, size=64):
    from plugins.inpaint.sampling import prepare
    img = cv2.cvtColor(cv2.imread(str(cwd / 'datasets/demo/val/HR/chelsea.png')), cv2.COLOR_BGR2RGB)
    return prepare(img, size, mask_mode='bbox', mask_seed=1)


def test_two_noise_samples_differ_in_the_hole_and_agree_outside(runs):
    from plugins.inpaint.sampling import load_inpaintor
    cwd, _ = runs
    model = load_inpaintor(osp.join(CONFIGS, 'pdgan_demo.py'), str(cwd / 'pdgan' / 'iter_2.pth'))
    masked, mask = _demo_input(cwd)
    hole = mask.expand_as(masked).bool()
    with torch.no_grad():
        raw_a, out_a = model.inpaint(masked, mask, model.sample_noise(1, 'cpu', seed=0))
        raw_b, out_b = model.inpaint(masked, mask, model.sample_noise(1, 'cpu', seed=1))
    assert (out_a - out_b)[hole].abs().mean() > 1e-3
    assert torch.equal(out_a[~hole], out_b[~hole]) and torch.equal(out_a[~hole], masked[~hole])
    assert not torch.equal(raw_a[~hole], masked[~hole])  # the raw output is not the input: compositing restores it
    base = load_inpaintor(osp.join(CONFIGS, 'base_demo.py'), str(cwd / 'base' / 'iter_4.pth'))
    with torch.no_grad():
        _, out = base.inpaint(masked, mask)
    assert torch.equal(out[~hole], masked[~hole])
    with pytest.raises(ValueError, match='does not match the image'):
        base.inpaint(masked, mask[..., :32])


def test_sample_tool_writes_completions_side_by_side(runs, tmp_path, capsys):
    """tools/inpaint/sample.py's main in this process: the picture, and exit 2 with an ``error:`` line for a bad
    mask."""
    cwd, _ = runs
    spec = importlib.util.spec_from_file_location('inpaint_sample', osp.join(REPO, 'tools', 'inpaint', 'sample.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    image = str(cwd / 'datasets/demo/val/HR/rocket.png')
    args = [osp.join(CONFIGS, 'pdgan_demo.py'), str(cwd / 'pdgan' / 'iter_2.pth'), '--input', image]
    tool.main(args + ['--num', '3', '--output', str(tmp_path / 'c.png')])
    assert 'wrote' in capsys.readouterr().out
    pic = cv2.imread(str(tmp_path / 'c.png'))
    assert pic.shape == (64, 6 * 64 + 5 * 2, 3)  # input, prior, 3 completions, original
    panels = [pic[:, i * 66:i * 66 + 64].astype(int) for i in range(6)]
    assert np.abs(panels[2] - panels[3]).max() > 0  # two completions differ

    h, w = cv2.imread(image).shape[:2]
    bad = np.zeros((h, w + 1), np.uint8)
    cv2.imwrite(str(tmp_path / 'bad_size.png'), bad)
    with pytest.raises(SystemExit) as exc:
        tool.main(args + ['--mask', str(tmp_path / 'bad_size.png')])
    assert exc.value.code == 2
    assert re.search(r'error: .*bad_size.png is \d+x\d+ but the image is \d+x\d+', capsys.readouterr().err)
    grey = np.full((h, w), 100, np.uint8)
    grey[: h // 2] = 255
    cv2.imwrite(str(tmp_path / 'grey.png'), grey)
    with pytest.raises(SystemExit) as exc:
        tool.main(args + ['--mask', str(tmp_path / 'grey.png'), '--strict-mask'])
    assert exc.value.code == 2 and re.search(r'error: .*grey.png is not binary', capsys.readouterr().err)
    tool.main(args + ['--mask', str(tmp_path / 'grey.png'), '--num', '1', '--out', str(tmp_path / 'g.png')])  # alias
    assert cv2.imread(str(tmp_path / 'g.png')).shape[1] == 4 * 64 + 3 * 2


FID_CONFIG = """
_base_ = {base!r}
val_evaluator = dict(type='Evaluator', metrics=[
    dict(type='MAE', mask_key='mask', scaling=100), dict(type='PSNR'), dict(type='InpaintTV', scaling=100),
    dict(type='InpaintFID', inception_path={inception!r})])
"""


@pytest.mark.parametrize('config, marker', [('msssim_l1_demo.py', 'loss_rec'), ('simam_demo.py', None),
                                            ('groupnorm_demo.py', None)])
def test_ablation_rows_train(config, marker, workdir):
    from tests.inpaint.test_components import stand_in_inception
    if config == 'simam_demo.py':  # one row also reports FID (a stand-in TorchScript network as Inception)
        path = workdir / 'simam_fid.py'
        path.write_text(FID_CONFIG.format(base=osp.join(CONFIGS, config),
                                          inception=stand_in_inception(workdir / 'inception.pt')))
        config = str(path)
        log = train(config, workdir, 'work', 2)
        assert len(VAL_LINE.findall(log)) == 1, log[-3000:]
    else:  # training only: validation is the same code as Base's
        log = train(config, workdir, 'work', 2, 'train_cfg.val_interval=10')
    assert 'Iter(train) [2/2]' in log and (workdir / 'work' / 'iter_2.pth').is_file(), log[-3000:]
    if marker:
        assert re.search(rf'{marker}: [\d.]+', log)
    if 'fid' in config:
        assert re.search(r'Iter\(val\) \[3/3\].*TV: [\d.]+\s+FID: [\d.]+', log), log[-2000:]


def test_torchrun_two_cpu_processes_write_a_checkpoint_every_loader_reads_outside_torchrun(workdir):
    """Two processes train; the checkpoint's generator and discriminator keys carry their DDP wrappers' `module.`
    (mmengine saves them so), and mmengine's loader (load_from, tools/test.py, --resume) and the tools' strict one
    both read every weight into a model built without torchrun (engine/mmengine/checkpoint_keys.py)."""
    from mmengine.runner import load_checkpoint

    from plugins.engine.mmengine.config_model import build_config_model, load_config_checkpoint, read_config
    config = osp.join(CONFIGS, 'base_demo.py')
    proc = run_tool(['train.py', config, '--launcher', 'pytorch', '--work-dir', 'work',
                     '--cfg-options', 'train_cfg.max_iters=2', 'train_dataloader.batch_size=2', *FAST],
                    workdir, launcher=torchrun(2))
    out = proc.stdout + proc.stderr
    assert 'Distributed training: True' in out and 'Iter(train) [2/2]' in out, out[-3000:]
    assert len(VAL_LINE.findall(out)) == 1
    path = str(workdir / 'work' / 'iter_2.pth')
    sd = state_dict(path)['state_dict']
    assert sd['generator_ema.steps'].item() == 2
    wrapped = {k for k in sd if k.startswith(('generator.module.', 'disc.module.'))}
    assert wrapped and not any(k.startswith(('generator.net', 'disc.scales')) for k in sd)
    for load in (lambda m: load_checkpoint(m, path, map_location='cpu', strict=True, logger='silent'),
                 lambda m: load_config_checkpoint(m, path, config)):
        model = build_config_model(read_config(config), config)  # in MMagic's scope, no weights loaded
        load(model)
        own = model.state_dict()
        for key in wrapped:
            assert torch.equal(own[key.replace('.module.', '.', 1)], sd[key]), key
        assert torch.equal(own['generator_ema.steps'], sd['generator_ema.steps'])


def test_celeba_hq_256_config_with_folder_masks(workdir):
    """The seed-scale Base config on a tiny stand-in CelebA-HQ tree: 256x256 images, masks from a folder."""
    from plugins.inpaint.mask_transform import generate_mask
    from plugins.inpaint.sampling import square_resize
    root = workdir / 'datasets'
    photos = sorted(glob.glob(str(root / 'demo/val/HR/*.png')))
    for split, files in (('train', photos[:2]), ('val', photos[1:])):
        os.makedirs(root / 'CelebA-HQ' / split)
        for f in files:
            cv2.imwrite(str(root / 'CelebA-HQ' / split / osp.basename(f)), square_resize(cv2.imread(f), 256))
    os.makedirs(root / 'masks/irregular')
    for i in range(2):  # 128x128 masks: the config resizes them to the images (resize=True)
        cv2.imwrite(str(root / f'masks/irregular/m{i}.png'), generate_mask((128, 128), 'ff', seed=i)[..., 0] * 255)
    log = train('base_celeba-hq_256.py', workdir, 'work', 1, 'train_cfg.val_interval=1',
                'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=1',
                'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
                'model.encdec.base_channels=8', 'model.disc.base_channels=8')  # the data path is under test here
    assert 'Iter(train) [1/1]' in log and re.search(r'Iter\(val\) \[1/1\]\s+MAE: [\d.]+\s+PSNR', log), log[-3000:]
