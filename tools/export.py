"""Export a trained network to TorchScript and ONNX in its inference form, with dynamic height and width where the
network allows them, and check each exported file against PyTorch on an input of another size.

    python tools/export.py -opt options/test/classic/srcnn_x2.yml --checkpoint experiments/.../net_g_latest.pth
        --output exported/ [--format torchscript onnx] [--input-size 64x64] [--network network_g] [--param-key auto]
    python tools/export.py options/mmagic/inpaint/base_demo.py --checkpoint work_dirs/base_demo/iter_600.pth
        --output exported/

Writes <output>/<name>.pt (TorchScript, torch.jit.trace; load with torch.jit.load) and <output>/<name>.onnx
(opset 17, input names and dynamic axes printed), <name> being the options name or config stem. Each file is run on
random inputs of another height and width than the trace's (onnxruntime for ONNX) and compared with the PyTorch
network: the largest absolute difference is printed, and must be within 1e-3.
Inference forms: one image (N, C, H, W) for the SR networks (C = 1 for Y-channel networks; 4 = RGB + brightness
plane for the low-light networks, image + mask for TSRN and the inpainting encoder-decoder); CMDSR takes the image
and its support set (1, S, C, Hs, Ws); CRNN a grey word image (N, 1, 32, W), W dynamic; PD-GAN's SPDNorm generator
masked image, mask and noise at the fixed size it generates (the prior network runs inside); the inpainting models
of mmengine configs export their completion, known pixels kept. Networks that cannot be exported are named with the reason.
ONNX needs the export extra (pip install -e .[export]: onnx, onnxruntime).

Exit status: 0 when every asked format was exported and passed its check; 1 when a format could not be exported or
its check failed (the line says why; the other formats are still written); 2 for bad usage (unreadable options,
checkpoint that does not fit).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

import plugins  # noqa: E402,F401  (compat patches, then every BasicSR registration)
from plugins.common.export import FORMATS  # noqa: E402
from plugins.engine.errors import OptionsError  # noqa: E402


def parse_size(text: str):
    parts = str(text).lower().split('x')
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f'expected HxW (e.g. 64x64) or one size, got {text!r}')
    return size


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=None, help='an mmengine config (.py) whose generator to export')
    parser.add_argument('-opt', default=None, help='BasicSR options file (its network_g), or an mmengine config')
    parser.add_argument('--checkpoint', required=True,
                        help='network checkpoint (.pth): BasicSR\'s (or a state dict), or mmengine\'s for a config')
    parser.add_argument('--output', required=True, help='folder for <name>.pt and <name>.onnx')
    parser.add_argument('--format', nargs='+', choices=FORMATS, default=list(FORMATS),
                        help='formats to write (default: both)')
    parser.add_argument('--input-size', type=parse_size, default=(64, 64), metavar='HxW',
                        help='height and width of the trace input (default: 64x64; the check uses another size)')
    parser.add_argument('--network', default='network_g',
                        help='BasicSR options: which network of the options to export (default: network_g)')
    parser.add_argument('--param-key', default='auto', help="BasicSR checkpoints: 'auto' (params_ema, else params), "
                        "'params_ema', 'params', or '' for a bare state dict (default: auto)")
    args = parser.parse_args(argv)
    if args.opt is None and args.config is None or args.opt is not None and args.config is not None:
        parser.error('give one BasicSR options file (-opt X.yml) or one mmengine config (X.py)')
    return args


def load_basicsr(path, args):
    """(network, its options, name) of -opt X.yml with the checkpoint's weights."""
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import load_options
    opt = load_options(path)
    net = build_network_from_options(opt, key=args.network, source=path)
    load_network_weights(net, args.checkpoint, args.param_key, what=f'{args.network} of {path}')
    name = opt.get('name') or osp.splitext(osp.basename(path))[0]
    return net, opt.get(args.network), name if args.network == 'network_g' else f'{name}_{args.network}'


def load_mmengine(path, args):
    """(generator, None, config stem) of an mmengine config with an mmengine checkpoint: the network the model runs
    at test time (the EMA generator where it keeps one). A line's inference adapter builds the models it runs
    itself (PD-GAN takes its prior's weights from the checkpoint)."""
    from plugins.common.inference import build_config_for_inference
    from plugins.engine.mmengine.config_model import generator_of, read_config
    if args.network != 'network_g' or args.param_key != 'auto':
        raise OptionsError('--network and --param-key are for BasicSR options; an mmengine checkpoint holds the '
                           'whole model, whose generator is exported')
    cfg = read_config(path)  # imports its custom_imports: the line's components and adapter
    model = build_config_for_inference(cfg, path, args.checkpoint)[0].eval()
    if callable(getattr(model, 'inpaint', None)):  # an inpainting model: its inference is inpaint(masked, mask, ...)
        return model, None, osp.splitext(osp.basename(path))[0]
    return generator_of(model), None, osp.splitext(osp.basename(path))[0]


def main(argv):
    args = parse_args(argv)
    from plugins.common.export import NotExportable, export_and_check, export_form
    path = args.config or args.opt
    try:
        if not osp.isfile(path):
            raise OptionsError(f'options file or config not found: {path}')
        net, net_opt, name = (load_mmengine if path.endswith('.py') else load_basicsr)(path, args)
        form = export_form(net, net_opt, args.input_size)
    except NotExportable as err:
        print(f'{type(net).__name__}: not exportable: {err}', flush=True)
        sys.exit(1)
    except (OptionsError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        sys.exit(2)
    os.makedirs(args.output, exist_ok=True)
    print(f'{type(net).__name__} ({path}): {form.note}')
    print('inputs: ' + ', '.join(f'{n} {"x".join(map(str, s))}' + (f' (dynamic: {", ".join(form.dynamic[n].values())})'
                                                                     if form.dynamic.get(n) else '')
                                 for n, s in form.inputs.items()))
    results = export_and_check(form, args.output, name, args.format)
    for result in results:
        print(result.line(), flush=True)
    if not all(result.ok for result in results):
        sys.exit(1)


if __name__ == '__main__':
    main(sys.argv[1:])
