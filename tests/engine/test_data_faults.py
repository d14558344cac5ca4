"""Data faults and checkpoint files, in-process: an unreadable image in a folder or an LMDB is named, then skipped
(and counted) or stops the run as ``on_data_fault`` says; checkpoints are written atomically; --auto_resume's
search skips unreadable states and network files."""
import glob
import os
import os.path as osp
import re
import shutil

import pytest
import torch


def _tiny_pairs(root, demo_data, count=3, hr='HR', lr='LR'):
    """``count`` demo x2 pairs copied to ``root/<hr>`` and ``root/<lr>``; returns the file names."""
    for sub, src in ((hr, 'train/HR_sub'), (lr, 'train/LR_bicubic_sub/X2')):
        os.makedirs(root / sub)
        for name in sorted(os.listdir(osp.join(demo_data, src)))[:count]:
            shutil.copy(osp.join(demo_data, src, name), root / sub / name)
    return sorted(os.listdir(root / hr))


def _dataset(root, policy, backend='disk', suffix=''):
    import basicsr.train
    opt = {'name': 'tiny', 'type': 'PairedImageDataset', 'phase': 'train', 'scale': 2, 'gt_size': 48,
           'use_hflip': False, 'use_rot': False, 'io_backend': {'type': backend}, 'on_data_fault': policy,
           'dataroot_gt': str(root / f'HR{suffix}'), 'dataroot_lq': str(root / f'LR{suffix}')}
    return basicsr.train.build_dataset(opt)  # BasicSR's build_dataset, with plugins.compat's policy wrapper


def _truncate(path):
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


def test_truncated_image_in_a_folder_stops_with_its_path(tmp_path, demo_data):
    from plugins.engine.errors import DataFaultError
    _tiny_pairs(tmp_path, demo_data)
    dataset = _dataset(tmp_path, 'stop')
    bad = dataset.paths[1]['lq_path']
    _truncate(bad)
    assert dataset[0]['gt'].shape == (3, 48, 48)
    with pytest.raises(DataFaultError, match=rf"datasets:train sample 1 .*: cannot decode image {bad} "
                       r"\(\d+ bytes\): truncated, corrupt, or not an image\. .*on_data_fault: skip"):
        dataset[1]


def test_skip_replaces_unreadable_samples_and_counts_them(tmp_path, demo_data):
    from plugins.engine import data_faults
    _tiny_pairs(tmp_path, demo_data)
    dataset = _dataset(tmp_path, 'skip')
    _truncate(dataset.paths[0]['gt_path'])
    os.remove(dataset.paths[1]['lq_path'])
    sample = dataset[0]  # 0 and 1 are unreadable: the next readable sample, 2, stands in
    assert sample['gt_path'] == dataset.paths[2]['gt_path'] and dataset.skipped.value == 2
    assert any('datasets:train: 2 unreadable sample(s) skipped' in line for line in data_faults.summary())
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=1)  # counted in a worker too
    # 2 more for sample 0, 1 more for sample 1
    assert next(iter(loader))['gt'].shape == (3, 3, 48, 48) and dataset.skipped.value == 5


def test_corrupt_and_missing_lmdb_values_are_named_by_key(tmp_path, demo_data):
    import lmdb
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    from plugins.engine.errors import DataFaultError
    names = _tiny_pairs(tmp_path, demo_data)
    keys = [osp.splitext(n)[0] for n in names]
    for sub in ('HR', 'LR'):
        make_lmdb_from_imgs(str(tmp_path / sub), str(tmp_path / f'{sub}.lmdb'), names, keys, multiprocessing_read=False)
    with lmdb.open(str(tmp_path / 'HR.lmdb'), map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(keys[0].encode(), txn.get(keys[0].encode())[:100])  # truncated value
        txn.delete(keys[2].encode())  # listed in meta_info.txt, absent from the database
    dataset = _dataset(tmp_path, 'stop', backend='lmdb', suffix='.lmdb')
    index = {p['gt_path']: i for i, p in enumerate(dataset.paths)}
    with pytest.raises(DataFaultError, match=rf"cannot decode image LMDB \S+HR\.lmdb key '{keys[0]}' \(100 bytes\)"):
        dataset[index[keys[0]]]
    with pytest.raises(DataFaultError, match=rf"cannot read LMDB \S+HR\.lmdb key '{keys[2]}': no such key"):
        dataset[index[keys[2]]]


def test_atomic_save_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    from plugins.engine import checkpoint_files as checkpoint_io
    path = tmp_path / 'net_g_4.pth'
    checkpoint_io.atomic_torch_save({'params': {'w': torch.ones(3)}}, str(path))

    def failing_write(data, *args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', failing_write)  # fails after part of the new file was written
    with pytest.raises(OSError, match='No space left'):
        checkpoint_io.atomic_torch_save({'params': {'w': torch.zeros(3)}}, str(path))
    assert torch.equal(torch.load(path)['params']['w'], torch.ones(3)) and os.listdir(tmp_path) == ['net_g_4.pth']


def test_resume_search_skips_states_whose_files_do_not_load(tmp_path):
    from plugins.engine.errors import CheckpointError
    from plugins.engine.basicsr.resume import find_resumable_state, load_training_state
    opt = {'network_g': {}, 'network_d': {}, 'path': {'models': str(tmp_path / 'models'),
                                                      'training_states': str(tmp_path / 'states')}}
    os.makedirs(tmp_path / 'models'), os.makedirs(tmp_path / 'states')
    for it in (4, 8, 12):
        torch.save({'iter': it}, tmp_path / 'states' / f'{it}.state')
        for net in ('g', 'd'):
            torch.save({'params': {}}, tmp_path / 'models' / f'net_{net}_{it}.pth')
    _truncate(tmp_path / 'models' / 'net_d_12.pth')
    (tmp_path / 'states' / '8.state').write_bytes(b'')
    path, skipped = find_resumable_state(opt, logger_warning=lambda line: None)
    assert path.endswith('4.state') and len(skipped) == 2
    assert 'iteration 12: ' in skipped[0] and 'net_d_12.pth' in skipped[0] and 'net_g_12' not in skipped[0]
    assert 'iteration 8: ' in skipped[1] and 'the file is empty' in skipped[1]
    with pytest.raises(CheckpointError, match=r'cannot resume from path:resume_state \S+8\.state: the file is empty'):
        load_training_state(str(tmp_path / 'states' / '8.state'))


# ---------------------------------------------------------------------------------------------------------
# pairs that do not fit: too small for the crop, GT not scale x LQ, a partner missing, LMDB keys that differ
# ---------------------------------------------------------------------------------------------------------
SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'


def _resize(path, size):
    import cv2
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (size, size), interpolation=cv2.INTER_AREA))


def _srcnn_on(root, policy, total_iter=2):
    from tests.helpers import quick
    overrides = quick(SRCNN_TRAIN, total_iter=total_iter, every=total_iter, batch=2)
    overrides.update({'datasets:train:dataroot_gt': str(root / 'HR'), 'datasets:train:dataroot_lq': str(root / 'LR'),
                      'datasets:train:on_data_fault': policy})
    return overrides


def test_a_later_pair_whose_scale_does_not_match_stops_the_run_naming_both_sizes(workdir, demo_data, capsys):
    from tests.helpers import run_options
    names = _tiny_pairs(workdir / 'pairs', demo_data)
    bad_lq = workdir / 'pairs' / 'LR' / names[2]
    _resize(bad_lq, 40)  # GT 96x96, LQ 40x40: not x2 (the options check reads the first pair only)
    run = run_options(SRCNN_TRAIN, workdir, _srcnn_on(workdir / 'pairs', 'stop'), name='x', capsys=capsys,
                      check=False, add=True)
    errors = [line for line in run.errors.splitlines() if line.startswith('error:')]
    assert run.status == 1 and 'Traceback' not in run.errors, run.errors[-3000:]
    assert len(errors) == 1 and str(bad_lq) in errors[0], errors
    assert (f'GT {workdir / "pairs" / "HR" / names[2]} is 96x96, LQ is 40x40: GT is not 2x LQ (scale 2). Fix or '
            'remove the file, or set datasets:train:on_data_fault: skip to train without it.') in errors[0]


def test_skip_trains_past_a_pair_smaller_than_the_crop_and_counts_it(workdir, demo_data, capsys):
    from tests.helpers import run_options
    names = _tiny_pairs(workdir / 'pairs', demo_data)
    _resize(workdir / 'pairs' / 'HR' / names[1], 40)
    _resize(workdir / 'pairs' / 'LR' / names[1], 20)  # x2, but LQ 20x20 < the 24x24 crop of gt_size 48
    run = run_options(SRCNN_TRAIN, workdir, _srcnn_on(workdir / 'pairs', 'skip', total_iter=4), name='x',
                      capsys=capsys, add=True)
    log = run.log('train_*.log')
    assert run.status == 0 and (run.models / 'net_g_latest.pth').is_file()
    assert re.search(r'Skipping datasets:train sample \d+ ', log), log[-3000:]
    assert (f"({{'lq_path': '{workdir / 'pairs' / 'LR' / names[1]}', 'gt_path': "
            f"'{workdir / 'pairs' / 'HR' / names[1]}'}}): GT {workdir / 'pairs' / 'HR' / names[1]} is 40x40, LQ is "
            '20x20: smaller than the training crop (GT 48x48, LQ 24x24)\n') in log
    skipped = re.search(r'datasets:train: (\d+) unreadable sample\(s\) skipped \(on_data_fault: skip\)', log)
    assert skipped and int(skipped.group(1)) >= 1, log[-3000:]


def test_a_missing_lq_partner_is_named_when_the_dataset_is_built(tmp_path, demo_data):
    from plugins.engine.errors import DataFaultError
    names = _tiny_pairs(tmp_path, demo_data)
    os.remove(tmp_path / 'LR' / names[1])
    with pytest.raises(DataFaultError, match=rf"^datasets:train: lq image {tmp_path / 'LR' / names[1]} is missing: "
                       rf"the partner of {tmp_path / 'HR' / names[1]} \(1 of 3 gt images have no lq partner in "
                       rf"{tmp_path / 'LR'}: {names[1]}\)$"):
        _dataset(tmp_path, 'skip')
    shutil.copy(tmp_path / 'LR' / names[0], tmp_path / 'LR' / names[1])
    shutil.copy(tmp_path / 'LR' / names[0], tmp_path / 'LR' / 'extra.png')
    with pytest.raises(DataFaultError, match=rf"^datasets:train: {tmp_path / 'LR'} has 1 lq image\(s\) without a gt "
                       rf"partner in {tmp_path / 'HR'}: extra\.png$"):
        _dataset(tmp_path, 'stop')


def test_lmdbs_whose_keys_differ_are_named_with_a_few_keys(tmp_path, demo_data):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    from plugins.engine.errors import DataFaultError
    names = _tiny_pairs(tmp_path, demo_data)
    keys = [osp.splitext(n)[0] for n in names]
    make_lmdb_from_imgs(str(tmp_path / 'HR'), str(tmp_path / 'HR.lmdb'), names, keys, multiprocessing_read=False)
    make_lmdb_from_imgs(str(tmp_path / 'LR'), str(tmp_path / 'LR.lmdb'), names[:2], keys[:2],
                        multiprocessing_read=False)
    with pytest.raises(DataFaultError, match=rf"^datasets:train: the gt LMDB {tmp_path / 'HR.lmdb'} and the lq LMDB "
                       rf"{tmp_path / 'LR.lmdb'} list different keys in meta_info.txt: 1 only in "
                       rf"{tmp_path / 'HR.lmdb'} \({keys[2]}\)$"):
        _dataset(tmp_path, 'stop', backend='lmdb', suffix='.lmdb')


# the same on the mmengine path
MMAGIC_SRCNN = 'options/mmagic/classic/srcnn_x2_demo.py'
MMAGIC_QUICK = ['train_cfg.max_iters=2', 'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=2',
                'default_hooks.checkpoint.save_best=None', 'default_hooks.logger.interval=1',
                'train_dataloader.num_workers=0', 'train_dataloader.batch_size=2']


def _mmagic_pairs(root, demo_data, count=3):
    """The same in the demo config's folder layout."""
    return _tiny_pairs(root, demo_data, count, hr='HR_sub', lr='LR_bicubic_sub/X2')


def test_an_empty_folder_stops_the_mmengine_run_naming_it(workdir, capsys):
    pytest.importorskip('mmagic')
    from tests.helpers import run_config
    for sub in ('HR_sub', 'LR_bicubic_sub/X2'):
        os.makedirs(workdir / 'empty' / sub)
    run = run_config(MMAGIC_SRCNN, workdir, args=['--work-dir', 'work_dirs/empty'], capsys=capsys, check=False,
                     cfg_options=[*MMAGIC_QUICK, f'train_dataloader.dataset.data_root={workdir / "empty"}'])
    assert run.status == 1 and 'Traceback' not in run.errors, run.errors[-3000:]
    assert (f'error: BasicImageDataset has no samples: nothing found in {workdir / "empty/LR_bicubic_sub/X2"}, '
            f'{workdir / "empty/HR_sub"} (an empty folder, or data_root / data_prefix pointing to the wrong '
            'place)\n') in run.errors


def test_mmengine_skip_trains_past_a_pair_whose_scale_does_not_match(workdir, demo_data):
    pytest.importorskip('mmagic')
    from tests.helpers import run_config
    root = workdir / 'pairs'
    names = _mmagic_pairs(root, demo_data)
    bad_lq = root / 'LR_bicubic_sub/X2' / names[1]
    _resize(bad_lq, 40)
    run_config(MMAGIC_SRCNN, workdir, args=['--work-dir', 'work_dirs/skip'],
               cfg_options=[*MMAGIC_QUICK, f'train_dataloader.dataset.data_root={root}',
                            'train_dataloader.on_data_fault=skip'])
    log = open(sorted(glob.glob(str(workdir / 'work_dirs/skip/*/*.log')))[-1]).read()
    assert (workdir / 'work_dirs/skip/iter_2.pth').is_file()
    assert re.search(rf'Skipping BasicImageDataset at {re.escape(str(root))} sample \d+ ', log), log[-3000:]
    assert (f'({bad_lq}, {root / "HR_sub" / names[1]}): GT {root / "HR_sub" / names[1]} is 96x96, LQ {bad_lq} is '
            '40x40: GT is not 2x LQ (scale 2)\n') in log
    assert re.search(rf'BasicImageDataset at {re.escape(str(root))}: \d+ unreadable sample\(s\) skipped', log)


def test_mmagic_crop_of_a_too_small_pair_names_both_files_and_sizes():
    pytest.importorskip('mmagic')
    import numpy as np
    from mmagic.datasets.transforms import PairedRandomCrop

    from plugins.engine.errors import DataFaultError
    results = {'img': np.zeros((20, 30, 3), np.uint8), 'gt': np.zeros((40, 60, 3), np.uint8), 'scale': 2,
               'img_path': 'lq/a.png', 'gt_path': 'gt/a.png'}
    with pytest.raises(DataFaultError, match=r'^GT gt/a\.png is 60x40, LQ lq/a\.png is 30x20: smaller than the '
                       r'training crop \(GT 48x48, LQ 24x24\)$'):
        PairedRandomCrop(gt_patch_size=48)(results)
