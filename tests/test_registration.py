"""Importing `plugins` registers every component into the toolboxes' registries, under names of its own."""
import importlib.util

import pytest

# Everything the package registers, per BasicSR registry. A new component must be added here (and documented).
EXPECTED_BASICSR = {
    'arch': {
        'SRCNN', 'FSRCNN', 'SRResNetIN',  # classic
        'CMDSR', 'CMDSRBaseNet', 'CMDSRConditionNet', 'CMDSRRRDBNet',  # blindsr
        'Backbone7x7', 'Gen_Y_Backbone7x7', 'Gen_Y_Backbone7x7_Share',  # lowlight
        'TSRN', 'TextBicubic', 'CRNN', 'TextBridge',  # textsr
    },
    'dataset': {'BicubicDegradationDataset', 'TaskDegradationDataset', 'FixedDegradationDataset',
                'LowLightPairedDataset', 'TextZoomLMDBDataset'},
    'loss': {'LocalVGGPerceptualLoss', 'TaskContrastiveLoss', 'L1SSIMLoss', 'TSRNImageLoss', 'TextCTCLoss'},
    'model': {'CMDSRModel', 'LowLightModel', 'TextSRModel'},
    'metric': {'calculate_word_accuracy', 'calculate_word_accuracy_rapidocr'},
}
# The MMagic side: the classic SRCNN for mmengine configs, and the inpainting line.
EXPECTED_MMAGIC = {
    'model': {'SRCNN', 'InpaintEncoderDecoder', 'SPDNormGenerator', 'MultiScalePatchDiscriminator', 'EncDecInpaintor',
              'PDGANInpaintor', 'MSSSIML1Loss', 'HoleTVLoss', 'InpaintDiversityLoss', 'VGG16PerceptualLoss'},
    'transform': {'RandomInpaintMask', 'LoadMaskFromFolder'},
    'metric': {'InpaintTV', 'InpaintFID'},
}


def test_basicsr_registrations():
    import plugins  # noqa: F401
    from basicsr.utils import registry
    registries = [registry.ARCH_REGISTRY, registry.DATASET_REGISTRY, registry.LOSS_REGISTRY,
                  registry.MODEL_REGISTRY, registry.METRIC_REGISTRY]
    ours = {r._name: {name for name, obj in r._obj_map.items() if obj.__module__.startswith('plugins.')}
            for r in registries}
    assert ours == EXPECTED_BASICSR


@pytest.mark.skipif(importlib.util.find_spec('mmagic') is None, reason='mmagic extra not installed')
def test_mmagic_registrations():
    import plugins  # noqa: F401
    from mmagic.registry import METRICS, MODELS, TRANSFORMS
    ours = {r.name: {name for name, obj in r.module_dict.items() if obj.__module__.startswith('plugins.')}
            for r in (MODELS, TRANSFORMS, METRICS)}
    assert ours == EXPECTED_MMAGIC
    assert MODELS.get('SRCNN').__module__ == 'plugins.classic.archs'


@pytest.mark.skipif(importlib.util.find_spec('mmengine') is None, reason='mmengine not installed')
def test_mmengine_hook_registrations():
    """Hooks go into mmengine's root registry, so the MMagic scope (and any other) finds them by name."""
    import plugins  # noqa: F401
    from mmagic.registry import HOOKS as MMAGIC_HOOKS
    from mmengine.registry import HOOKS
    ours = {n for n, obj in HOOKS.module_dict.items() if obj.__module__.startswith('plugins.')}
    assert ours == {'NonFiniteGuardHook', 'TorchRandomStateHook'}
    with MMAGIC_HOOKS.switch_scope_and_registry('mmagic') as registry:
        assert type(registry.build(dict(type='NonFiniteGuardHook', patience=3))).__name__ == 'NonFiniteGuardHook'


def test_srcnn_parameter_count_and_shape():
    """Seed 002's torchsummary table: 5,248 + 51,232 + 801 = 57,281 parameters for one (Y) channel."""
    import torch
    from plugins.classic.srcnn_arch import SRCNN
    net = SRCNN(num_in_ch=1, upscale=2)
    assert [p.numel() for p in net.parameters()] == [5184, 64, 51200, 32, 800, 1]
    assert sum(p.numel() for p in net.parameters()) == 57281
    assert net(torch.rand(2, 1, 21, 17)).shape == (2, 1, 42, 34)
    assert SRCNN(num_in_ch=3, upscale=1)(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)
    with pytest.raises(ValueError, match='odd'):
        SRCNN(kernel_sizes=(9, 4, 5))
