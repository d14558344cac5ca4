"""Each BasicSR-side patch of plugins/compat.py, with the upstream failure it works around.

The MMagic/mmengine patches are tested in test_mmagic.py."""
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO


def _python(code):
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_basicsr_imports_only_with_the_functional_tensor_alias():
    plain = _python('import basicsr')
    assert plain.returncode != 0 and "torchvision.transforms.functional_tensor" in plain.stderr
    patched = _python('import plugins, basicsr; from basicsr.data.degradations import rgb_to_grayscale; '
                      'import torchvision.transforms.functional as F; assert rgb_to_grayscale is F.rgb_to_grayscale')
    assert patched.returncode == 0, patched.stderr[-2000:]


def test_apply_is_idempotent():
    import plugins
    from basicsr.models.base_model import BaseModel
    before = BaseModel.model_to_device
    plugins.compat._APPLIED = False
    plugins.compat.apply()
    assert BaseModel.model_to_device is before


def test_distributed_init_uses_gloo_on_cpu(monkeypatch):
    """BasicSR's own _init_dist_pytorch divides by torch.cuda.device_count() (ZeroDivisionError on CPU)."""
    import plugins  # noqa: F401
    import basicsr.utils.dist_util as dist_util
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.distributed, 'init_process_group', lambda backend, **kw: calls.update(backend=backend))
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('LOCAL_RANK', '1')
    dist_util._init_dist_pytorch('nccl')
    assert calls == {'backend': 'gloo'}


def test_distributed_init_on_gpu_uses_local_rank_and_nccl(monkeypatch):
    """On a second node RANK is 8.., LOCAL_RANK 0..7: the device must come from LOCAL_RANK."""
    import plugins  # noqa: F401
    import basicsr.utils.dist_util as dist_util
    calls = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 8)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda d: calls.update(device=d))
    monkeypatch.setattr(torch.distributed, 'init_process_group', lambda backend, **kw: calls.update(backend=backend))
    monkeypatch.setenv('RANK', '11')
    monkeypatch.setenv('LOCAL_RANK', '3')
    dist_util._init_dist_pytorch('nccl')
    assert calls == {'device': 3, 'backend': 'nccl'}


def test_resume_state_loads_on_cpu_from_the_experiment_folder(tmp_path, monkeypatch):
    """BasicSR maps the state with torch.cuda.current_device() and looks relative to the working directory."""
    import plugins  # noqa: F401
    import basicsr.train
    states = tmp_path / 'exp' / 'training_states'
    states.mkdir(parents=True)
    for it in (5, 40, 200):
        torch.save({'epoch': 0, 'iter': it, 'optimizers': [], 'schedulers': []}, states / f'{it}.state')
    opt = {'auto_resume': True, 'path': {'training_states': str(states)}, 'num_gpu': 0}
    monkeypatch.chdir(tmp_path)  # not the experiment root
    monkeypatch.setattr(basicsr.train, 'check_resume', lambda opt, it: None)
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 200 and opt['path']['resume_state'].endswith('200.state')


def test_lmdb_is_below_2():
    import lmdb
    import plugins
    assert int(lmdb.__version__.split('.')[0]) < 2
    plugins.compat.check_lmdb_version()


def test_lmdb_version_check_names_the_fix(monkeypatch):
    import lmdb
    import plugins
    monkeypatch.setattr(lmdb, '__version__', '3.0.0')
    with pytest.raises(RuntimeError, match=r"pip install 'lmdb<2'"):
        plugins.compat.check_lmdb_version()


def test_basicsr_multi_validation_warning_is_dropped_and_nothing_else():
    """BasicSR warns at every validation with several validation sets that only SRModel supports them, though every
    model validates on each set: the basicsr logger drops that message only."""
    import logging

    import plugins  # noqa: F401
    from basicsr.utils import get_root_logger
    from plugins.compat.basicsr import MULTI_VALIDATION_WARNING
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = get_root_logger()
    logger.addHandler(handler)
    try:
        logger.warning(MULTI_VALIDATION_WARNING)
        logger.warning('Multiple validation datasets: something else')
    finally:
        logger.removeHandler(handler)
    assert seen == ['Multiple validation datasets: something else']
