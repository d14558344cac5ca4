"""Task-grouped degradations and datasets of the blind SR line: one degradation per task, both families, folder
and LMDB HR, fixed reproducible evaluation tasks with self-cut support sets, self-support, bad options."""
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import plugins  # noqa: F401
from plugins.blindsr.cmdsr_dataset import FixedDegradationDataset, TaskDegradationDataset
from plugins.blindsr.degradations import (PaperDegradation, RealESRGANDegradation, apply_paper_degradation,
                                          build_degradation, degrade_tasks)
from plugins.blindsr.support import self_support_patches

torch.set_num_threads(1)


def _task_opt(demo_data, **extra):
    opt = {'name': 'tasks', 'dataroot_gt': f'{demo_data}/train/HR', 'io_backend': {'type': 'disk'}, 'scale': 4,
           'gt_size': 32, 'patches_per_task': 6, 'use_hflip': True, 'use_rot': True}
    opt.update(extra)
    return opt


def _is_8bit(x: torch.Tensor) -> bool:
    return torch.allclose(x * 255, (x * 255).round(), atol=1e-4) and x.min() >= 0 and x.max() <= 1


def test_one_paper_degradation_per_task(demo_data, monkeypatch):
    ds = TaskDegradationDataset(_task_opt(demo_data, degradation={'type': 'paper', 'noise_range': [0, 0],
                                                                  'aniso_prob': 0.5}, degrade_on='worker'))
    drawn = []
    sample = ds.degradation.sample
    monkeypatch.setattr(ds.degradation, 'sample', lambda: drawn.append(sample()) or drawn[-1])
    item = ds[0]
    assert item['lq'].shape == (6, 3, 8, 8) and item['gt'].shape == (6, 3, 32, 32) and _is_8bit(item['lq'])
    assert len(drawn) == 1 and item['task'] == PaperDegradation.describe(drawn[0])
    # all 6 patches were degraded with that one draw (noise-free here, so it is reproducible exactly)
    assert torch.allclose(item['lq'], apply_paper_degradation(item['gt'], drawn[0], 4), atol=1e-6)
    # the crops differ (random positions / flips), so the task is not one patch repeated
    assert not torch.allclose(item['gt'][0], item['gt'][1])


def test_lmdb_hr_and_patches_from_the_whole_set(demo_data):
    ds = TaskDegradationDataset(_task_opt(demo_data, dataroot_gt=f'{demo_data}/train/HR.lmdb',
                                          io_backend={'type': 'lmdb'}, patches_from='dataset', cache_images=True))
    assert len(ds) == 7
    item = ds[3]
    # degrade_on: device (the default): HR crops and the task's draws, degraded by the model
    assert 'lq' not in item and item['gt'].shape == (6, 3, 32, 32) and item['degradation']['type'] == 'paper'
    lq = degrade_tasks(item['gt'][None], default_collate([item['degradation']]), 4)
    assert lq.shape == (1, 6, 3, 8, 8) and _is_8bit(lq)


def test_realesrgan_degradation_is_shared_by_the_task():
    torch.manual_seed(0)
    deg = build_degradation({'type': 'realesrgan', 'gaussian_noise_prob': 1.0, 'noise_range': [0, 0],
                             'gaussian_noise_prob2': 1.0, 'noise_range2': [0, 0]})
    assert isinstance(deg, RealESRGANDegradation)
    params = deg.sample()
    assert params['kernel1'].shape == (21, 21) and abs(params['kernel1'].sum() - 1) < 1e-4
    patch = torch.rand(1, 3, 64, 64)
    out = deg.apply(torch.cat([patch, patch, torch.rand(1, 3, 64, 64)]), params, scale=4)
    assert out.shape == (3, 3, 16, 16) and _is_8bit(out)
    assert torch.allclose(out[0], out[1], atol=1e-6)  # same patch, same (noise-free) task degradation
    # another draw gives another degradation
    assert not torch.allclose(deg.apply(patch, deg.sample(), 4), out[:1], atol=1e-3)


def test_fixed_task_is_reproducible_with_self_cut_support(demo_data):
    opt = {'name': 'fixed', 'dataroot_gt': f'{demo_data}/val/HR', 'io_backend': {'type': 'disk'}, 'scale': 4,
           'blur_sigma': 2.6, 'kernel_size': 7, 'noise': 15, 'support_size': 5, 'support_patch': 12, 'gt_crop': 96}
    a, b = FixedDegradationDataset(opt)[1], FixedDegradationDataset(opt)[1]
    assert a['task'] == 'blur2.6_noise15'
    assert a['lq'].shape == (3, 24, 24) and a['gt'].shape == (3, 96, 96) and a['support'].shape == (5, 3, 12, 12)
    assert torch.equal(a['lq'], b['lq']) and torch.equal(a['support'], b['support'])
    # the support patches are pieces of the LR image itself
    lq = a['lq']
    assert any(torch.equal(a['support'][0], lq[:, y:y + 12, x:x + 12]) for y in range(13) for x in range(13))
    with pytest.raises(ValueError, match='gt_crop must be a multiple of scale 4'):
        FixedDegradationDataset(dict(opt, gt_crop=30))


def test_self_support_patches_cover_the_image():
    lr = torch.arange(3 * 20 * 30, dtype=torch.float32).reshape(3, 20, 30)
    patches = self_support_patches(lr, 6, 8)
    assert patches.shape == (6, 3, 8, 8)
    assert len({tuple(p[0, 0, :2].tolist()) for p in patches}) == 6  # six different places
    assert self_support_patches(lr, 3, 64).shape == (3, 3, 20, 20)  # shrunk to the image


@pytest.mark.parametrize('opt, message', [
    ({'patches_per_task': 5}, 'patches_per_task must be an even integer'),
    ({'patches_from': 'folder'}, "patches_from must be 'image' or 'dataset'"),
    ({'degradation': {'type': 'paper', 'sigma': 2}}, r"unknown degradation option\(s\) \['sigma'\]"),
    ({'degradation': {'type': 'bsrgan'}}, 'type must be one of'),
    ({'degradation': {'type': 'paper', 'sigma_range': [2, 1]}}, 'sigma_range must be'),
    ({'gt_size': 30}, 'gt_size must be an integer multiple of scale 4'),
    ({'degrade_on': 'gpu'}, r"degrade_on must be one of \('device', 'worker'\), got 'gpu'"),
])
def test_bad_dataset_options(demo_data, opt, message):
    with pytest.raises(ValueError, match=message):
        TaskDegradationDataset(_task_opt(demo_data, **opt))


def test_conditioned_training_lowers_the_l1_loss():
    """A few Adam steps of a small CMDSR on one task batch lower its L1 loss (BaseNet + ConditionNet train)."""
    from plugins.blindsr.cmdsr_arch import CMDSR
    torch.manual_seed(0)
    net = CMDSR(support_size=4, num_feat=8, num_block=1, res_init_scale=0.1)
    gt = torch.nn.functional.interpolate(torch.rand(8, 3, 8, 8), scale_factor=4, mode='bilinear')
    lq = torch.stack([apply_paper_degradation(gt[i * 4:i * 4 + 4], {'sigma_x': s, 'noise': 0}, 4)
                      for i, s in enumerate((0.5, 3.0))])  # 2 tasks x 4 patches
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = (net(lq.reshape(-1, 3, 8, 8), lq) - gt).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])
