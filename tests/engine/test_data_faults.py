"""Data faults and checkpoint files, in-process: an unreadable image in a folder or an LMDB is named, then skipped
(and counted) or stops the run as ``on_data_fault`` says; checkpoints are written atomically; --auto_resume's
search skips unreadable states and network files."""
import os
import os.path as osp
import shutil

import pytest
import torch


def _tiny_pairs(root, demo_data, count=3):
    for sub, src in (('HR', 'train/HR_sub'), ('LR', 'train/LR_bicubic_sub/X2')):
        os.makedirs(root / sub)
        for name in sorted(os.listdir(osp.join(demo_data, src)))[:count]:
            shutil.copy(osp.join(demo_data, src, name), root / sub / name)
    return sorted(os.listdir(root / 'HR'))


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
