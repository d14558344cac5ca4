"""Two-node jobs simulated on this machine: two ``torchrun`` launches of one CPU process each (``--nnodes=2``,
gloo), on a loopback endpoint; the BasicSR nodes each in its own working directory as on two machines, the MMagic
nodes in one (mmengine's validation needs a shared folder, see that test). The static launch
(``--master_addr --master_port --node_rank``) on the BasicSR path, the c10d rendezvous (``--rdzv_backend=c10d
--rdzv_endpoint --rdzv_id``) on the MMagic path, and a node's launcher stopped in the middle of a rendezvous job.

Both ranks train the same steps: every DDP step all-reduces the gradients of both ranks, so a rank that stopped
early or went on would leave the other waiting at a collective until the collective timeout (60 s here), and the
job would exit non-zero; both launchers exit 0, and rank 0's log reaches the last iteration.
"""
import os
import re
import signal
import socket
import subprocess
import time
from typing import Optional

import pytest

from tests.conftest import make_workdir
from tests.helpers import ONE_THREAD, REPO, free_port, options, quick, torchrun_node, write_options

SRCNN_TRAIN = 'options/train/classic/srcnn_x2.yml'
INPAINT_CONFIG = os.path.join(REPO, 'options', 'mmagic', 'inpaint', 'base_demo.py')
COLLECTIVE_TIMEOUT_S = 60
LAUNCH_TIMEOUT_S = 600  # the machine is shared and busy: no assertion on how long a run takes
STOPPED_NODE_BOUND_S = 150  # the surviving node must exit within this bound after the other node's launcher is stopped


def _nodes(tmp_path, demo_data):
    """Working directories ``node0``, ``node1``, each with the demo data (two machines' file systems)."""
    folders = []
    for rank in (0, 1):
        folder = tmp_path / f'node{rank}'
        folder.mkdir()
        folders.append(make_workdir(folder, demo_data))
    return folders


def _start(cmd, folder, cwd=None):
    """Start a launcher in ``cwd`` (default: ``folder``), its output in ``folder``'s out.txt and err.txt."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **ONE_THREAD)
    with open(folder / 'out.txt', 'w') as out, open(folder / 'err.txt', 'w') as err:
        return subprocess.Popen([str(c) for c in cmd], cwd=str(cwd or folder), env=env, text=True, stdout=out,
                                stderr=err)


def _wait_for_port(port: int, proc, timeout: float = LAUNCH_TIMEOUT_S) -> None:
    """Wait until the rendezvous store of node 0 listens on ``port`` (node 0 then hosts it, as the endpoint's
    machine does on a cluster; with both launchers started at once either could)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f'node 0 did not open its rendezvous store on port {port} (exit status {proc.poll()})')


def _stop(procs) -> None:
    """Stop launchers still running (a failed test): SIGTERM, which torchrun forwards to its workers."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_two_nodes(commands, folders, store_port: Optional[int] = None, cwd=None):
    """Start node 0, then node 1 (after node 0's store listens on ``store_port``, for a rendezvous), in their
    folders (or both in ``cwd``), and wait for both; returns (exit statuses, outputs, error outputs)."""
    procs = []
    try:
        procs.append(_start(commands[0], folders[0], cwd))
        if store_port:
            _wait_for_port(store_port, procs[0])
        procs.append(_start(commands[1], folders[1], cwd))
        statuses = [proc.wait(LAUNCH_TIMEOUT_S) for proc in procs]
    finally:
        _stop(procs)
    return statuses, [(f / 'out.txt').read_text() for f in folders], [(f / 'err.txt').read_text() for f in folders]


def _no_error(statuses, errs):
    for rank, (status, err) in enumerate(zip(statuses, errs)):
        assert status == 0 and 'Traceback' not in err and not re.search(r'^(rank \d+: )?error: ', err, re.M), \
            f'node {rank} exited {status}:\n{err[-4000:]}'


def test_two_nodes_static_launch_basicsr_trains_on_both_and_ends_cleanly(tmp_path, demo_data):
    """SRCNN, 4 iterations of batch 4 per rank: ``torchrun --nnodes=2 --node_rank=N --master_addr=127.0.0.1
    --master_port=P --nproc_per_node=1 tools/train.py -opt X --launcher pytorch`` on two "nodes"."""
    folders = _nodes(tmp_path, demo_data)
    overrides = {**quick(SRCNN_TRAIN, total_iter=4, every=4, batch=4), 'dist_params:timeout': COLLECTIVE_TIMEOUT_S}
    port = free_port()
    commands = []
    for rank, folder in enumerate(folders):
        opt = write_options(SRCNN_TRAIN, folder / 'srcnn.yml', overrides)
        commands.append([*torchrun_node(rank, port), os.path.join(REPO, 'tools', 'train.py'), '-opt', opt,
                         '--launcher', 'pytorch'])
    statuses, outs, errs = _run_two_nodes(commands, folders)
    _no_error(statuses, errs)
    name = options(SRCNN_TRAIN)['name']
    (log_file,) = (folders[0] / 'experiments' / name).glob('train_*.log')
    log = log_file.read_text()
    assert re.search(r'world_size: 2', log) and re.search(r'iter:\s+4,', log) and 'End of training' in log, log[-3000:]
    assert 'Device: cpu, process group: gloo' in outs[0]  # the backend actually used
    assert re.search(r'backend: gloo', log) and not re.search(r'backend: nccl', log), log[:4000]
    # The checkpoint is written once, by rank 0 on node 0; node 1 has no experiment folder at all.
    assert {p.name for p in (folders[0] / 'experiments' / name / 'models').iterdir()} == {'net_g_4.pth',
                                                                                          'net_g_latest.pth'}
    assert not (folders[1] / 'experiments').exists()


def test_two_nodes_rendezvous_mmagic_inpaint_trains_on_both_and_ends_cleanly(tmp_path, demo_data):
    """The inpainting Base demo config, 4 iterations: ``torchrun --nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d
    --rdzv_endpoint=127.0.0.1:P --rdzv_id=JOB tools/train.py CONFIG --launcher pytorch`` on two "nodes"; the log
    names the process group used (gloo), not the config's nccl.

    The two nodes share one working directory, as on a cluster's shared file system: mmengine's metrics gather the
    ranks' validation results through files under ``.dist_test/`` there (``collect_device='cpu'``), so nodes
    without a shared working directory fail at the first validation (README, multi-node)."""
    pytest.importorskip('mmagic')
    shared = make_workdir(tmp_path, demo_data)
    folders = [shared / 'node0', shared / 'node1']  # each launcher's output files
    for folder in folders:
        folder.mkdir()
    port = free_port()
    cfg = ['train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
           'default_hooks.logger.interval=1', f'env_cfg.dist_cfg.timeout={COLLECTIVE_TIMEOUT_S}']
    commands = [[*torchrun_node(rank, port, rendezvous='c10d', job='inpaint2'), os.path.join(REPO, 'tools', 'train.py'),
                 INPAINT_CONFIG, '--launcher', 'pytorch', '--work-dir', 'work', '--cfg-options', *cfg]
                for rank in (0, 1)]
    statuses, outs, errs = _run_two_nodes(commands, folders, store_port=port, cwd=shared)
    _no_error(statuses, errs)
    (log_file,) = (shared / 'work').glob('*/*.log')
    log = log_file.read_text()
    assert 'Distributed training: True' in log and 'Iter(train) [4/4]' in log, log[-3000:]
    assert re.search(r'Iter\(val\) \[\d+/\d+\]\s+MAE: [\d.]+\s+PSNR: [\d.]+', log), log[-3000:]
    assert ('Distributed: process group gloo, world size 2, rank 0 on node 0 '
            '(env_cfg.dist_cfg.backend asks for nccl)') in log
    assert (shared / 'work' / 'iter_4.pth').is_file()


def test_stopping_one_nodes_launcher_ends_the_other_node_with_an_error(tmp_path, demo_data):
    """A c10d rendezvous job of two nodes on the BasicSR path: once training runs, node 1's launcher gets SIGTERM
    (what a scheduler sends; torchrun stops its worker), and node 0 must exit non-zero within
    ``STOPPED_NODE_BOUND_S``: its rank fails at the next all-reduce (the peer's connection is gone) with one
    ``rank 0: error:`` line, instead of training on or waiting forever."""
    folders = _nodes(tmp_path, demo_data)
    overrides = {**quick(SRCNN_TRAIN, total_iter=100000, every=100000, batch=4),
                 'dist_params:timeout': COLLECTIVE_TIMEOUT_S}
    port = free_port()
    procs = []
    try:
        for rank, folder in enumerate(folders):
            opt = write_options(SRCNN_TRAIN, folder / 'srcnn.yml', overrides)
            procs.append(_start([*torchrun_node(rank, port, rendezvous='c10d', job='stop1'),
                                 os.path.join(REPO, 'tools', 'train.py'), '-opt', opt, '--launcher', 'pytorch'],
                                folder))
            if rank == 0:
                _wait_for_port(port, procs[0])
        log_dir = folders[0] / 'experiments' / options(SRCNN_TRAIN)['name']
        end = time.monotonic() + LAUNCH_TIMEOUT_S
        while not any(re.search(r'iter:\s+3,', p.read_text()) for p in log_dir.glob('train_*.log')):
            assert time.monotonic() < end and procs[0].poll() is None and procs[1].poll() is None, \
                'the two-node job did not reach iteration 3'
            time.sleep(0.5)
        procs[1].send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        try:
            status = procs[0].wait(STOPPED_NODE_BOUND_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f'node 0 still runs {STOPPED_NODE_BOUND_S} s after node 1 was stopped') from None
        waited = time.monotonic() - stopped
        assert procs[1].wait(60) != 0
    finally:
        _stop(procs)
    err = (folders[0] / 'err.txt').read_text()
    assert status != 0, err[-3000:]
    assert re.search(r'^rank 0: error: ', err, re.M), err[-3000:]
    print(f'node 0 exited {status} {waited:.1f} s after node 1 was stopped')


def test_the_logged_options_name_the_backend_the_process_group_uses(tmp_path):
    """BasicSR logs its options after the process group is up: ``dist_params.backend`` then says gloo for CPU
    processes, not the options file's nccl (``devices.record_process_group``)."""
    import torch.distributed as dist

    from plugins.engine.basicsr.devices import record_process_group
    single = {'dist': False, 'dist_params': {'backend': 'nccl', 'timeout': 60}}
    record_process_group(single)
    assert single['dist_params']['backend'] == 'nccl'  # no process group: nothing to say
    opt = {'dist': True, 'dist_params': {'backend': 'nccl', 'timeout': 60}}
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        record_process_group(opt)
    finally:
        dist.destroy_process_group()
    assert opt['dist_params'] == {'backend': 'gloo', 'timeout': 60}
