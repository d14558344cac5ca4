"""Run a trained network on images without ground truth: the network_g of a BasicSR options file, or the model of an
mmengine config with an mmengine checkpoint (super-resolution, or what a line's network does: low-light
enhancement at chosen brightness, blind SR with a support set, text SR of word crops, inpainting with masks).

    python tools/infer.py -opt options/test/classic/srcnn_x2.yml --checkpoint experiments/.../net_g_latest.pth
        --input IMAGE_OR_FOLDER [--output DIR] [--tile 512 --tile-pad 16] [--suffix S] [--param-key auto]
        [--device cpu|cuda] [--amp bf16|fp16] [--channels-last] [--compile [--compile-backend B]]
        [line flags: --brightness V [V ...] | --support DIR | --self-support | --recognizer CRNN.pth|ppocr]
    python tools/infer.py options/mmagic/classic/srcnn_x2_demo.py --checkpoint work_dirs/srcnn_x2_demo/iter_300.pth
        --input IMAGE_OR_FOLDER [same flags]
    python tools/infer.py options/mmagic/inpaint/pdgan_demo.py --checkpoint work_dirs/pdgan_demo/iter_600.pth
        --input IMAGE_OR_FOLDER --mask MASK_OR_FOLDER [--num K] [--noise-seed 0] [--inpaint-size S]

Writes <output>/<input stem>_<suffix>.png, by default under results/<options name or config stem>_infer/ with that
name as suffix. BasicSR checkpoints: `params_ema` is used when present, else `params` (--param-key to choose).
mmengine checkpoints (written by tools/train.py for the config, `state_dict` of the whole model) are loaded
strictly; the generator runs with the normalisation and channel order of the model's data_preprocessor, the EMA
generator where the model keeps one. Networks with one input channel run on Y (YCbCr, BasicSR's `color: y`) with
bicubic Cb/Cr; three-channel networks on RGB. --tile N runs the LR image in N x N tiles with --tile-pad pixels of
context each side, in bounded memory.
Networks that need more than an image are run by their line's adapter (plugins/common/inference.py), whose flags
are listed below by line; an mmengine config's line adds its flags when the config is named (inpainting: --mask,
--num, --noise-seed, --inpaint-size: `python tools/infer.py options/mmagic/inpaint/base_demo.py --help`).
Text SR (TSRN options): each word crop is resized to TextZoom's LR size (64x16 at x2) with the text-mask channel
built as in training; --recognizer also writes <output>/text.csv (file,bicubic_text,sr_text).
An input image that cannot be read (corrupt, not an image) is reported on one warning line and skipped; the other
images are written, and the tool then exits 1 with the count of skipped images.
--amp runs every image under torch.autocast on the device (bfloat16 or float16; outputs are cast back to float32
before they become 8-bit images), --channels-last puts the network (and the plain SR path's inputs) in the
channels-last memory format, --compile compiles the network's forward in place with torch.compile
(plugins/common/speed_modes.py; CMDSR's adapter calls the sub-networks, which stay uncompiled). All three work with
--tile and with every line's adapter.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

import plugins  # noqa: E402,F401  (compat patches, then every registration, the BasicSR lines' inference adapters too)
from plugins.common.inference import adapter_for, build_config_for_inference, inference_adapters  # noqa: E402
from plugins.common.speed_modes import SpeedModes, add_speed_arguments  # noqa: E402
from plugins.engine.errors import OptionsError  # noqa: E402


def config_argument(argv):
    """The mmengine config (.py) named on the command line (positional, or as -opt's value), else None."""
    return next((a for a in argv if a.endswith('.py') and not a.startswith('-')), None)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=None,
                        help='an mmengine config (.py) whose model to run (instead of -opt)')
    parser.add_argument('-opt', default=None, help='BasicSR options file (network_g, scale and name are used), or an '
                        'mmengine config')
    parser.add_argument('--checkpoint', required=True,
                        help='network checkpoint (.pth): BasicSR\'s (or a state dict), or mmengine\'s for a config')
    parser.add_argument('--input', required=True, help='an image file or a folder of images')
    parser.add_argument('--output', default=None, help='output folder (default: results/<name>_infer)')
    parser.add_argument('--suffix', default=None, help='appended to the file stems (default: the options name or '
                        'config stem)')
    parser.add_argument('--param-key', default=None, help="BasicSR checkpoints: 'auto' (params_ema, else params), "
                        "'params_ema', 'params', or '' for a bare state dict (default: auto)")
    parser.add_argument('--tile', type=int, default=0, help='tile size in LR pixels, 0 = whole image (default: 0)')
    parser.add_argument('--tile-pad', type=int, default=10, help='context around each tile, LR pixels (default: 10)')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    add_speed_arguments(parser)
    for adapter in inference_adapters():
        if adapter.flags:
            adapter.add_arguments(parser.add_argument_group(adapter.name))
    args = parser.parse_args(argv)
    if args.config is not None and args.config.endswith(('.yml', '.yaml')) and args.opt is None:
        args.opt, args.config = args.config, None  # a BasicSR options file given without -opt
    if args.config is not None and not args.config.endswith('.py'):
        parser.error(f'{args.config}: expected an mmengine config (.py) or -opt OPTIONS.yml')
    if (args.opt is None) == (args.config is None):
        parser.error('give one BasicSR options file (-opt X.yml) or one mmengine config (X.py)')
    return args


def _error(message, status=2):
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.exit(status)


def load_basicsr(args):
    """(network, input channels, scale, name, the checkpoint entry used) of -opt X.yml."""
    from plugins.common.complexity import input_channels
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import load_options
    opt = load_options(args.opt)
    scale = opt.get('scale')
    if not isinstance(scale, int) or scale < 1:
        raise OptionsError(f'{args.opt}: `scale` must be a positive integer, got {scale!r}')
    net = build_network_from_options(opt, source=args.opt)
    used = load_network_weights(net, args.checkpoint, args.param_key or 'auto', what=f'network_g of {args.opt}')
    channels, _ = input_channels(net, opt.get('network_g'))
    return net, net, channels, scale, opt.get('name') or osp.splitext(osp.basename(args.opt))[0], used or 'state dict'


def load_mmengine(path, cfg, args):
    """(network to run, the network it names, input channels, scale, name, 'state_dict') of an mmengine config: a
    line's adapter builds the models it runs itself (inpainting), else the image network of the config's model."""
    from plugins.common.complexity import input_channels
    from plugins.engine.mmengine.config_model import config_scale, image_network
    if args.param_key is not None:
        raise OptionsError('--param-key is for BasicSR checkpoints; an mmengine checkpoint holds the whole model')
    name = osp.splitext(osp.basename(path))[0]
    model, by_adapter = build_config_for_inference(cfg, path, args.checkpoint)
    if by_adapter:  # a model that takes more than an image (its adapter knows what): no channel count
        return model, None, None, 1, name, 'state_dict'
    net, generator = image_network(model, cfg)
    channels, _ = input_channels(generator)
    return net, generator, channels, config_scale(cfg, net, channels, path), name, 'state_dict'


def main(argv):
    config = config_argument(argv)
    cfg = None
    asks_help = '-h' in argv or '--help' in argv
    if config is not None and (osp.isfile(config) or not asks_help):
        try:  # imports the config's custom_imports: its line's components and inference adapter (their flags)
            from plugins.engine.mmengine.config_model import read_config
            cfg = read_config(config)
        except OptionsError as err:
            _error(err)
    args = parse_args(argv)
    import cv2
    import torch
    from tqdm import tqdm

    from plugins.common.image_io import list_images, read_image
    where = args.config or args.opt
    try:
        device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise OptionsError('--device cuda: CUDA is not available on this machine; use --device cpu')
        if args.tile < 0 or args.tile_pad < 0:
            raise OptionsError(f'--tile and --tile-pad must be >= 0, got {args.tile} and {args.tile_pad}')
        files = list_images(args.input)
        if cfg is not None:
            net, named, channels, scale, name, used = load_mmengine(where, cfg, args)
        else:
            net, named, channels, scale, name, used = load_basicsr(args)
        adapter = adapter_for(net, channels, args, where)
        modes = SpeedModes.from_args(args)
        run = adapter.prepare(modes.apply(net), channels, args, scale, where, device)
    except (OptionsError, FileNotFoundError) as err:
        _error(err)

    out_dir = args.output or osp.join('results', f'{name}_infer')
    suffix = name if args.suffix is None else args.suffix
    os.makedirs(out_dir, exist_ok=True)
    named = net if named is None else named
    inputs = f' ({channels} input channel{"s" if channels != 1 else ""})' if channels is not None else ''
    print(f'{type(named).__name__}{f" x{scale}" if scale != 1 else ""}{inputs} from {args.checkpoint} [{used}] on '
          f'{device} ({modes.describe()}), tile '
          f'{args.tile or "off"}{f" pad {args.tile_pad}" if args.tile else ""}: {len(files)} image(s) -> {out_dir}',
          flush=True)
    failed = []
    for path in tqdm(files, unit='img', desc='infer'):
        stem = osp.splitext(osp.basename(path))[0]
        stem = f'{stem}_{suffix}' if suffix else stem
        try:
            image = read_image(path)
        except OptionsError as err:  # a corrupt or unreadable image: reported, the others still run
            failed.append(path)
            tqdm.write(f'warning: skipped {path}: {err}', file=sys.stderr)
            continue
        adapter.start_file(path)
        try:
            with modes.autocast(device):
                outputs = run(image)
        except (OptionsError, ValueError) as err:
            _error(f'{path}: {err}')
        for output_suffix, image in outputs:
            out_path = osp.join(out_dir, f'{stem}{output_suffix}.png')
            if not cv2.imwrite(out_path, image):
                _error(f'cannot write {out_path}')
    for line in adapter.finish(out_dir):
        print(line, flush=True)
    if failed:
        _error(f'{len(failed)} of {len(files)} image(s) could not be read and were skipped: '
               f'{", ".join(failed[:5])}{", ..." if len(failed) > 5 else ""}', status=1)


if __name__ == '__main__':
    main(sys.argv[1:])
