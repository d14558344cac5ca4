"""Options validation before any work starts: unknown keys with a suggestion, arguments a class does not take,
scale and patch size against the data, the reliability options' own values. In-process, no training."""
import os
import shutil

import pytest

from tests.helpers import write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'


def _rejected(workdir, monkeypatch, changes, message, src=SRCNN_TRAIN):
    """The options ``src`` changed by keys (``changes``: the keyword arguments of ``write_options``: overrides,
    add, delete, rename) fail the check with an OptionsError matching ``message``."""
    from plugins.engine.errors import OptionsError
    from plugins.engine.basicsr.options_check import check_basicsr_options
    monkeypatch.chdir(workdir)
    path = write_options(src, workdir / 'x.yml', **changes)
    with pytest.raises(OptionsError, match=message):
        check_basicsr_options(path)


@pytest.mark.parametrize('changes, message', [
    (dict(rename={'manual_seed': 'manual_sed'}), r"x\.yml: unknown option manual_sed\. Did you mean 'manual_seed'\?"),
    (dict(rename={'train:total_iter': 'total_iters'}), r"unknown option train:total_iters\. Did you mean 'total_iter'"),
    (dict(rename={'logger:print_freq': 'print_frq'}), r"unknown option logger:print_frq\. Did you mean 'print_freq'"),
    (dict(rename={'path:strict_load_g': 'strict_laod_g'}), r"unknown option path:strict_laod_g"),
    (dict(rename={'datasets:train:use_hflip': 'use_hflp'}),
     r"unknown option datasets:train:use_hflp\. Did you mean 'use_hflip'"),
    (dict(rename={'network_g:num_feat': 'num_feats'}),
     r"network_g:num_feats is not an argument of SRCNN \(it takes: .*\)\. Did you mean 'num_feat'"),
    (dict(rename={'train:pixel_opt:loss_weight': 'loss_weigth'}),
     r"train:pixel_opt:loss_weigth is not an argument of MSELoss .*Did you mean 'loss_weight'"),
    (dict(rename={'train:optim_g:betas': 'beta'}), r"train:optim_g:beta is not an argument of Adam"),
    (dict(rename={'train:scheduler:eta_min': 'eta_mn'}),
     r"train:scheduler:eta_mn is not an argument of CosineAnnealingRestartLR.*Did you mean 'eta_min'"),
    (dict(overrides={'train:optim_g:type': 'SGD'}), r"train:optim_g:type 'SGD': SRModel .* supports only 'Adam'"),
], ids=['manual_sed', 'total_iters', 'print_frq', 'strict_laod_g', 'use_hflp', 'num_feats', 'loss_weigth', 'beta',
        'eta_mn', 'SGD'])
def test_unknown_keys_and_arguments_are_named_with_a_suggestion(workdir, monkeypatch, changes, message):
    _rejected(workdir, monkeypatch, changes, message)


@pytest.mark.parametrize('changes, message', [
    (dict(overrides={'datasets:train:dataroot_lq': 'datasets/demo/train/LR_bicubic_sub/X4'}),
     r"scale 2 does not match datasets:train: LQ .*X4/\S+ is 24x24 and GT .*HR_sub/\S+ is 96x96 \(x4\)"),
    (dict(overrides={'scale': 4, 'network_g:upscale': 4, 'datasets:train:gt_size': 96}),
     r'scale 4 does not match datasets:train: LQ .* is 48x48 and GT .* is 96x96 \(x2\)'),
    (dict(overrides={'datasets:train:gt_size': 49}), r'datasets:train:gt_size 49 is not divisible by scale 2'),
    (dict(overrides={'datasets:train:gt_size': 192}),
     r'datasets:train:gt_size 192 is larger than the GT image .* \(96x96\)'),
    (dict(overrides={'datasets:train:io_backend': {'type': 'lmdb'},
                     'datasets:train:dataroot_gt': 'datasets/demo/train/HR_sub.lmdb',
                     'datasets:train:dataroot_lq': 'datasets/demo/train/LR_bicubic_sub/X3.lmdb'}),
     r'scale 2 does not match datasets:train: LQ .*X3\.lmdb:\S+ is 32x32 and GT .*HR_sub\.lmdb:\S+ is 96x96 \(x3\)'),
    (dict(overrides={'datasets:train:filename_tmpl': '{}x2'}), r"dataroot_lq .* has no '\S+x2\.png' for GT image"),
    (dict(overrides={'datasets:train:on_data_fault': 'ignore'}, add=True),
     r"datasets:train:on_data_fault must be one of stop, skip, got 'ignore'"),
    (dict(overrides={'train:nonfinite_patience': -1}, add=True), r'train:nonfinite_patience must be >= 0'),
], ids=['lq_x4', 'scale_4', 'gt_size_49', 'gt_size_192', 'lmdb_x3', 'filename_tmpl', 'on_data_fault',
        'nonfinite_patience'])
def test_data_that_does_not_fit_the_options(workdir, monkeypatch, changes, message):
    _rejected(workdir, monkeypatch, changes, message)


def test_paired_folders_with_different_counts(workdir, monkeypatch, demo_data):
    lq = workdir / 'lq'
    shutil.copytree(os.path.join(demo_data, 'train/LR_bicubic_sub/X2'), lq)
    os.remove(lq / sorted(os.listdir(lq))[-1])
    _rejected(workdir, monkeypatch, dict(overrides={'datasets:train:dataroot_lq': str(lq)}),
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
    custom = dict(overrides={'model_type': 'ReliabilityProbeModel', 'train:text_prior_weight': 0.1,
                             'recognizer': 'crnn'}, add=True)
    check_basicsr_options(write_options(SRCNN_TRAIN, workdir / 'ok.yml', **custom))
    _rejected(workdir, monkeypatch, dict(custom, rename={'manual_seed': 'manual_sed'}),
              r"unknown option manual_sed\. Did you mean 'manual_seed'")
    _rejected(workdir, monkeypatch, dict(custom, rename={'train:total_iter': 'total_iters'}),
              r"unknown option train:total_iters\. Did you mean 'total_iter'")


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
    sgd = dict(overrides={'train:optim_g:type': 'SGD', 'train:optim_g:momentum': 0.9}, add=True,
               delete=['train:optim_g:weight_decay', 'train:optim_g:betas'])
    check_basicsr_options(write_options(src, workdir / 'sgd.yml', **sgd))
    _rejected(workdir, monkeypatch, dict(overrides={'train:optim_g:type': 'Sgd'}),
              r"train:optim_g:type 'Sgd' is not an optimizer of torch.optim\. Did you mean 'SGD'\?", src=src)
    params = [torch.nn.Parameter(torch.zeros(1))]
    for model in (CMDSRModel, LowLightModel, TextSRModel):
        optimizer = model.get_optimizer(None, 'SGD', params, 0.1, momentum=0.9)
        assert type(optimizer) is torch.optim.SGD and optimizer.defaults['momentum'] == 0.9
