"""compat/mmengine.py: checkpoints of mmengine 0.10.7 load with torch >= 2.6's weights_only loader (exactly the
globals they need, getattr limited to HistoryBuffer's statistics), the patches land when mmengine's runner is imported,
and a config's text is formatted once. The launcher, atomic-checkpoint and data-fault patches are tested through runs
in tests/engine/."""
import pickle

import pytest
import torch


pytest.importorskip('mmengine')


def test_checkpoint_needs_exactly_the_allowed_globals(mmengine_srcnn_run):
    folder, _ = mmengine_srcnn_run
    path = str(folder / 'work' / 'iter_4.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []  # all allowed by plugins.compat
    allowed = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    finally:
        torch.serialization.add_safe_globals(allowed)
    assert needed == {'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray', 'numpy.dtype',
                      'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar', 'builtins.getattr'}
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    lr = ckpt['message_hub']['log_scalars']['train/lr']  # a HistoryBuffer, with its statistics methods
    assert len(lr.data[0]) == 4 and lr.statistics('min') == lr.current() < lr.statistics('max') == 1e-3
    assert ckpt['meta']['iter'] == 4


def test_weights_only_getattr_is_limited_to_history_buffer(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer

    class Reader:  # pickles as getattr(HistoryBuffer, '__init__')
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    torch.save({'x': Reader()}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError, match='is not allowed'):
        torch.load(tmp_path / 'evil.pth', weights_only=True)

    buffer = HistoryBuffer([1.0, 3.0], [1, 1])
    torch.save({'buffer': buffer}, tmp_path / 'ok.pth')
    loaded = torch.load(tmp_path / 'ok.pth', weights_only=True)['buffer']
    assert loaded.mean() == 2.0 and loaded.statistics('max') == 3.0


def test_the_patches_are_in_place_once_the_runner_is_imported():
    import mmengine.runner.runner as runner_module
    from mmengine.dist import utils as dist_utils
    from mmengine.fileio.backends.local_backend import LocalBackend
    assert runner_module.Runner.build_dataloader._plugins_compat
    assert dist_utils._init_dist_pytorch._plugins_compat
    assert LocalBackend.put.__module__ == 'plugins.compat.mmengine'
    assert runner_module.find_latest_checkpoint.__module__ == 'plugins.compat.mmengine'


def test_a_config_text_is_formatted_once_and_as_yapf_formats_it():
    import mmengine.runner  # noqa: F401  (applies the patch)
    from mmengine.config import Config
    from mmengine.config import config as config_module
    from yapf.yapflib.yapf_api import FormatCode
    text = 'model=dict(type="SRCNN",num_feat=[64,32])\n'
    style = dict(based_on_style="pep8", blank_line_before_nested_class_or_def=True)
    first = config_module.FormatCode(text, style_config=style)
    assert config_module.FormatCode(text, style_config=style) is first  # kept, not formatted again
    assert first == FormatCode(text, style_config=style)  # and the same as yapf's own result
    assert 'SRCNN' in Config(dict(model=dict(type='SRCNN'))).pretty_text
