"""Text SR line (seed 001), units: TSRN/STN/CRNN/bridges (counts, shapes, gradients), CTC labels and decoding,
losses and task weighting, recognizer checkpoint loading, the accuracy metric and the E/M/H/A average."""
import math

import pytest
import torch

import plugins  # noqa: F401  (registrations)
from plugins.engine.errors import OptionsError
from plugins.textsr.bridge_arch import HEADS, TextBridge
from plugins.textsr.crnn_arch import CRNN, load_recognizer, set_trainable
from plugins.textsr.textsr_loss import TaskWeighting, TextCTCLoss, TSRNImageLoss, gradient_magnitude
from plugins.textsr.word_accuracy_metric import calculate_word_accuracy, split_summary
from plugins.textsr.stn import STNHead, TPSSpatialTransformer, edge_control_points
from plugins.textsr.labels import ALPHABET, NUM_CLASSES, ctc_greedy_decode, encode_labels, filter_label
from plugins.textsr.tsrn_arch import TSRN, TextBicubic

torch.set_num_threads(1)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize('kwargs, count', [
    (dict(), 2_681_677),  # TextZoom's TSRN(scale 2, STN, 5 SRBs, mask, hidden 32): 826,629 + STN 1,855,048
    (dict(stn=False), 826_629),
    (dict(num_pixelshuffle=2), 2_829_389),  # + one conv3(64 -> 256) upsampling stage
    (dict(in_ch=3, stn=False), 816_260),  # RGB only (no --mask)
])
def test_tsrn_parameter_counts(kwargs, count):
    assert n_params(TSRN(**kwargs)) == count


@pytest.mark.parametrize('kwargs', [dict(), dict(num_pixelshuffle=2), dict(stn=False, scale=4)])
def test_tsrn_shapes_and_gradients_in_training(kwargs):
    torch.manual_seed(0)
    net = TSRN(num_block=1, **kwargs).train()
    x = torch.rand(2, 4, 16, 64, requires_grad=True)
    sr, feat = net(x, return_features=True)
    scale = kwargs.get('scale', 2)
    assert sr.shape == (2, 4, 16 * scale, 64 * scale) and feat.shape == (2, 64, 16, 64)
    assert sr.abs().max() < 1  # tanh
    sr.mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters()), 'every parameter (STN included) gets a gradient'
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(1, 4, 16, 64)).shape == (1, 4, 16 * scale, 64 * scale)  # no STN, batch of one


def test_tsrn_bicubic_skip_is_opt_in_and_adds_bicubic():
    """``bicubic_skip`` (a deviation, default off) adds the bicubic upsampling of the input to the tanh output."""
    torch.manual_seed(0)
    x = torch.rand(2, 4, 16, 64)
    plain, skip = TSRN(num_feat=16, num_block=1, stn=False), TSRN(num_feat=16, num_block=1, stn=False,
                                                                   bicubic_skip=True)
    skip.load_state_dict(plain.state_dict())  # no parameters of its own
    plain.eval(), skip.eval()
    with torch.no_grad():
        bicubic = torch.nn.functional.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False)
        assert torch.allclose(skip(x), plain(x) + bicubic, atol=1e-6)
        assert plain(x).abs().max() < 1 and not plain.bicubic_skip


def test_tsrn_rejects_bad_options():
    with pytest.raises(ValueError, match='power of two'):
        TSRN(scale=3)
    with pytest.raises(ValueError, match='num_pixelshuffle must be 1 or 2'):
        TSRN(num_pixelshuffle=3)


def test_bicubic_baseline_has_no_parameters():
    net = TextBicubic(2)
    sr, feat = net(torch.rand(1, 4, 16, 64), return_features=True)
    assert sr.shape == (1, 4, 32, 128) and feat is None and n_params(net) == 0


def _keys_bicubic_row(row, positions, a=-0.75):
    """Cubic convolution (Keys, a = -0.75 as torch) of a 1-D ``row`` at ``positions``, border samples replicated."""
    def kernel(t):
        t = abs(t)
        if t <= 1:
            return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
        return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a if t < 2 else 0.0
    out = []
    for x in positions:
        base = math.floor(x)
        out.append(sum(row[min(max(k, 0), len(row) - 1)] * kernel(x - k) for k in range(base - 1, base + 3)))
    return torch.tensor(out, dtype=torch.float64)


def test_bicubic_baseline_as_textzoom_aligns_corners_and_does_not_clamp():
    """TextZoom's src/model/bicubic.py: F.interpolate(bicubic, align_corners=True), no clamp: HR column j samples
    LR position j (w - 1) / (2w - 1); ours (align_corners=False) samples (j + 0.5) / 2 - 0.5. Pinned against a
    written-out cubic convolution on a row of constant columns (so the vertical pass is the identity)."""
    w = 8
    row = [0.0, 0.1, 0.9, 1.0, 0.2, 0.0, 0.7, 1.0]
    img = torch.tensor(row, dtype=torch.float64).view(1, 1, 1, w).expand(1, 1, 4, w).contiguous()
    j = range(2 * w)
    textzoom = TextBicubic(2, align_corners=True, clamp=False)(img)[0, 0, 3]
    ours = TextBicubic(2, clamp=False)(img)[0, 0, 3]
    assert torch.allclose(textzoom, _keys_bicubic_row(row, [i * (w - 1) / (2 * w - 1) for i in j]), atol=1e-9)
    assert torch.allclose(ours, _keys_bicubic_row(row, [(i + 0.5) / 2 - 0.5 for i in j]), atol=1e-9)
    assert (textzoom - ours).abs().max() > 0.05
    assert textzoom.min() < 0 and textzoom.max() > 1  # overshoot kept, as TextZoom scores it
    assert TextBicubic(2)(img).min() == 0 and TextBicubic(2)(img).max() == 1  # ours clamps by default


def test_crnn_input_as_textzoom_feeds_it_and_as_crnn_pytorch():
    """TextZoom's parse_crnn_data: bicubic resize to 32x100, gray 0.299 R + 0.587 G + 0.114 B, no normalisation
    (and no clamp); crnn.pytorch's own input is the same gray in [-1, 1]."""
    from plugins.textsr.crnn_arch import to_recognizer_input
    img = torch.rand(2, 4, 32, 100) * 1.2 - 0.1  # a tanh output may leave [0, 1]
    gray = 0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]
    assert torch.allclose(to_recognizer_input(img, 'textzoom'), gray, atol=1e-6)
    assert torch.allclose(to_recognizer_input(img, 'crnn.pytorch'), gray.clamp(0, 1) * 2 - 1, atol=1e-6)
    assert CRNN().input_norm == 'textzoom' and CRNN(input_norm='crnn.pytorch').input_norm == 'crnn.pytorch'
    with pytest.raises(ValueError, match='input_norm'):
        CRNN(input_norm='imagenet')


def test_tps_with_the_target_points_is_the_identity():
    tps = TPSSpatialTransformer((16, 64), 20, (0.05, 0.05))
    img = torch.rand(2, 4, 16, 64)
    out, grid = tps(img, tps.target_control_points.expand(2, -1, -1))
    assert torch.allclose(out, img, atol=1e-3)  # float32 solve of the TPS system
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 64), indexing='ij')
    assert torch.allclose(grid[0], torch.stack([xs.flatten(), ys.flatten()], 1), atol=1e-5)


def test_tps_moves_with_the_control_points_and_checks_their_shape():
    tps = TPSSpatialTransformer((16, 64), 20, (0.05, 0.05))
    img = torch.rand(1, 1, 16, 64)
    shifted = tps.target_control_points.clone()
    shifted[:, 0] += 0.1  # every source point 0.1 to the right: a pure translation
    _, grid = tps(img, shifted[None])
    assert torch.allclose(grid[0, :, 0] - 0.1, tps(img, tps.target_control_points[None])[1][0, :, 0], atol=1e-4)
    with pytest.raises(ValueError, match=r'source_points must be \(N, 20, 2\)'):
        tps(img, torch.rand(1, 10, 2))
    with pytest.raises(ValueError, match='even number'):
        edge_control_points(7, 0.1, 0.1)


def test_stn_head_starts_at_the_margin_points_and_learns():
    head = STNHead(4, 20).train()
    x = torch.rand(2, 4, 32, 64)
    pts = head(x)
    assert pts.shape == (2, 20, 2)
    assert torch.allclose(pts[0], edge_control_points(20, 0.01, 0.01).float(), atol=1e-6)  # fc2 weights start at 0
    pts.sum().backward()
    assert head.fc2.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r'expects \(32, 64\)'):
        head(torch.rand(2, 4, 16, 64))


def test_crnn_parameter_count_shapes_and_gradients():
    net = CRNN()
    assert n_params(net) == 8_331_301  # CRNN(32, 1, 37, 256) of crnn.pytorch
    for channels in (1, 3, 4):
        assert net(torch.rand(2, channels, 32, 128)).shape == (26, 2, NUM_CLASSES)
    x = torch.rand(2, 4, 32, 128, requires_grad=True)
    net(x).logsumexp(-1).mean().backward()
    assert x.grad[:, :3].abs().sum() > 0 and x.grad[:, 3].abs().sum() == 0  # the mask channel is not read
    with pytest.raises(ValueError, match='exactly one of img or seq'):
        net()


@pytest.mark.parametrize('head, count', [('dense', 524_800), ('mlp', 787_456), ('sidernn', 2_625_536),
                                         ('sidernn+mlp', 3_150_848)])
def test_bridge_heads_feed_the_recognizer(head, count):
    bridge, rec = TextBridge(head), CRNN()
    assert n_params(bridge) == count
    feat = torch.rand(2, 64, 16, 64, requires_grad=True)
    seq = bridge(feat)
    assert seq.shape == (26, 2, 512)
    scores = rec(seq=seq)
    assert scores.shape == (26, 2, NUM_CLASSES)
    scores.logsumexp(-1).mean().backward()
    assert feat.grad.abs().sum() > 0 and all(p.grad is not None for p in bridge.parameters())
    assert rec.cnn.conv0.weight.grad is None  # feature coupling bypasses the recognizer's CNN


def test_bridge_rejects_unknown_heads_and_wrong_heights():
    assert HEADS == ('dense', 'mlp', 'sidernn', 'sidernn+mlp')
    with pytest.raises(ValueError, match='head must be one of'):
        TextBridge('lstm')
    with pytest.raises(ValueError, match='height 16'):
        TextBridge('dense')(torch.rand(1, 64, 8, 64))


def test_labels_are_filtered_as_textzoom():
    assert ALPHABET == '0123456789abcdefghijklmnopqrstuvwxyz' and NUM_CLASSES == 37
    assert filter_label("Don't!") == 'dont'
    assert filter_label('ÉCOLE 42') == 'cole42'  # accents are outside 0-9a-z: dropped
    assert filter_label('#&!') == ''
    targets, lengths = encode_labels(['Ab1', '', 'z'])
    assert targets.tolist() == [11, 12, 2, 36] and lengths.tolist() == [3, 0, 1]


def _scores(*sequences):
    """(T, N, 37) one-hot scores whose arg-max follows the given class sequences."""
    T = max(len(s) for s in sequences)
    out = torch.zeros(T, len(sequences), NUM_CLASSES)
    for n, seq in enumerate(sequences):
        for t in range(T):
            out[t, n, seq[t] if t < len(seq) else 0] = 1
    return out


def test_ctc_greedy_decoding_of_known_sequences():
    h, e, l, o, a, one = (ALPHABET.index(c) + 1 for c in 'heloa1')
    scores = _scores([h, h, 0, e, l, l, 0, l, o, o],  # repeats merge; the blank separates the double l
                     [a, a, a, 0, 0, 0, 0, 0, 0, 0],
                     [0] * 10,
                     [one, 0, one, one, 0, a])
    assert ctc_greedy_decode(scores) == ['hello', 'a', '', '11a']
    with pytest.raises(ValueError, match=r'expected \(T, N, 37\)'):
        ctc_greedy_decode(torch.zeros(5, 2, 10))


def test_ctc_loss_prefers_the_right_label():
    loss = TextCTCLoss()
    c, a, t = (ALPHABET.index(ch) + 1 for ch in 'cat')
    scores = _scores([c, 0, a, 0, t, 0]) * 10
    assert loss(scores, ['CAT']) < loss(scores, ['dog']) and loss(scores, ['cat']) < 0.01


def test_ctc_reduction_mean_and_crnn_pytorchs_sum_over_batch_size():
    """'mean': each sample's CTC divided by its label length, averaged; 'batchmean' (crnn.pytorch): the summed
    CTC divided by the batch size. Both from per-sample losses computed one at a time."""
    torch.manual_seed(0)
    scores = torch.randn(26, 3, NUM_CLASSES)
    labels = ['cat', 'house', 'a']
    per_sample = [TextCTCLoss(reduction='mean')(scores[:, i:i + 1], [w]) * len(w) for i, w in enumerate(labels)]
    assert float(TextCTCLoss()(scores, labels)) == pytest.approx(
        sum(float(p) / len(w) for p, w in zip(per_sample, labels)) / 3, rel=1e-5)
    assert float(TextCTCLoss(reduction='batchmean')(scores, labels)) == pytest.approx(
        sum(float(p) for p in per_sample) / 3, rel=1e-5)
    with pytest.raises(ValueError, match='reduction'):
        TextCTCLoss(reduction='sum')


def test_tsrn_image_loss_mse_plus_gradient_prior():
    hr = torch.zeros(1, 4, 4, 6)
    hr[..., 3:] = 1  # a vertical edge
    sr = torch.zeros_like(hr)
    mse = torch.nn.functional.mse_loss(sr, hr)
    gp = (gradient_magnitude(sr[:, :3]) - gradient_magnitude(hr[:, :3])).abs().mean()
    assert gradient_magnitude(hr[:, :1])[0, 0, 1, 2] == pytest.approx(0.5, abs=1e-5)  # (1 - 0) / 2 at the edge
    assert TSRNImageLoss(100, 1e-4)(sr, hr) == pytest.approx(100 * (mse + 1e-4 * gp).item(), rel=1e-6)
    assert TSRNImageLoss()(hr, hr) == 0


def test_task_weighting_average_and_uncertainty():
    losses = {'sr': torch.tensor(2.0), 'rec': torch.tensor(6.0)}
    assert TaskWeighting('average', ['sr', 'rec'])(losses) == 4.0
    unc = TaskWeighting('uncertainty', ['sr', 'rec'], form='symmetric')
    assert unc(losses) == 8.0  # s = 0: exp(0) L + 0
    opt = torch.optim.SGD(unc.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        unc({'sr': torch.tensor(2.0), 'rec': torch.tensor(6.0)}).backward()
        opt.step()
    s = unc.log_vars.detach()
    assert s[1] > s[0] > 0  # the task with the larger loss gets the larger s (smaller weight exp(-s))
    assert unc.weights()['rec'] < unc.weights()['sr'] < 1
    with pytest.raises(ValueError, match="'average' or 'uncertainty'"):
        TaskWeighting('sum', ['sr'])
    with pytest.raises(ValueError, match='uncertainty form'):
        TaskWeighting('uncertainty', ['sr'], form='half')


def test_uncertainty_weighting_is_kendalls_eq10_by_default():
    """Kendall et al. (CVPR 2018) eq. 10 with s = log sigma^2: 1/(2 sigma^2) L_sr + log sigma_sr for the SR
    regression and 1/sigma^2 L_rec + log sigma_rec for recognition; written out here with sigma, not with s."""
    unc = TaskWeighting('uncertainty', ['sr', 'rec'])
    with torch.no_grad():
        unc.log_vars.copy_(torch.tensor([0.4, -0.3]))
    l_sr, l_rec = torch.tensor(2.0), torch.tensor(6.0)
    sig_sr, sig_rec = math.exp(0.4) ** 0.5, math.exp(-0.3) ** 0.5
    expected = 2.0 / (2 * sig_sr ** 2) + 6.0 / sig_rec ** 2 + math.log(sig_sr) + math.log(sig_rec)
    assert float(unc({'sr': l_sr, 'rec': l_rec})) == pytest.approx(expected, rel=1e-6)
    symmetric = TaskWeighting('uncertainty', ['sr', 'rec'], form='symmetric')
    with torch.no_grad():
        symmetric.log_vars.copy_(torch.tensor([0.4, -0.3]))
    assert float(symmetric({'sr': l_sr, 'rec': l_rec})) == pytest.approx(
        math.exp(-0.4) * 2 + 0.4 + math.exp(0.3) * 6 - 0.3, rel=1e-6)
    # Minimising over s: the SR weight 0.5 exp(-s) -> 1 / (2 L_sr), the recognition weight exp(-s) -> 1 / (2 L_rec)
    opt = torch.optim.Adam(unc.parameters(), lr=0.05)
    for _ in range(800):
        opt.zero_grad()
        unc({'sr': l_sr, 'rec': l_rec}).backward()
        opt.step()
    assert unc.weights() == pytest.approx({'sr': 1 / (2 * 2.0), 'rec': 1 / (2 * 6.0)}, rel=1e-3)


@pytest.mark.parametrize('mode', ['average', 'uncertainty'])
def test_task_weights_are_logged_on_the_losses_device(mode):
    """BasicSR's reduce_loss_dict stacks the logged values (and all-reduces them under DDP): a CPU weight beside CUDA
    losses fails at the first iteration. The 'meta' device stands in for CUDA."""
    from plugins.textsr.textsr_model import task_weight_log
    weighting = TaskWeighting(mode, ['sr', 'rec']).to('meta')
    log = task_weight_log(weighting, torch.device('meta'))
    assert list(log) == ['w_sr', 'w_rec'] and all(w.device.type == 'meta' and w.dim() == 0 for w in log.values())
    on_cpu = task_weight_log(TaskWeighting(mode, ['sr', 'rec']), torch.device('cpu'))
    # s = 0: average 1/2 each; Kendall's form 1/2 on the SR regression term, 1 on recognition
    assert [float(w) for w in on_cpu.values()] == ([0.5, 0.5] if mode == 'average' else [0.5, 1.0])


def _weighting_rank(rank: int, init_file: str, queue) -> None:
    """One of two gloo ranks: losses that differ per rank, then the gradient of s averaged over the ranks."""
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    unc = TaskWeighting('uncertainty', ['sr', 'rec'], form='symmetric')
    unc({'sr': torch.tensor(1.0 + rank), 'rec': torch.tensor(3.0 * rank)}).backward()  # d/ds = 1 - L
    unc.average_gradients_across_ranks()
    queue.put((rank, unc.log_vars.grad.tolist()))
    dist.destroy_process_group()


def test_uncertainty_weights_stay_equal_across_ddp_ranks(tmp_path):
    """TaskWeighting is not a DDP module: its s-gradient is averaged by hand, so every rank steps the same s.
    Rank 0: 1 - [1, 0] = [0, 1]; rank 1: 1 - [2, 3] = [-1, -2]; both must end with the mean [-0.5, -0.5]."""
    import multiprocessing
    ctx = multiprocessing.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_weighting_rank, args=(r, str(tmp_path / 'init'), queue)) for r in range(2)]
    for proc in procs:
        proc.start()
    grads = dict(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert grads == {0: [-0.5, -0.5], 1: [-0.5, -0.5]}
    unc = TaskWeighting('uncertainty', ['sr', 'rec'])
    unc.average_gradients_across_ranks()  # one process, before any backward: nothing to do
    assert unc.log_vars.grad is None


def test_recognizer_checkpoint_loading(tmp_path):
    src = CRNN()
    full = tmp_path / 'crnn.pth'
    torch.save({f'module.{k}': v for k, v in src.state_dict().items()}, full)  # crnn.pytorch's DataParallel keys
    net = CRNN()
    report = load_recognizer(net, str(full))
    assert report == {'missing': [], 'unexpected': [], 'ignored': []}
    assert torch.equal(net.rnn[1].embedding.weight, src.rnn[1].embedding.weight)

    partial = {k: v for k, v in src.state_dict().items() if not k.startswith('rnn.1.')}
    partial['extra.weight'] = torch.zeros(1)
    torch.save({'params': partial}, tmp_path / 'partial.pth')  # a BasicSR checkpoint
    report = load_recognizer(CRNN(), str(tmp_path / 'partial.pth'))
    assert 'rnn.1.embedding.weight' in report['missing'] and report['unexpected'] == ['extra.weight']

    joint = {f'recognizer.{k}': v for k, v in src.state_dict().items()}
    joint['sr.head.0.weight'] = torch.zeros(3)
    torch.save(joint, tmp_path / 'joint.pth')  # a whole joint model's checkpoint: take the recognizer out of it
    assert load_recognizer(CRNN(), str(tmp_path / 'joint.pth'), prefix='recognizer.')['unexpected'] == []


def test_recognizer_checkpoint_of_the_wrong_shape(tmp_path):
    path = tmp_path / 'crnn_40.pth'
    torch.save(CRNN(num_classes=40).state_dict(), path)
    with pytest.raises(OptionsError, match=r'crnn_40.pth does not fit CRNN: shape mismatch rnn.1.embedding.weight: '
                                           r'checkpoint \(40, 512\) vs network \(37, 512\).*ignore_keys'):
        load_recognizer(CRNN(), str(path))
    report = load_recognizer(CRNN(), str(path), ignore_keys=['rnn.1.embedding'])  # retrain the head from scratch
    assert report['ignored'] == ['rnn.1.embedding.weight', 'rnn.1.embedding.bias']
    torch.save({'foo.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    with pytest.raises(OptionsError, match='none of its 1 keys'):
        load_recognizer(CRNN(), str(tmp_path / 'other.pth'))


def test_freezing_all_but_the_classification_head():
    net = CRNN()
    set_trainable(net, 'head')
    assert sorted(n for n, p in net.named_parameters() if p.requires_grad) == ['rnn.1.embedding.bias',
                                                                                 'rnn.1.embedding.weight']
    set_trainable(net, 'none')
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(ValueError, match="'all', 'head' or 'none'"):
        set_trainable(net, 'backbone')


def test_word_accuracy_on_a_hand_made_case():
    preds = ['Hello', 'w0rld', 'abc', '', 'Street']
    labels = ['hello!', 'world', 'ABC', '--', 'street']
    # hello = hello; w0rld != world; abc = abc; '' = '' (label of punctuation only); street = street
    assert calculate_word_accuracy(preds, labels) == pytest.approx(4 / 5)
    assert calculate_word_accuracy('Cafe', 'CAFE', img=None, img2=None) == 1.0  # BasicSR passes images too
    with pytest.raises(ValueError, match='2 predictions for 1 labels'):
        calculate_word_accuracy(['a', 'b'], ['a'])


def test_split_average_is_weighted_by_samples_as_the_seed_tables():
    # The seed's "dense, best_acc" row and TextZoom's split sizes give its A-ACC 0.5596 and A-PSNR 21.1911.
    results = {'easy': {'num': 1619, 'acc': 0.7024, 'psnr': 22.9425},
               'medium': {'num': 1411, 'acc': 0.5539, 'psnr': 19.6690},
               'hard': {'num': 1343, 'acc': 0.3939, 'psnr': 20.6816}}
    summary = split_summary(results)
    # The split sizes are recalled (references.md C.2), so allow a few 1e-4; the plain mean would be 0.5501.
    assert summary['A']['acc'] == pytest.approx(0.5596, abs=3e-4)
    assert summary['A']['psnr'] == pytest.approx(21.1911, abs=3e-3)
    assert list(summary) == ['easy', 'medium', 'hard', 'A']


@pytest.mark.parametrize('rule, saved', [('split_sum', [1]), ('weighted_mean', [1, 2])])
def test_best_checkpoint_by_the_sum_of_splits_as_textzoom_or_by_the_weighted_mean(rule, saved):
    """TextZoom keeps the model whose accuracies summed over easy/medium/hard are highest (each split counts the
    same); the weighted mean counts samples. Iteration 2 is worse by the sum (0.7 < 1.4) and better by the
    sample-weighted mean (61/110 > 59/110), so only the weighted rule saves it."""
    import logging
    from plugins.textsr.split_validation import SplitValidationMixin

    class Model(SplitValidationMixin):
        def __init__(self):
            self.opt = {'val': {'metrics': {'acc': {'type': 'calculate_word_accuracy'}}, 'best_by': rule}}
            self.saved = []

        def save_networks(self, label):
            self.saved.append((label, self.current))

    model = Model()
    for it, (easy, hard) in ((1, (0.5, 0.9)), (2, (0.6, 0.1))):
        model.current = it
        splits = {'easy': {'num': 100, 'acc': easy}, 'hard': {'num': 10, 'acc': hard}}
        model._save_best(splits, split_summary(splits)['A'], it, logging.getLogger('test'))
    assert model.saved == [('best_acc', it) for it in saved]
    model.opt['val']['best_by'] = 'mean'
    with pytest.raises(ValueError, match='best_by'):
        model.best_by()
