"""Parameters, FLOPs, latency and peak memory of the network_g of a BasicSR options file.

    python tools/benchmark.py -opt options/train/classic/srcnn_x2.yml [--input-size 1x1x270x480] [--runs 10]
        [--warmup 2] [--device cpu|cuda] [--channels-last] [--compile] [--fp16] [--output FIGURES.json]

The input size defaults to the options' `benchmark: {input_size: [N, C, H, W]}`, else 1x3x1080x1920 with C set to
the network's input channels. FLOPs are counted by torch.utils.flop_counter.FlopCounterMode (convolutions, matrix
products, attention; not element-wise ops, activations, interpolation, normalisation or pooling). The logic is in
plugins/common/complexity.py.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', required=True, help='BasicSR options file; its network_g is measured')
    parser.add_argument('--input-size', default=None, help='N x C x H x W, e.g. 1x3x1080x1920 (default: see above)')
    parser.add_argument('--runs', type=int, default=10, help='timed forward passes (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes before them (default: 2)')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--channels-last', action='store_true', help='channels-last memory format')
    parser.add_argument('--compile', action='store_true', help='time torch.compile(network)')
    parser.add_argument('--fp16', action='store_true', help='half precision (CUDA only)')
    parser.add_argument('--output', '--json', dest='output', default=None, metavar='PATH',
                        help='also write the figures to this JSON file')
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    import torch

    import plugins  # noqa: F401  (compat patches, then every registration)
    from plugins.common.complexity import benchmark, format_table, resolve_input_size
    from plugins.engine.basicsr.networks import build_network_from_options
    from plugins.engine.basicsr.options import load_options
    from plugins.engine.errors import OptionsError
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        opt = load_options(args.opt)
        net = build_network_from_options(opt, source=args.opt)
        size, origin = resolve_input_size(args.input_size, opt, net, source=args.opt)
        result = benchmark(net, size, device=device, runs=args.runs, warmup=args.warmup,
                           channels_last=args.channels_last, use_compile=args.compile, fp16=args.fp16)
    except OptionsError as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        sys.exit(2)
    result.update(options=args.opt, options_name=opt.get('name'), input_source=origin)
    print(format_table(result))
    if args.output:
        os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
        with open(args.output, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {args.output}')


if __name__ == '__main__':
    main(sys.argv[1:])
