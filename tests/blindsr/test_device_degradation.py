"""Degradation on the model's device (``degrade_on: device``): the workers draw, ``degrade_tasks`` degrades a batch
of tasks with batched (separable where the kernel allows) blurs, and the LR equals the worker path's
(``apply`` task by task, the code of ``degrade_on: worker``) for the same draws and the same random numbers."""
import math
import random

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

import plugins  # noqa: F401
from basicsr.data.degradations import bivariate_Gaussian, circular_lowpass_kernel
from plugins.blindsr.cmdsr_dataset import TaskDegradationDataset
from plugins.blindsr.degradations import (_filter, blur_tasks, build_degradation, degrade_tasks, encode_kernel,
                                          separable_factors)

torch.set_num_threads(1)
ONE_LEVEL = 1 / 255 + 1e-6


def _assert_same_lr(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """Equal 8-bit images, up to a rare one-level flip where a value lies within float rounding of a half level."""
    assert ours.shape == reference.shape
    diff = (ours - reference).abs()
    assert diff.max() <= ONE_LEVEL and (diff > 0).float().mean() < 1e-3, (diff.max(), (diff > 0).float().mean())


def test_separable_factors_of_rank_one_kernels_only():
    iso = bivariate_Gaussian(15, 2.0, 2.0, 0., isotropic=True)
    axis = bivariate_Gaussian(15, 1.0, 3.0, 0., isotropic=False)
    for kernel in (iso, axis, encode_kernel(None, 15)['weights']):
        factors = separable_factors(kernel)
        assert factors is not None and factors.shape == (2, 15) and (factors >= -1e-7).all()
        assert np.allclose(np.outer(factors[0], factors[1]), kernel, atol=1e-7)
    assert separable_factors(bivariate_Gaussian(15, 1.0, 3.0, 0.7, isotropic=False)) is None  # rotated
    assert separable_factors(circular_lowpass_kernel(math.pi / 2, 21)) is None  # sinc


@pytest.mark.parametrize('size', [40, 12, 5])  # 12 and 5: smaller than the 21x21 kernels, which are then cut
def test_blur_tasks_equals_filter2d_task_by_task(size):
    kernels = [bivariate_Gaussian(21, 2.5, 2.5, 0., isotropic=True),  # separable
               bivariate_Gaussian(21, 1.0, 3.0, 0.7, isotropic=False),  # rotated: full 2-D kernel
               bivariate_Gaussian(21, 0.6, 2.0, 0., isotropic=False),  # axis-aligned: separable
               circular_lowpass_kernel(math.pi / 3, 21)]
    torch.manual_seed(0)
    img = torch.rand(len(kernels), 3, 3, size, size + 3)
    batch = default_collate([encode_kernel(k, 21) for k in kernels])
    assert batch['separable'].tolist() == [True, False, True, False]
    reference = torch.stack([_filter(img[t], k.astype(np.float32)) for t, k in enumerate(kernels)])
    for separable in (batch['separable'].tolist(), [False] * 4, [True, False, False, False]):
        ours = blur_tasks(img, batch['weights'], batch['factors'], separable)
        assert torch.allclose(ours, reference, atol=2e-6), separable
    everything_separable = [0, 2]
    ours = blur_tasks(img[everything_separable], batch['weights'][everything_separable],
                      batch['factors'][everything_separable], [True, True])
    assert torch.allclose(ours, reference[everything_separable], atol=2e-6)


def _draws(kind_opt: dict, tasks: int, seed: int = 0):
    random.seed(seed)
    np.random.seed(seed)
    deg = build_degradation(kind_opt)
    return deg, [deg.sample() for _ in range(tasks)]


def _both_paths(deg, params, hr, scale=4):
    """LR of ``hr`` (T, P, 3, H, W) by ``apply`` task by task and by ``degrade_tasks``, each after the same seed and
    (paper) with one generator used in task order."""
    torch.manual_seed(1)
    generator = torch.Generator().manual_seed(2)
    reference = torch.stack([deg.apply(hr[t], p, scale, generator) for t, p in enumerate(params)])
    torch.manual_seed(1)
    generator = torch.Generator().manual_seed(2)
    return degrade_tasks(hr, default_collate([deg.encode(p) for p in params]), scale, generator), reference


def test_paper_tasks_on_the_device_equal_the_worker_path():
    deg, params = _draws({'type': 'paper', 'aniso_prob': 0.5, 'jpeg_prob': 0.5}, 6)
    params.append({'sigma_x': 0, 'sigma_y': 0, 'theta': 0, 'noise': 20, 'jpeg': None})  # no blur
    torch.manual_seed(0)
    hr = torch.rand(len(params), 4, 3, 32, 28)
    ours, reference = _both_paths(deg, params, hr)
    assert ours.shape == (7, 4, 3, 8, 7)
    _assert_same_lr(ours, reference)
    # the draws covered isotropic, rotated and no blur, noise and JPEG
    assert {p['sigma_x'] == p['sigma_y'] for p in params} == {True, False}
    assert any(p['jpeg'] for p in params) and any(p['noise'] for p in params)


@pytest.mark.parametrize('size', [64, 32])  # 32: strong down-resizes shrink the patches below the kernel size
def test_realesrgan_tasks_on_the_device_equal_the_worker_path(size):
    deg, params = _draws({'type': 'realesrgan'}, 6, seed=1)
    torch.manual_seed(0)
    hr = torch.rand(len(params), 2, 3, size, size)
    ours, reference = _both_paths(deg, params, hr)
    assert ours.shape == (6, 2, 3, size // 4, size // 4)
    _assert_same_lr(ours, reference)
    # the draws covered separable and full first kernels, up and down resizes, both noise kinds (Poisson in gray
    # too) in both steps, the final sinc or none, before or after JPEG
    assert {separable_factors(p['kernel1']) is None for p in params} == {True, False}
    assert {p['first']['resize'] < 1 for p in params} == {True, False}
    for step in ('first', 'second'):
        assert {p[step]['gaussian'] for p in params} == {True, False}
    assert any(not p['first']['gaussian'] and p['first']['gray'] for p in params)
    assert {p['sinc'] is None for p in params} == {True, False} and {p['sinc_first'] for p in params} == {True, False}


def test_dataset_gives_draws_that_degrade_like_the_worker(demo_data):
    """The device layout (HR + draws) degraded by ``degrade_tasks`` equals the worker layout (``lq``) item for item
    under the same seeds: the crops and draws use Python's and NumPy's generators, the noise torch's."""
    opt = {'name': 'tasks', 'dataroot_gt': f'{demo_data}/train/HR', 'io_backend': {'type': 'disk'}, 'scale': 4,
           'gt_size': 32, 'patches_per_task': 4, 'use_hflip': True, 'use_rot': True, 'cache_images': True,
           'degradation': {'type': 'paper', 'aniso_prob': 0.5}}
    batches = {}
    for mode in ('device', 'worker'):
        ds = TaskDegradationDataset(dict(opt, degrade_on=mode))
        random.seed(3)
        np.random.seed(3)
        torch.manual_seed(3)
        batch = default_collate([ds[i] for i in (0, 4, 2)])
        if mode == 'device':
            assert 'lq' not in batch and batch['degradation']['blur']['weights'].shape == (3, 15, 15)
            batch['lq'] = degrade_tasks(batch['gt'], batch['degradation'], 4)
        batches[mode] = batch
    assert torch.equal(batches['device']['gt'], batches['worker']['gt'])
    assert batches['device']['task'] == batches['worker']['task']
    _assert_same_lr(batches['device']['lq'], batches['worker']['lq'])


def test_bad_batches_are_refused():
    deg, params = _draws({'type': 'paper'}, 1)
    batch = default_collate([deg.encode(params[0])])
    batch['type'] = ['paper', 'bsrgan']
    with pytest.raises(ValueError, match='must be of one known type'):
        degrade_tasks(torch.rand(1, 2, 3, 16, 16), batch, 4)


def test_realesrnet_gt_usm_sharpens_target_and_lr_source_alike_on_both_paths(demo_data):
    """``gt_usm: true`` (Real-ESRNet's): the worker path sharpens the crops with BasicSR's ``USMSharp`` before
    degrading them and returns the sharpened target; ``CMDSRModel.degrade`` does the same on the device."""
    from types import SimpleNamespace

    from basicsr.utils.img_process_util import USMSharp
    from plugins.blindsr.cmdsr_model import CMDSRModel
    opt = {'name': 'tasks', 'dataroot_gt': f'{demo_data}/train/HR', 'io_backend': {'type': 'disk'}, 'scale': 4,
           'gt_size': 32, 'patches_per_task': 2, 'cache_images': True,
           'degradation': {'type': 'realesrgan', 'gt_usm': True}}
    batches = {}
    for mode, usm in (('device', True), ('worker', True), ('device', False)):
        ds = TaskDegradationDataset(dict(opt, degrade_on=mode, degradation=dict(opt['degradation'], gt_usm=usm)))
        random.seed(3)
        np.random.seed(3)
        torch.manual_seed(3)
        batch = default_collate([ds[i] for i in (0, 1)])
        if mode == 'device':
            raw = batch['gt']
            batch = CMDSRModel.degrade(SimpleNamespace(device=torch.device('cpu'), opt={'scale': 4}), batch)
            batch['raw'] = raw
        batches[(mode, usm)] = batch
    device, worker, plain = batches[('device', True)], batches[('worker', True)], batches[('device', False)]
    sharpened = USMSharp()(device['raw'].reshape(-1, 3, 32, 32)).reshape(device['raw'].shape)
    assert torch.allclose(device['gt'], sharpened, atol=1e-6) and torch.allclose(worker['gt'], sharpened, atol=1e-6)
    assert (sharpened - device['raw']).abs().max() > 0.02  # the demo crops have edges to sharpen
    _assert_same_lr(device['lq'], worker['lq'])
    assert torch.equal(plain['gt'], device['raw'])  # default: target as read
    assert (plain['lq'] - device['lq']).abs().max() > ONE_LEVEL  # and the LR made from it, not the sharpened one
