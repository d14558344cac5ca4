"""Speed of a network or of its training: parameters, FLOPs, latency and peak memory of the network_g of a BasicSR
options file or of the generator of an mmengine config, or (--train) iterations per second, data-wait share and
peak memory of training runs.

    python tools/benchmark.py -opt options/train/classic/srcnn_x2.yml [--input-size 1x1x270x480] [--runs 10]
        [--warmup 2] [--device cpu|cuda] [--amp bf16|fp16 | --fp16] [--channels-last] [--compile
        [--compile-backend B]] [--json FIGURES.json]
    python tools/benchmark.py options/mmagic/classic/srcnn_x2_demo.py [--checkpoint CKPT] [same flags]
    python tools/benchmark.py --train -opt options/train/classic/srcnn_x2.yml [more options files or configs]
        [--iters 20] [--warmup 5] [--workers N] [--device cpu|cuda] [--amp bf16|fp16] [--channels-last]
        [--compile [--compile-backend B]] [--random-init] [--force_yml KEY:SUB=VALUE ...]
        [--cfg-options KEY=VALUE ...] [--json F]

Network: the input size defaults to the options' (or config's) `benchmark: {input_size: [N, C, H, W]}`, else
1x3x1080x1920 with C set to the network's input channels. An mmengine config's model is built as tools/infer.py
builds it (its generator is timed, the EMA one where kept; a line's adapter may time a whole inference step
instead: the inpainting models' masked image + mask -> composite, 1x4xSxS at their working size S by default).
--checkpoint loads mmengine weights (speed does not depend on them; PD-GAN configs need it or their prior's
checkpoint, since building the model reads the prior's weights). FLOPs are counted by torch.utils.flop_counter.FlopCounterMode (convolutions,
matrix products, attention; not element-wise ops, activations, interpolation, normalisation or pooling). The logic
is in plugins/common/complexity.py.

--train: BasicSR options files (-opt X.yml, or .yml paths) and mmengine configs (.py paths) are built by the
toolboxes' own builders and trained for --warmup + --iters iterations in a temporary folder; the table gives
iterations/s, the share of each iteration blocked in fetching the next batch (data), BasicSR's feed_data
(host-to-device copy and on-device batch preparation) and the optimisation step, and peak memory (CUDA
max_memory_allocated, or the main process's peak RSS on CPU). --amp, --channels-last and --compile set BasicSR's
train:amp, train:channels_last and train:compile (mmengine: AmpOptimWrapper, cfg.compile). With several files each
runs in its own process. The logic is in plugins/common/training_speed.py.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

# First, before mmengine (parse_args): the compat patches, then the BasicSR lines' registrations, whole, before any
# module of ours imports BasicSR.
import plugins  # noqa: E402,F401


def parse_args(argv):
    from mmengine.config import DictAction  # mmengine parses --cfg-options as MMagic's tools do

    from plugins.common.speed_modes import add_speed_arguments
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', action='append', default=[], metavar='OPTIONS.yml',
                        help='BasicSR options file (network: its network_g; --train: its training; may repeat)')
    parser.add_argument('configs', nargs='*', metavar='FILE',
                        help='an mmengine config (.py) for the network benchmark; --train: more BasicSR options files '
                        '(.yml) or mmengine configs (.py)')
    parser.add_argument('--checkpoint', default=None,
                        help='network benchmark of an mmengine config: its checkpoint (.pth) to load')
    parser.add_argument('--train', action='store_true', help='measure training iterations instead of the network')
    parser.add_argument('--input-size', default=None, help='N x C x H x W, e.g. 1x3x1080x1920 (default: see above)')
    parser.add_argument('--runs', type=int, default=10, help='timed forward passes (default: 10)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed passes or iterations first (default: 2, --train: 5)')
    parser.add_argument('--iters', type=int, default=20, help='--train: measured iterations (default: 20)')
    parser.add_argument('--workers', type=int, default=None,
                        help='--train: data workers (BasicSR num_worker_per_gpu, mmengine num_workers; default: '
                        'the file\'s)')
    parser.add_argument('--random-init', action='store_true',
                        help='--train: BasicSR path:pretrain_network_* set to none (speed does not depend on the '
                        'starting weights; e.g. textsr demo_joint_synth starts from a TSRN trained first)')
    parser.add_argument('--force_yml', nargs='+', default=[], metavar='KEY:SUB=VALUE',
                        help='--train: override existing BasicSR options, e.g. datasets:train:batch_size_per_gpu=8')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None, metavar='KEY=VALUE',
                        help='--train: override mmengine config entries, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--device', default=None,
                        help='network: cpu, cuda or cuda:K (default: cuda when available); --train: cpu sets '
                        'num_gpu: 0 (BasicSR) or keeps an mmengine model on the CPU, cuda num_gpu: 1 (default: what '
                        'the options choose)')
    add_speed_arguments(parser)
    parser.add_argument('--fp16', action='store_true',
                        help='network only: half-precision weights and input (CUDA only; --amp for autocast)')
    parser.add_argument('--output', '--json', dest='output', default=None, metavar='PATH',
                        help='also write the figures to this JSON file (--train: a list, one entry per file)')
    args = parser.parse_args(argv)
    files = args.opt + args.configs
    if args.train:
        if not files:
            parser.error('--train needs options files (-opt X.yml) or mmengine configs (X.py)')
        if args.fp16:
            parser.error('--fp16 is for the network benchmark; training takes --amp fp16')
        if args.checkpoint:
            parser.error('--checkpoint is for the network benchmark of an mmengine config')
    else:
        if len(files) != 1:
            parser.error('the network benchmark takes one -opt options file or one mmengine config (several files: '
                         '--train)')
        if args.checkpoint and not files[0].endswith('.py'):
            parser.error('--checkpoint is for mmengine configs (a BasicSR options file names its weights itself)')
        if args.force_yml or args.cfg_options or args.workers is not None or args.random_init:
            parser.error('--force_yml, --cfg-options, --workers and --random-init are for --train')
    args.files = files
    if args.warmup is None:
        args.warmup = 5 if args.train else 2
    return args


def _write_json(path, data):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=2)
    print(f'wrote {path}')


def _error(err):
    print(f'error: {err}', file=sys.stderr, flush=True)
    sys.exit(2)


def config_network(path, checkpoint):
    """(network to time, the options-like dict resolve_input_size reads, default input size) of an mmengine config."""
    from plugins.common.inference import build_config_for_inference, inference_adapters
    from plugins.engine.mmengine.config_model import generator_of, read_config
    cfg = read_config(path)  # imports its custom_imports: the line's components and adapters
    model, _ = build_config_for_inference(cfg, path, checkpoint)
    timed = next((t for t in (a.timed_network(model, path) for a in inference_adapters()) if t is not None), None)
    net, default = timed if timed is not None else (generator_of(model), '1x3x1080x1920')
    bench = cfg.get('benchmark')
    return net, {'name': cfg.get('experiment_name'), 'benchmark': bench.to_dict() if hasattr(bench, 'to_dict')
                 else bench}, default


def network_main(args):
    import torch

    from plugins.common.complexity import benchmark, format_table, resolve_input_size
    from plugins.engine.basicsr.networks import build_network_from_options
    from plugins.engine.basicsr.options import load_options
    from plugins.engine.errors import OptionsError
    path = args.files[0]
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        if path.endswith('.py'):
            net, opt, default = config_network(path, args.checkpoint)
        else:
            opt, default = load_options(path), '1x3x1080x1920'
            net = build_network_from_options(opt, source=path)
        size, origin = resolve_input_size(args.input_size, opt, net, default=default, source=path)
        result = benchmark(net, size, device=device, runs=args.runs, warmup=args.warmup,
                           channels_last=args.channels_last, use_compile=args.compile, fp16=args.fp16, amp=args.amp,
                           compile_backend=args.compile_backend)
    except OptionsError as err:
        _error(err)
    result.update(options=path, options_name=opt.get('name'), input_source=origin)
    if args.checkpoint:
        result.update(checkpoint=args.checkpoint)
    print(format_table(result))
    if args.output:
        _write_json(args.output, result)


def train_main(args):
    from plugins.common.training_speed import format_training_table, training_speed, training_speed_in_subprocess
    from plugins.engine.errors import OptionsError
    kwargs = dict(iters=args.iters, warmup=args.warmup, force_yml=args.force_yml, cfg_options=args.cfg_options,
                  workers=args.workers, device=args.device, amp=args.amp, channels_last=args.channels_last,
                  compile_backend=args.compile_backend if args.compile else None, random_init=args.random_init)
    results = []
    try:
        if len(args.files) == 1:
            results.append(training_speed(args.files[0], **kwargs))
        else:  # a fresh process per file: its own peak memory, no state left by the previous run
            for path in args.files:
                results.append(training_speed_in_subprocess(path, **kwargs))
                print(format_training_table(results[-1:]).split('\n')[2], flush=True)
    except OptionsError as err:
        _error(err)
    print(format_training_table(results))
    if args.output:
        _write_json(args.output, results)


def main(argv):
    args = parse_args(argv)
    (train_main if args.train else network_main)(args)


if __name__ == '__main__':
    main(sys.argv[1:])
