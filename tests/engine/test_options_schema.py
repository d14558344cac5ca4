"""Options validation before any work starts: unknown keys with a suggestion, arguments a class does not take,
scale and patch size against the data, the reliability options' own values. In-process, no training."""
import os
import shutil

import pytest

from tests.helpers import write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'


def _rejected(workdir, monkeypatch, replace, message, src=SRCNN_TRAIN):
    from plugins.engine.errors import OptionsError
    from plugins.engine.basicsr.options_check import check_basicsr_options
    monkeypatch.chdir(workdir)
    path = write_options(src, workdir / 'x.yml', replace)
    with pytest.raises(OptionsError, match=message):
        check_basicsr_options(path)


@pytest.mark.parametrize('replace, message', [
    ({r'^manual_seed: 0': 'manual_sed: 0'}, r"x\.yml: unknown option manual_sed\. Did you mean 'manual_seed'\?"),
    ({r'^  total_iter: (\d+)': r'  total_iters: \1'}, r"unknown option train:total_iters\. Did you mean 'total_iter'"),
    ({r'^  print_freq: (\d+)': r'  print_frq: \1'}, r"unknown option logger:print_frq\. Did you mean 'print_freq'"),
    ({r'^  strict_load_g: true': '  strict_laod_g: true'}, r"unknown option path:strict_laod_g"),
    ({r'^    use_hflip: true': '    use_hflp: true'},
     r"unknown option datasets:train:use_hflp\. Did you mean 'use_hflip'"),
    ({r'^  num_feat: \[64, 32\]': '  num_feats: [64, 32]'},
     r"network_g:num_feats is not an argument of SRCNN \(it takes: .*\)\. Did you mean 'num_feat'"),
    ({r'^    loss_weight: 1.0': '    loss_weigth: 1.0'},
     r"train:pixel_opt:loss_weigth is not an argument of MSELoss .*Did you mean 'loss_weight'"),
    ({r'^    betas: \[0.9, 0.999\]': '    beta: [0.9, 0.999]'}, r"train:optim_g:beta is not an argument of Adam"),
    ({r'^    eta_min: (.*)': r'    eta_mn: \1'},
     r"train:scheduler:eta_mn is not an argument of CosineAnnealingRestartLR.*Did you mean 'eta_min'"),
    ({r'^    type: Adam': '    type: SGD'}, r"train:optim_g:type 'SGD': SRModel .* supports only 'Adam'"),
])
def test_unknown_keys_and_arguments_are_named_with_a_suggestion(workdir, monkeypatch, replace, message):
    _rejected(workdir, monkeypatch, replace, message)


@pytest.mark.parametrize('replace, message', [
    ({r'LR_bicubic_sub/X2$': 'LR_bicubic_sub/X4'},
     r"scale 2 does not match datasets:train: LQ .*X4/\S+ is 24x24 and GT .*HR_sub/\S+ is 96x96 \(x4\)"),
    ({r'^scale: 2': 'scale: 4', r'^  upscale: 2': '  upscale: 4', r'^    gt_size: 48': '    gt_size: 96'},
     r'scale 4 does not match datasets:train: LQ .* is 48x48 and GT .* is 96x96 \(x2\)'),
    ({r'^    gt_size: 48': '    gt_size: 49'}, r'datasets:train:gt_size 49 is not divisible by scale 2'),
    ({r'^    gt_size: 48': '    gt_size: 192'}, r'datasets:train:gt_size 192 is larger than the GT image .* \(96x96\)'),
    ({r'^      type: disk\n    color: y  # train': '      type: lmdb\n    color: y  # train', r'HR_sub$': 'HR_sub.lmdb', r'LR_bicubic_sub/X2$': 'LR_bicubic_sub/X3.lmdb'},
     r'scale 2 does not match datasets:train: LQ .*X3\.lmdb:\S+ is 32x32 and GT .*HR_sub\.lmdb:\S+ is 96x96 \(x3\)'),
    ({r'^    filename_tmpl: .*': "    filename_tmpl: '{}x2'"}, r"dataroot_lq .* has no '\S+x2\.png' for GT image"),
    ({r'^    color: y  #': '    on_data_fault: ignore  #'},
     r"datasets:train:on_data_fault must be one of stop, skip, got 'ignore'"),
    ({r'^  warmup_iter: -1': '  nonfinite_patience: -1'}, r'train:nonfinite_patience must be >= 0'),
])
def test_data_that_does_not_fit_the_options(workdir, monkeypatch, replace, message):
    _rejected(workdir, monkeypatch, replace, message)


def test_paired_folders_with_different_counts(workdir, monkeypatch, demo_data):
    lq = workdir / 'lq'
    shutil.copytree(os.path.join(demo_data, 'train/LR_bicubic_sub/X2'), lq)
    os.remove(lq / sorted(os.listdir(lq))[-1])
    _rejected(workdir, monkeypatch, {r'datasets/demo/train/LR_bicubic_sub/X2$': str(lq)},
              r'datasets:train: dataroot_gt .* has 413 files but dataroot_lq .* has 412')


def test_keys_of_a_custom_model_are_not_rejected(workdir, monkeypatch):
    """A model of another line may read its own option keys: only close misspellings of BasicSR's are reported."""
    from basicsr.models.sr_model import SRModel
    from basicsr.utils.registry import MODEL_REGISTRY

    if 'ReliabilityProbeModel' not in MODEL_REGISTRY:
        @MODEL_REGISTRY.register()
        class ReliabilityProbeModel(SRModel):
            def feed_data(self, data):
                self.use_text_prior = self.opt['train'].get('text_prior_weight')
                super().feed_data(data)

    from plugins.engine.basicsr.options_check import check_basicsr_options
    monkeypatch.chdir(workdir)
    custom = {r'^model_type: SRModel': 'model_type: ReliabilityProbeModel',
              r'^  warmup_iter: -1': '  warmup_iter: -1\n  text_prior_weight: 0.1', r'^manual_seed: 0': 'manual_seed: 0\nrecognizer: crnn'}
    check_basicsr_options(write_options(SRCNN_TRAIN, workdir / 'ok.yml', custom))
    custom[r'^manual_seed: 0'] = 'manual_sed: 0'
    _rejected(workdir, monkeypatch, custom, r"unknown option manual_sed\. Did you mean 'manual_seed'")
    custom.update({r'^manual_seed: 0': 'manual_seed: 0', r'^  total_iter: (\d+)': r'  total_iters: \1'})
    _rejected(workdir, monkeypatch, custom, r"unknown option train:total_iters\. Did you mean 'total_iter'")


def test_our_models_take_any_torch_optimizer_and_name_a_misspelt_one(workdir, monkeypatch):
    """CMDSR (like the low-light and text SR models) builds any torch.optim class by name, where BasicSR 1.4.2's
    SRModel builds Adam only; a misspelt class is refused before any work, with the closest name."""
    from plugins.engine.basicsr.options_check import check_basicsr_options
    from plugins.blindsr.cmdsr_model import CMDSRModel
    from plugins.lowlight.lowlight_model import LowLightModel
    from plugins.textsr.textsr_model import TextSRModel
    import torch
    monkeypatch.chdir(workdir)
    src = 'options/train/blindsr/cmdsr_x4_demo.yml'
    sgd = {r'^  optim_g:\n    type: Adam\n(    lr: .*\n)    weight_decay: 0\n    betas: .*': r'  optim_g:\n    type: SGD\n\1    momentum: 0.9'}
    check_basicsr_options(write_options(src, workdir / 'sgd.yml', sgd))
    _rejected(workdir, monkeypatch, {r'^    type: Adam': '    type: Sgd'},
              r"train:optim_g:type 'Sgd' is not an optimizer of torch.optim\. Did you mean 'SGD'\?", src=src)
    params = [torch.nn.Parameter(torch.zeros(1))]
    for model in (CMDSRModel, LowLightModel, TextSRModel):
        optimizer = model.get_optimizer(None, 'SGD', params, 0.1, momentum=0.9)
        assert type(optimizer) is torch.optim.SGD and optimizer.defaults['momentum'] == 0.9
