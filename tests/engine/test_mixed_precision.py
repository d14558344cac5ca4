"""Mixed precision (``train: amp``), channels-last and torch.compile on BasicSR training
(``plugins/engine/basicsr/mixed_precision.py``, ``speed_options.py``), all on CPU: every line trains a few
iterations with bf16; fp16 with its gradient scaler (state saved, exact resume, the non-finite guard's view of skipped
steps); the scaler's mechanics on a toy model; the float32 islands; the low-light forward without per-step syncs.

Runs go through tools/train.py in this process (``run_options``) on tiny data and small networks, without validation.
"""
import importlib
import math
import os
import re
import shutil
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import build_once, make_workdir
from tests.helpers import options, quick, run_options

from plugins.engine.basicsr.mixed_precision import MixedPrecision, full_precision, unscale_gradients
from plugins.engine.nonfinite import gradients_finite

SRCNN = 'options/train/classic/srcnn_x2.yml'
SRGAN = 'options/train/classic/srgan_x4.yml'
CMDSR = 'options/train/blindsr/cmdsr_x4_demo.yml'
LOWLIGHT = 'options/train/lowlight/backbone7x7_demo.yml'
TEXTSR = 'options/train/textsr/demo_joint_synth.yml'


@pytest.fixture(scope='module')
def data(tmp_path_factory, demo_data, shared_dir):
    """Tiny data: 6 SRCNN training pairs (3 batches of 2 per epoch), low-light pairs and a synthetic TextZoom."""
    root = tmp_path_factory.mktemp('amp_data')
    for sub, src in (('HR', 'train/HR_sub'), ('LR', 'train/LR_bicubic_sub/X2')):
        os.makedirs(root / 'srcnn' / sub)
        for name in sorted(os.listdir(os.path.join(demo_data, src)))[:6]:
            shutil.copy(os.path.join(demo_data, src, name), root / 'srcnn' / sub / name)

    def lowlight(folder):
        from plugins.lowlight.synthetic_pairs import make_pairs
        make_pairs(str(folder), variants=1, max_side=160, seed=0)

    def textzoom(folder):
        from plugins.textsr.synthetic_textzoom import make_textzoom_like
        make_textzoom_like(str(folder), num_train=4, num_test=1, seed=1)

    return SimpleNamespace(srcnn=root / 'srcnn', lowlight=build_once(shared_dir, 'amp_lowlight_pairs', lowlight),
                           textzoom=build_once(shared_dir, 'amp_textzoom_synth', textzoom))


@pytest.fixture
def built(monkeypatch):
    """The models tools/train.py builds in this process (after our build_model patch installed its wrappers), each
    with ``conv_dtypes``: {name of a convolution of ``network_g``: the dtypes of its outputs in training mode}."""
    import basicsr.train
    models = []
    original = basicsr.train.build_model

    def build_model(opt):
        model = original(opt)
        model.conv_dtypes = {}
        for name, module in model.get_bare_model(model.net_g).named_modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(lambda m, args, out, name=name: model.conv_dtypes.setdefault(
                    name, set()).add(out.dtype) if m.training else None)
        models.append(model)
        return model

    build_model._plugins_compat = True
    monkeypatch.setattr(basicsr.train, 'build_model', build_model)
    return models


def _srcnn(data, total_iter=4, every=2, extra=None, loss=None):
    """SRCNN x2 on the 6 tiny pairs (crops of 32), no validation; ``loss``: the test-only ScriptedMSELoss."""
    overrides = {**quick(SRCNN, total_iter=total_iter, every=every, batch=2, period=total_iter), 'num_gpu': 0,
                 'datasets:train:gt_size': 32, 'datasets:train:dataroot_gt': str(data.srcnn / 'HR'),
                 'datasets:train:dataroot_lq': str(data.srcnn / 'LR')}
    if loss is not None:
        importlib.import_module('tests.engine.basicsr_fault_injection')  # registers ScriptedMSELoss
        overrides['train:pixel_opt'] = {'type': 'ScriptedMSELoss', **loss}
    overrides.update(extra or {})
    return dict(overrides=_no_val(overrides), delete=['val'], add=True)


def _no_val(overrides):
    """``overrides`` without the validation keys (the runs delete ``val``: no validation)."""
    return {k: v for k, v in overrides.items() if not k.startswith('val:')}


def _line(rel, data):
    """(options changes, working-directory setup) for a few-iteration run of each line's options with small
    networks."""
    base = {**_no_val(quick(rel, total_iter=3, every=3, batch=2)), 'num_gpu': 0}
    if rel == SRCNN:
        return _srcnn(data, total_iter=3, every=3), None
    if rel == SRGAN:  # from scratch, a 1-block SRResNet and a narrow discriminator on 128-pixel crops
        base.update({'path:pretrain_network_g': None, 'network_g:num_feat': 16, 'network_g:num_block': 1,
                     'network_d:num_feat': 8})
    if rel == CMDSR:
        base.update({'network_g:num_feat': 16, 'network_g:num_block': 2, 'network_g:support_size': 2,
                     'datasets:train:patches_per_task': 4, 'datasets:train:gt_size': 32,
                     'datasets:train:cache_images': False, 'datasets:train:degradation:kernel_size': 7})
    if rel == LOWLIGHT:
        base.update({'datasets:train:gt_size': 64})
        return dict(overrides=base, delete=['val']), lambda cwd: os.symlink(data.lowlight,
                                                                          cwd / 'datasets' / 'lowlight_demo')
    if rel == TEXTSR:
        base.update({'path:pretrain_network_g': None, 'network_rec:hidden': 32})
        return dict(overrides=base, delete=['val']), lambda cwd: os.symlink(data.textzoom,
                                                                          cwd / 'datasets' / 'textzoom_synth')
    return dict(overrides=base, delete=['val']), None


def _logged(log):
    """{iteration: {loss name: value}} of the message logger's lines."""
    found = {}
    for it, rest in re.findall(r'iter:\s+(\d+),.*?\]\s+(\S.*)', log):
        found[int(it)] = {k: float(v) for k, v in re.findall(r'(\w+): (\S+)', rest.split(']')[-1])}
    return found


# ------------------------------------------------------------------------------------------------ every line, bf16
@pytest.mark.parametrize('rel', [SRCNN, SRGAN, CMDSR, LOWLIGHT, TEXTSR],
                         ids=lambda p: os.path.basename(p)[:-4])
def test_every_line_trains_with_bf16_autocast_and_channels_last_to_finite_losses(rel, data, workdir, built):
    """A few iterations of each line with ``amp: bf16`` and ``channels_last: true`` (SRGAN's discriminator, the text
    recognizer and bridge keep their layout): finite losses, network_g's convolutions in bf16 and channels-last,
    float32 checkpoints."""
    changes, setup = _line(rel, data)
    changes['overrides'].update({'train:amp': 'bf16', 'train:channels_last': True})
    changes['add'] = True
    if setup:
        setup(workdir)
    run = run_options(rel, workdir, **changes)
    log = run.log('train_*.log')
    assert 'Mixed precision: bf16 autocast on cpu.' in log
    losses = _logged(log)
    assert set(losses) == {1, 2, 3} and all(losses[i] for i in losses), log[-2000:]
    assert all(math.isfinite(v) for i in losses for v in losses[i].values()), losses
    # every convolution of network_g ran in bf16, but the guided filter's box filter (a float32 island)
    model = built[0]
    dtypes = model.conv_dtypes
    assert dtypes and all(d == ({torch.float32} if n.endswith('filter.box_filter') else {torch.bfloat16})
                          for n, d in dtypes.items()), dtypes
    convs = [m for m in model.get_bare_model(model.net_g).modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert any(not m.weight.is_contiguous() for m in convs)  # not only layouts that fit both formats
    if model.lq.shape[1] > 1:  # (one channel fits both layouts)
        assert model.lq.is_contiguous(memory_format=torch.channels_last) and not model.lq.is_contiguous()
    saved = torch.load(run.models / 'net_g_latest.pth', map_location='cpu')
    params = saved.get('params', saved)
    assert all(v.dtype == torch.float32 for v in params.values() if v.is_floating_point())  # weights stay float32


# ------------------------------------------------------------------------------------------------ fp16, the scaler
def _copy_up_to(src, dst, iteration):
    """A copy of an experiment folder as a run killed after saving ``iteration`` would leave it."""
    shutil.copytree(src, dst)
    for path in list((dst / 'training_states').iterdir()) + list((dst / 'models').iterdir()):
        number = re.search(r'(\d+|latest)\.(state|pth)$', path.name).group(1)
        if number == 'latest' or int(number) > iteration:
            path.unlink()


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_resume_continues_exactly_with_mixed_precision(amp, data, tmp_path, demo_data):
    """6 iterations straight vs. resumed from the state of iteration 2 (inside the first 3-batch epoch): the same
    weights, EMA and optimizer moments. With fp16 a loss weight of 3 makes the scaler skip the first two steps, so
    the saved loss scale is no longer the initial one: a resume that did not restore it would skip steps again."""
    loss = {'loss_weight': 3.0 if amp == 'fp16' else 1.0}  # fp16: the scaler skips iterations 1 and 2 (measured)
    changes = _srcnn(data, total_iter=6, every=2, extra={'train:amp': amp}, loss=loss)
    straight = run_options(SRCNN, make_workdir(tmp_path / 'straight', demo_data), **changes, name='x')
    state_2 = torch.load(straight.folder / 'training_states' / '2.state', map_location='cpu')
    if amp == 'fp16':
        assert state_2['amp_scaler']['scale'] < 65536.0, state_2['amp_scaler']  # the scaler skipped steps
        assert 'iteration 2: the gradient scaler skipped the step of optimizer_g' in straight.log('train_*.log')
        assert 'iteration 3: the gradient scaler skipped' not in straight.log('train_*.log')
    else:
        assert 'amp_scaler' not in state_2
    resumed_dir = make_workdir(tmp_path / 'resumed', demo_data)
    _copy_up_to(straight.folder, resumed_dir / 'experiments' / straight.folder.name, 2)
    resumed = run_options(SRCNN, resumed_dir, **changes, name='x', args=['--auto_resume'])
    log = resumed.log('train_*.log')
    assert 'skipping its first 2 of 3 batches, generator states restored: True' in log
    assert 'iteration 3: the gradient scaler skipped' not in log  # the restored scale fits from the start
    a, b = (torch.load(r.models / 'net_g_6.pth', map_location='cpu') for r in (straight, resumed))
    for key in ('params', 'params_ema'):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    sa, sb = (torch.load(r.folder / 'training_states' / '6.state', map_location='cpu') for r in (straight, resumed))
    for name, moment in sa['optimizers'][0]['state'][0].items():
        assert torch.equal(moment, sb['optimizers'][0]['state'][0][name]), name
    assert sa.get('amp_scaler') == sb.get('amp_scaler')


def test_fp16_guard_counts_a_nan_loss_and_not_a_scaler_skipped_step(data, workdir, capsys):
    """fp16 with a loss large enough for the scaler to skip the first steps (inf in the scaled gradients), and a NaN
    loss at iteration 5: only iteration 5 is a bad iteration for the guard, and its warning says the scaler skipped
    the step."""
    changes = _srcnn(data, total_iter=6, every=6, extra={'train:amp': 'fp16', 'train:nonfinite_patience': 2},
                     loss={'loss_weight': 3.0, 'nan_calls': [5]})  # the scaler skips iterations 1 and 2 (measured)
    run = run_options(SRCNN, workdir, **changes, capsys=capsys)
    log = run.log('train_*.log')
    skipped = [int(i) for i in re.findall(r'Mixed precision \(fp16\): iteration (\d+): the gradient scaler skipped',
                                          log)]
    assert skipped == [1, 2, 5], log[-3000:]
    assert re.findall(r'Non-finite loss at iteration (\d+)', log) == ['5'], log[-3000:]
    assert ('Non-finite loss at iteration 5 (l_pix=nan): the fp16 gradient scaler skipped the step of optimizer_g '
            '[1 in a row') in log
    assert 'Non-finite guard: 1 iteration(s) had a non-finite loss or gradient and were skipped' in log
    assert torch.load(run.folder / 'training_states' / '6.state')['amp_scaler']['scale'] < 65536.0


# ------------------------------------------------------------------------------------------------ channels-last, compile
def test_channels_last_and_compile_train_and_save_plain_keys(data, workdir, built):
    """SRCNN with channels-last, bf16 and ``compile: {backend: eager}`` (dynamo's tracing without code generation,
    seconds on CPU): the training forward runs the compiled graph, and the checkpoints hold the plain network's keys
    (no ``_orig_mod.``), as do the EMA copy's."""
    from torch._dynamo.eval_frame import OptimizedModule
    from torch._dynamo.utils import counters
    counters.clear()
    changes = _srcnn(data, total_iter=2, every=2, extra={'train:channels_last': True, 'train:amp': 'bf16',
                                                         'train:compile': {'backend': 'eager'}})
    run = run_options(SRCNN, workdir, **changes)
    model = built[0]
    assert isinstance(model.net_g, OptimizedModule) and counters['stats']['unique_graphs'] >= 1
    assert all(math.isfinite(v) for it in _logged(run.log('train_*.log')).values() for v in it.values())
    bare = model.get_bare_model(model.net_g)
    assert not isinstance(bare, OptimizedModule)
    for net in (bare, model.net_g_ema):  # (64 -> 32 channels: the first conv's 1 input channel fits both layouts)
        assert net.mapping.weight.is_contiguous(memory_format=torch.channels_last)
        assert not net.mapping.weight.is_contiguous()
    from plugins.classic.srcnn_arch import SRCNN as SRCNNArch
    net_opt = {k: v for k, v in options(SRCNN)['network_g'].items() if k != 'type'}
    plain = set(SRCNNArch(**net_opt).state_dict())
    for name in ('net_g_2.pth', 'net_g_latest.pth'):
        saved = torch.load(run.models / name, map_location='cpu')
        assert set(saved['params']) == set(saved['params_ema']) == plain, name
    assert "network_g compiled with torch.compile(backend='eager')." in run.log('train_*.log')


@pytest.mark.parametrize('key, value, message', [
    ('amp', 'fp32', "train:amp must be bf16, fp16 or false, got 'fp32'"),
    ('amp', True, 'train:amp must be bf16, fp16 or false, got True'),
    ('channels_last', 'yes', "train:channels_last must be true or false, got 'yes'"),
    ('compile', {'backend': 'nope'}, "train:compile:backend 'nope' is not a torch.compile backend"),
    ('compile', {'mode': 'fastest'}, "train:compile:mode 'fastest' is not one of default"),
    ('compile', {'backed': 'eager'}, "train:compile has unknown keys ['backed']"),
])
def test_bad_speed_options_are_refused_with_one_line(key, value, message, data, workdir, capsys):
    run = run_options(SRCNN, workdir, **_srcnn(data, extra={f'train:{key}': value}), capsys=capsys, check=False)
    assert run.status == 2, run.errors
    errors = [line for line in run.errors.splitlines() if line.strip()]
    assert len(errors) == 1 and message in errors[0], run.errors
    assert not (workdir / 'experiments').exists()


# ------------------------------------------------------------------------------------------------ the scaler's mechanics
class _Toy:
    """What MixedPrecision needs of a BasicSR model: two linear layers, each with its own SGD optimizer, and an
    ``optimize_parameters`` given per test."""

    def __init__(self, step_fn):
        torch.manual_seed(0)
        self.device = torch.device('cpu')
        self.net_a, self.net_b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 1)
        self.optimizer_a = torch.optim.SGD(self.net_a.parameters(), lr=0.1)
        self.optimizer_b = torch.optim.SGD(self.net_b.parameters(), lr=0.1)
        self.optimizers = [self.optimizer_a, self.optimizer_b]
        self.x = torch.randn(4, 8)
        self.step_fn = step_fn
        self.log_dict = {}

    def optimize_parameters(self, current_iter):
        self.step_fn(self)


def _alternating(model):
    """SRGAN's pattern (one optimizer, then the other on a loss computed after the first stepped) and CMDSR's (one
    optimizer stepped twice in an iteration)."""
    for optimizer, net in ((model.optimizer_a, model.net_a), (model.optimizer_a, model.net_a),
                           (model.optimizer_b, model.net_b)):
        optimizer.zero_grad()
        out = model.net_b(model.net_a(model.x)) if net is model.net_a else model.net_b(model.net_a(model.x).detach())
        (out.float() ** 2).mean().backward()
        optimizer.step()


class _NoLog:
    def info(self, *args):
        pass

    warning = info


def _moves(model, initial):
    """{parameter name: how far it moved from ``initial``}."""
    return {f'{n}.{k}': v - initial[f'{n}.{k}'] for n in ('net_a', 'net_b')
            for k, v in getattr(model, n).state_dict().items()}


def _initial(model):
    return {f'{n}.{k}': v.clone() for n in ('net_a', 'net_b') for k, v in getattr(model, n).state_dict().items()}


def _assert_moved_alike(model, reference, initial):
    """Each parameter moved as in float32 up to 16-bit rounding (5% of its move); an unscaled or twice-unscaled
    gradient would move it 65536 times too far or not at all, stale weights in a forward in another direction."""
    got, expected = _moves(model, initial), _moves(reference, initial)
    for name, move in expected.items():
        assert move.norm() > 0 and ((got[name] - move).norm() / move.norm()) < 0.05, name


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
def test_steps_in_turn_and_twice_per_iteration_move_the_weights_as_in_float32(dtype):
    """Three steps per iteration (optimizer a twice, then b, each after a forward with the weights the previous
    step left), three iterations: no 'step() has already been called since the last update()', no step skipped, and
    every weight moves as with float32 SGD."""
    reference, amp_model = _Toy(_alternating), _Toy(_alternating)
    initial = _initial(reference)
    amp = MixedPrecision(amp_model, dtype, _NoLog())
    for it in range(1, 4):
        reference.optimize_parameters(it)
        amp_model.optimize_parameters(it)
        assert amp.skipped_steps == []
    _assert_moved_alike(amp_model, reference, initial)
    assert amp.scaler is None if dtype == torch.bfloat16 else amp.scaler.get_scale() == 65536.0


def test_unscale_gradients_lets_clipping_see_the_true_gradients():
    seen = {}

    def clipped(model):
        model.optimizer_a.zero_grad()
        (model.net_b(model.net_a(model.x)).float() ** 2).mean().backward()
        unscale_gradients(model, model.optimizer_a)
        seen['norm'] = torch.nn.utils.clip_grad_norm_(model.net_a.parameters(), 1e9)
        model.optimizer_a.step()

    reference, amp_model = _Toy(clipped), _Toy(clipped)
    initial = _initial(reference)
    MixedPrecision(amp_model, torch.float16, _NoLog())
    reference.optimize_parameters(1)
    true_norm = seen['norm']
    amp_model.optimize_parameters(1)
    torch.testing.assert_close(seen['norm'], true_norm, rtol=1e-2, atol=0)  # not 65536 times it
    moves = _moves(amp_model, initial)
    for name, move in _moves(reference, initial).items():
        if name.startswith('net_a'):  # unscaled once, not twice
            assert ((moves[name] - move).norm() / move.norm()) < 0.05, name


def test_fused_gradient_check_finds_nan_and_inf_and_passes_large_finite_values():
    p = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([p, torch.nn.Parameter(torch.zeros(2))], lr=1)
    p.grad = torch.tensor([1e30, -1e30, 3.0])
    assert gradients_finite(optimizer)
    for bad in (float('nan'), float('inf'), -float('inf')):
        p.grad = torch.tensor([1.0, bad, 0.0])
        assert not gradients_finite(optimizer), bad


# ------------------------------------------------------------------------------------------------ float32 islands
def test_float32_islands_compute_in_float32_under_autocast():
    """Each island, given the 16-bit tensors autocast layers produce (and float32 data), returns under bf16 autocast
    exactly its float32 result on the same values, in float32; ConvGuidedFilter's A comes from its autocast 1x1
    convs, its statistics and output are float32."""
    from plugins.blindsr.contrastive_loss import TaskContrastiveLoss
    from plugins.lowlight.guided_fast_path import guided_output
    from plugins.lowlight.guided_filter import ConvGuidedFilter, FastGuidedFilter, GuidedFilter
    from plugins.lowlight.l1_ssim_loss import L1SSIMLoss
    from plugins.textsr.stn import TPSSpatialTransformer
    from plugins.textsr.textsr_loss import TextCTCLoss
    torch.manual_seed(0)
    bf16 = lambda *shape: torch.rand(*shape).bfloat16()  # noqa: E731  (an autocast layer's output)
    weights = [torch.randn(16, 3), torch.randn(16, 1), torch.randn(3, 16), torch.randn(3, 1)]
    islands = {  # name: (function, its inputs)
        'GuidedFilter': (GuidedFilter(2, 1e-3), [bf16(2, 3, 24, 24), bf16(2, 3, 24, 24)]),
        'FastGuidedFilter': (FastGuidedFilter(2, 1e-3), [bf16(2, 3, 24, 24), bf16(2, 3, 24, 24),
                                                         bf16(2, 3, 48, 48)]),
        'guided_output': (lambda a, b, guide: guided_output(a, b, guide, weights, (40, 44)),
                          [bf16(2, 3, 24, 24), torch.rand(2, 3, 24, 24), torch.rand(2, 3, 48, 48)]),
        'L1SSIMLoss': (L1SSIMLoss(), [bf16(2, 3, 24, 24), torch.rand(2, 3, 24, 24)]),
        'TPSSpatialTransformer': (lambda image, points: TPSSpatialTransformer((16, 32))(image, points)[0],
                                  [bf16(2, 3, 48, 48), bf16(2, 20, 2)]),
        'TextCTCLoss': (lambda scores: TextCTCLoss()(scores, ['abc', 'de']), [torch.randn(26, 2, 37).bfloat16()]),
        'TaskContrastiveLoss': (lambda f1, f2: TaskContrastiveLoss()(f1, f2, torch.tensor([1, 2, 0]))[0],
                                [torch.randn(3, 128).bfloat16(), torch.randn(3, 128).bfloat16()]),
    }
    for name, (function, inputs) in islands.items():
        expected = function(*[t.float() for t in inputs])
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = function(*inputs)
        assert got.dtype == torch.float32, name
        assert torch.equal(got, expected), name
    cgf = ConvGuidedFilter()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        a, b = cgf.coefficients(bf16(2, 3, 24, 24), bf16(2, 3, 24, 24))
        out = cgf(bf16(2, 3, 24, 24), bf16(2, 3, 24, 24), bf16(2, 3, 48, 48))
    assert a.dtype == torch.bfloat16 and b.dtype == out.dtype == torch.float32
    with full_precision('meta'):  # a device without autocast: nothing to turn off
        pass


# ------------------------------------------------------------------------------------------------ low-light syncs
def test_lowlight_forward_checks_the_brightness_plane_in_eval_mode_only():
    """In training the plane comes from the data and is not checked (reading a check would wait for the device at
    every step; a non-finite plane gives a non-finite loss, which the guard counts); in eval mode it is."""
    from plugins.lowlight.backbone7x7_arch import Backbone7x7
    from plugins.lowlight.brightness import add_brightness_plane
    net = Backbone7x7()
    x = add_brightness_plane(torch.rand(1, 3, 64, 64), torch.full((1, 1, 1, 1), float('nan')))
    out = net(x)
    assert not torch.isfinite(out).all()
    net.eval()
    with pytest.raises(ValueError, match='brightness plane .* non-finite'):
        net(x)
