"""TextZoom TSRN checkpoints into ours (plugins/textsr/reference_checkpoints.py, tools/convert_checkpoint.py).

The input state dicts are built here from TextZoom's naming and shapes (src/model/tsrn.py, recognizer/stn_head.py,
recognizer/tps_spatial_transformer.py), written out key by key, not from our model. The comparison of outputs with
TextZoom's own TSRN is a measurement outside the suite (docs/textsr.md records it)."""
import importlib.util
import os.path as osp
from collections import OrderedDict

import pytest
import torch
import yaml

import plugins  # noqa: F401  (registrations)
from plugins.engine.errors import OptionsError
from plugins.textsr.reference_checkpoints import convert_textzoom_tsrn
from plugins.textsr.tsrn_arch import TSRN
from tests.helpers import REPO


def _conv(state, name, cout, cin, k):
    state[f'{name}.weight'] = torch.randn(cout, cin, k, k)
    state[f'{name}.bias'] = torch.randn(cout)


def _bn(state, name, c):
    state[f'{name}.weight'], state[f'{name}.bias'] = torch.rand(c) + 0.5, torch.randn(c)
    state[f'{name}.running_mean'], state[f'{name}.running_var'] = torch.randn(c), torch.rand(c) + 0.5
    state[f'{name}.num_batches_tracked'] = torch.tensor(7)


def _gru(state, name, c):
    for suffix in ('', '_reverse'):
        state[f'{name}.weight_ih_l0{suffix}'] = torch.randn(3 * (c // 2), c)
        state[f'{name}.weight_hh_l0{suffix}'] = torch.randn(3 * (c // 2), c // 2)
        state[f'{name}.bias_ih_l0{suffix}'] = torch.randn(3 * (c // 2))
        state[f'{name}.bias_hh_l0{suffix}'] = torch.randn(3 * (c // 2))


def textzoom_tsrn_state(hidden_units=32, srb_nums=5, in_planes=4, stn=True, upsample=1, lr_size=(16, 64)):
    """A state dict with the keys and shapes of TextZoom's TSRN(scale_factor=2**upsample, STN=stn, srb_nums,
    mask=in_planes == 4, hidden_units), in its module order, random values."""
    torch.manual_seed(0)
    c, s = 2 * hidden_units, OrderedDict()
    _conv(s, 'block1.0', c, in_planes, 9)
    s['block1.1.weight'] = torch.rand(1)  # PReLU
    for i in range(srb_nums):
        b = f'block{i + 2}'
        _conv(s, f'{b}.conv1', c, c, 3)
        _bn(s, f'{b}.bn1', c)
        _conv(s, f'{b}.gru1.conv1', c, c, 1)
        _gru(s, f'{b}.gru1.gru', c)
        _conv(s, f'{b}.conv2', c, c, 3)
        _bn(s, f'{b}.bn2', c)
        _conv(s, f'{b}.gru2.conv1', c, c, 1)
        _gru(s, f'{b}.gru2.gru', c)
    _conv(s, f'block{srb_nums + 2}.0', c, c, 3)
    _bn(s, f'block{srb_nums + 2}.1', c)
    for k in range(upsample):
        _conv(s, f'block{srb_nums + 3}.{k}.conv', 4 * c, c, 3)
    _conv(s, f'block{srb_nums + 3}.{upsample}', in_planes, c, 9)
    if stn:
        h, w = lr_size
        s['tps.inverse_kernel'] = torch.randn(23, 23)
        s['tps.padding_matrix'] = torch.zeros(3, 2)
        s['tps.target_coordinate_repr'] = torch.randn(h * w, 23)
        s['tps.target_control_points'] = torch.rand(20, 2)
        for j, (cin, cout) in enumerate([(in_planes, 32), (32, 64), (64, 128), (128, 256), (256, 256), (256, 256)]):
            _conv(s, f'stn_head.stn_convnet.{2 * j}.0', cout, cin, 3)
            _bn(s, f'stn_head.stn_convnet.{2 * j}.1', cout)
        s['stn_head.stn_fc1.0.weight'], s['stn_head.stn_fc1.0.bias'] = torch.randn(512, 512), torch.randn(512)
        _bn(s, 'stn_head.stn_fc1.1', 512)
        s['stn_head.stn_fc2.weight'], s['stn_head.stn_fc2.bias'] = torch.randn(40, 512), torch.randn(40)
    return s


def _load_line(how: str) -> dict:
    """The network_g mapping of the converter's 'load with network_g: {...} and path: ...' line."""
    return yaml.safe_load(how[how.index('network_g: ') + len('network_g: '):how.index(' and path:')])


def test_textzoom_tsrn_checkpoint_converts_key_by_key():
    theirs = textzoom_tsrn_state()
    saved = {'state_dict_G': theirs, 'info': {'arch': 'tsrn', 'iters': 200}, 'param_num': 0}  # TextZoom's wrapping
    converted, how = convert_textzoom_tsrn(saved)
    options = _load_line(how)
    assert options == {'type': 'TSRN', 'scale': 2, 'in_ch': 4, 'num_feat': 64, 'num_block': 5, 'stn': True,
                       'lr_size': [16, 64]}
    assert 'pretrain_network_g' in how and 'param_key_g: params' in how
    net = TSRN(**{k: v for k, v in options.items() if k != 'type'})
    net.load_state_dict(converted['params'], strict=True)  # every tensor of ours, nothing else
    ours = net.state_dict()
    pairs = {'block1.0.weight': 'head.0.weight', 'block1.1.weight': 'head.1.weight',
             'block3.conv2.weight': 'blocks.1.body.3.weight', 'block3.bn1.running_var': 'blocks.1.body.1.running_var',
             'block6.gru1.conv1.bias': 'blocks.4.gru_height.conv1.bias',
             'block2.gru2.gru.weight_hh_l0_reverse': 'blocks.0.gru_width.gru.weight_hh_l0_reverse',
             'block7.0.weight': 'body_tail.0.weight', 'block7.1.num_batches_tracked': 'body_tail.1.num_batches_tracked',
             'block8.0.conv.weight': 'upsampler.0.weight', 'block8.1.bias': 'out_conv.bias',
             'stn_head.stn_convnet.10.1.running_mean': 'stn_head.convnet.10.1.running_mean',
             'stn_head.stn_fc1.1.weight': 'stn_head.fc1.1.weight', 'stn_head.stn_fc2.bias': 'stn_head.fc2.bias'}
    for their_key, our_key in pairs.items():
        assert torch.equal(ours[our_key], theirs[their_key]), (their_key, our_key)
    assert len(converted['params']) == len(theirs) - 4  # the four TPS constants are dropped


def test_other_textzoom_configurations_and_wrappings():
    small = textzoom_tsrn_state(hidden_units=8, srb_nums=2, in_planes=3, stn=False, upsample=2)
    converted, how = convert_textzoom_tsrn({f'module.{k}': v for k, v in small.items()})  # DataParallel keys
    options = _load_line(how)
    assert options == {'type': 'TSRN', 'scale': 4, 'in_ch': 3, 'num_feat': 16, 'num_block': 2, 'stn': False,
                       'lr_size': [16, 64]}
    TSRN(**{k: v for k, v in options.items() if k != 'type'}).load_state_dict(converted['params'], strict=True)
    assert torch.equal(converted['params']['upsampler.3.weight'], small['block5.1.conv.weight'])


def test_unexpected_missing_and_misshapen_keys_are_refused_by_name():
    good = textzoom_tsrn_state(hidden_units=8, srb_nums=1, stn=False)
    with pytest.raises(OptionsError, match=r'block2\.conv3\.weight: unexpected key'):
        convert_textzoom_tsrn(dict(good, **{'block2.conv3.weight': torch.zeros(1)}))
    with pytest.raises(OptionsError, match=r'non_local\.weight: unexpected key'):
        convert_textzoom_tsrn(dict(good, **{'non_local.weight': torch.zeros(1)}))
    bad = dict(good)
    bad['block2.bn2.weight'] = torch.ones(15)
    with pytest.raises(OptionsError, match=r'block2\.bn2\.weight: shape \(15,\).*blocks\.0\.body\.4\.weight'):
        convert_textzoom_tsrn(bad)
    missing = {k: v for k, v in good.items() if k != 'block2.gru1.gru.bias_hh_l0'}
    with pytest.raises(OptionsError, match=r'lacks 1 tensors.*gru_height\.gru\.bias_hh_l0'):
        convert_textzoom_tsrn(missing)
    with pytest.raises(OptionsError, match='no block1'):
        convert_textzoom_tsrn({'conv.weight': torch.zeros(1)})
    with pytest.raises(OptionsError, match='not a tensor'):
        convert_textzoom_tsrn({'block1.0.weight': 'x'})


def test_convert_checkpoint_tool_writes_what_the_tsrn_options_load(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('convert_checkpoint', osp.join(REPO, 'tools', 'convert_checkpoint.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    theirs = textzoom_tsrn_state()
    torch.save({'state_dict_G': theirs, 'info': {'arch': 'tsrn'}}, tmp_path / 'model_best.pth')
    assert tool.main(['--from', 'textzoom-tsrn', str(tmp_path / 'model_best.pth'), str(tmp_path / 'tsrn.pth')]) == 0
    assert 'pretrain_network_g' in capsys.readouterr().out
    from plugins.engine.basicsr.networks import read_state_dict
    from tests.helpers import options
    opt = options('options/test/textsr/tsrn_textzoom.yml')  # the TextZoom TSRN evaluation loads it as it is
    state, key = read_state_dict(str(tmp_path / 'tsrn.pth'), opt['path']['param_key_g'])
    net = TSRN(**{k: v for k, v in opt['network_g'].items() if k != 'type'})
    net.load_state_dict(state, strict=opt['path']['strict_load_g'])
    assert key == 'params' and torch.equal(net.state_dict()['blocks.2.gru_width.gru.weight_ih_l0'],
                                           theirs['block4.gru2.gru.weight_ih_l0'])
    torch.save({'state_dict_G': {'block1.0.weight': torch.zeros(64, 4, 9, 9)}}, tmp_path / 'partial.pth')
    assert tool.main(['--from', 'textzoom-tsrn', str(tmp_path / 'partial.pth'), str(tmp_path / 'x.pth')]) == 2
    assert 'block' in capsys.readouterr().err and not (tmp_path / 'x.pth').exists()
