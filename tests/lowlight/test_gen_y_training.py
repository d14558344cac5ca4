"""Gen_Y trained as the lab trains it (plugins/lowlight/lowlight_model.py): two RAdam optimizers that both update the
shared encoder, the 2-step stages, and resume of both optimizers, on small networks and the synthetic pairs."""
import copy
import math
import os.path as osp

import pytest
import torch

from tests.helpers import quick, run_options
from tests.lowlight.conftest import lowlight_workdir

import plugins  # noqa: F401
from basicsr.losses import build_loss
from plugins.lowlight.brightness import add_brightness_plane, luminance, mean_luminance
from plugins.lowlight.lowlight_model import LowLightModel

SMALL = {'features': [8, 8, 8, 8], 'spp_dim': 8}
LR = 1e-2
STEP1 = 'options/train/lowlight/gen_y_backbone7x7_share_2steps_gt_step1.yml'
STEP2 = 'options/train/lowlight/gen_y_backbone7x7_share_2steps_gt_step2.yml'


def _model(network='Gen_Y_Backbone7x7_Share', **train):
    """A training LowLightModel of a small Gen_Y network (Y pass at 1/2: inputs from 66 pixels) on the CPU."""
    torch.manual_seed(0)
    return LowLightModel({
        'name': 'gen_y', 'model_type': 'LowLightModel', 'num_gpu': 0, 'is_train': True, 'dist': False,
        'network_g': {'type': network, 'scale_factor': 0.5, **SMALL}, 'path': {}, 'brightness': {'mode': 'gt'},
        'train': {'optim_g': {'type': 'RAdam', 'lr': LR}, 'scheduler': {'type': 'MultiStepLR', 'milestones': []},
                  'pixel_opt': {'type': 'L1SSIMLoss'}, 'y_opt': {'type': 'L1Loss'}, **train}})


def _batch():
    g = torch.Generator().manual_seed(1)
    return {'lq': torch.rand(2, 3, 72, 72, generator=g) * 0.3, 'gt': torch.rand(2, 3, 72, 72, generator=g)}


def _names(net, params):
    ids = {id(p) for p in params}
    return {n for n, p in net.named_parameters() if id(p) in ids}


STEPS = 7  # RAdam is SGD with momentum (linear in the gradients) while rho_t <= 5, i.e. its first 5 steps


def test_two_optimizers_update_the_shared_encoder_twice_per_step():
    model = _model(optim_y={'type': 'RAdam', 'lr': LR})
    net = model.net_g
    paths = net.path_parameters()
    assert [type(o).__name__ for o in model.optimizers] == ['RAdam', 'RAdam']
    assert model.optimizers == [model.optimizer_g, model.optimizer_y]
    shared = _names(net, paths['y']) & _names(net, paths['output'])
    assert shared and all(n.startswith(('encoder.', 'spp.')) for n in shared)
    assert _names(net, paths['y']) | _names(net, paths['output']) == {n for n, _ in net.named_parameters()}

    # independent computation: a copy of the network, both gradients by torch.autograd.grad at the same parameters,
    # two RAdam optimizers stepped in the lab's order (Y, then output)
    ref = copy.deepcopy(net)
    ref_paths = ref.path_parameters()
    opt_y, opt_out = (torch.optim.RAdam(ref_paths[k], lr=LR) for k in ('y', 'output'))
    l1_ssim, l1 = build_loss({'type': 'L1SSIMLoss'}), build_loss({'type': 'L1Loss'})
    single = _model()  # the default: one optimizer on the sum of the losses
    batch = _batch()
    for it in range(1, STEPS + 1):
        for m in (model, single):
            m.feed_data(batch)
            m.optimize_parameters(it)
        y, out = ref(add_brightness_plane(batch['lq'], mean_luminance(batch['gt'])), return_aux=True)
        grads_y = torch.autograd.grad(l1(y, luminance(batch['gt'])), ref_paths['y'])
        grads_out = torch.autograd.grad(l1_ssim(out, batch['gt']), ref_paths['output'])
        for optimizer, params, grads in ((opt_y, ref_paths['y'], grads_y), (opt_out, ref_paths['output'], grads_out)):
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
    ours, theirs, one = dict(net.named_parameters()), dict(ref.named_parameters()), dict(single.net_g.named_parameters())
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-6, msg=name)
    for name, p in ours.items():  # each optimizer stepped each of its parameters once per iteration
        steps = [int(o.state[p]['step']) for o in (model.optimizer_y, model.optimizer_g) if p in o.state]
        assert steps == ([STEPS, STEPS] if name in shared else [STEPS]), name
    # the single optimizer gives the shared encoder other values once RAdam's adaptive steps begin (step 6)
    assert max((ours[n] - one[n]).abs().max().item() for n in shared) > 1e-4


@pytest.mark.parametrize('stage, trained, frozen', [('y', 'genY.', 'genO.'), ('output', 'genO.', 'genY.')])
def test_gen_y_stages_train_one_path(stage, trained, frozen):
    model = _model('Gen_Y_Backbone7x7', gen_y_stage=stage)
    before = {n: p.detach().clone() for n, p in model.net_g.named_parameters()}
    model.feed_data(_batch())
    model.optimize_parameters(1)
    changed = {n for n, p in model.net_g.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith(trained) for n in changed)
    assert all(torch.equal(p, before[n]) for n, p in model.net_g.named_parameters() if n.startswith(frozen))
    assert set(model.log_dict) == ({'l_y'} if stage == 'y' else {'l_pix', 'l_y'})


@pytest.mark.parametrize('train, message', [
    ({'gen_y_stage': 'out'}, "train:gen_y_stage must be one of ('joint', 'y', 'output'), got 'out'"),
    ({'gen_y_stage': 'y', 'optim_y': {'type': 'RAdam', 'lr': LR}}, 'train:optim_y trains the Y path alongside'),
    ({'scheduler_y': {'type': 'MultiStepLR', 'milestones': []}}, 'train:scheduler_y is the schedule of optim_y'),
    ({'optim_y': {'type': 'RAdam', 'lr': LR}, 'scheduler_y': {'type': 'StepLR'}}, 'train:scheduler_y: type must be'),
])
def test_bad_gen_y_training_options(train, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        _model(**train)


@pytest.fixture(scope='module')
def share_two_steps(tmp_path_factory, pairs, monkeypatch_module):
    """The Share network's 2-step rows, small, on the synthetic pairs: step 1 (2 iterations), step 2 from its
    checkpoint (2 iterations, state saved), and step 2 resumed to 3 iterations. Returns {run: (model, weights at
    build)} with the models tools/train.py built."""
    import basicsr.train
    built, original = [], basicsr.train.build_model

    def build_model(opt):
        model = original(opt)
        built.append((model, {k: v.clone() for k, v in model.net_g.state_dict().items()}))
        return model

    build_model._plugins_compat = True
    monkeypatch_module.setattr(basicsr.train, 'build_model', build_model)
    root = lowlight_workdir(tmp_path_factory.mktemp('gen_y') / 'work', pairs)
    small = {f'network_g:{k}': v for k, v in SMALL.items()}

    def run(rel, total_iter, args=()):
        overrides = {**quick(rel, total_iter=total_iter, every=2, batch=2, period=4), 'num_gpu': 0,
                     'datasets:train:gt_size': 144, **small}
        return run_options(rel, root, {k: v for k, v in overrides.items() if not k.startswith('val:')},
                           add=True, delete=['val'], args=args)

    run(STEP1, 2)
    step2 = run(STEP2, 2)
    run(STEP2, 3, args=['--auto_resume'])
    return dict(zip(('step1', 'step2', 'resumed'), built), state=step2.folder / 'training_states' / '2.state')


@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_two_steps_step1_trains_only_the_y_path(share_two_steps):
    model, start = share_two_steps['step1']
    y_path = _names(model.net_g, model.net_g.path_parameters()['y'])
    changed = {n for n, p in model.net_g.named_parameters() if not torch.equal(p, start[n])}
    # (a conv bias before an InstanceNorm has no gradient: not every Y-path parameter moves)
    assert changed and changed <= y_path and any(n.startswith('encoder.') for n in changed)


def test_two_steps_step2_starts_from_step1_with_the_y_optimizer_at_1e_6(share_two_steps):
    (first, _), (second, start) = share_two_steps['step1'], share_two_steps['step2']
    for name, value in first.net_g.state_dict().items():  # step 2 loaded step 1's final weights
        assert torch.equal(start[name], value), name
    assert second.optimizers == [second.optimizer_g, second.optimizer_y]
    assert [g['lr'] for g in second.optimizer_y.param_groups] == [1e-6]  # constant: scheduler_y
    # optim_g: the cosine decay over the period of 4 (BasicSR steps its schedulers from iteration 2 on)
    assert second.optimizer_g.param_groups[0]['lr'] == pytest.approx(4e-4 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_resume_restores_both_optimizers_states(share_two_steps):
    state = torch.load(share_two_steps['state'], map_location='cpu', weights_only=False)
    assert len(state['optimizers']) == len(state['schedulers']) == 2
    assert all(int(s['step']) == 2 for o in state['optimizers'] for s in o['state'].values())
    model, _ = share_two_steps['resumed']
    assert osp.basename(str(model.opt['path']['resume_state'])) == '2.state'
    for optimizer in (model.optimizer_g, model.optimizer_y):  # 2 steps restored + 1 after the resume
        assert {int(s['step']) for s in optimizer.state.values()} == {3}
    assert [g['lr'] for g in model.optimizer_y.param_groups] == [1e-6]
