"""Run the network_g of a BasicSR options file on images without ground truth (super-resolution, or what a line's
network does: low-light enhancement at chosen brightness, blind SR with a support set).

    python tools/infer.py -opt options/test/classic/srcnn_x2.yml --checkpoint experiments/.../net_g_latest.pth
        --input IMAGE_OR_FOLDER [--output DIR] [--tile 512 --tile-pad 16] [--suffix S] [--param-key auto]
        [--device cpu|cuda] [--amp bf16|fp16] [--channels-last] [--compile [--compile-backend B]]
        [line flags: --brightness V [V ...] | --support DIR | --self-support]

Writes <output>/<input stem>_<suffix>.png, by default under results/<options name>_infer/ with the options name as
suffix. `params_ema` of the checkpoint is used when present, else `params` (--param-key to choose). Networks with
one input channel run on Y (YCbCr, BasicSR's `color: y`) with bicubic Cb/Cr; three-channel networks on RGB.
--tile N runs the LR image in N x N tiles with --tile-pad pixels of context each side, in bounded memory.
Networks that need more than an image are run by their line's adapter (plugins/common/inference.py), whose flags
are listed below by line. An input image that cannot be read (corrupt, not an image) is reported on one warning
line and skipped; the other images are written, and the tool then exits 1 with the count of skipped images.
--amp runs every image under torch.autocast on the device (bfloat16 or float16; outputs are cast back to float32
before they become 8-bit images), --channels-last puts the network (and the plain SR path's inputs) in the
channels-last memory format, --compile compiles network_g's forward in place with torch.compile
(plugins/common/speed_modes.py; CMDSR's adapter calls the sub-networks, which stay uncompiled). All three work with
--tile and with every line's adapter.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

import plugins  # noqa: E402,F401  (compat patches, then every registration, the lines' inference adapters too)
from plugins.common.inference import adapter_for, inference_adapters  # noqa: E402
from plugins.common.speed_modes import SpeedModes, add_speed_arguments  # noqa: E402
from plugins.engine.errors import OptionsError  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='BasicSR options file (network_g, scale and name are used)')
    parser.add_argument('--checkpoint', required=True, help='network checkpoint (.pth) of BasicSR or a state dict')
    parser.add_argument('--input', required=True, help='an image file or a folder of images')
    parser.add_argument('--output', default=None, help='output folder (default: results/<options name>_infer)')
    parser.add_argument('--suffix', default=None, help='appended to the file stems (default: the options name)')
    parser.add_argument('--param-key', default='auto', help="'auto' (params_ema, else params), 'params_ema', "
                        "'params', or '' for a bare state dict (default: auto)")
    parser.add_argument('--tile', type=int, default=0, help='tile size in LR pixels, 0 = whole image (default: 0)')
    parser.add_argument('--tile-pad', type=int, default=10, help='context around each tile, LR pixels (default: 10)')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    add_speed_arguments(parser)
    for adapter in inference_adapters():
        if adapter.flags:
            adapter.add_arguments(parser.add_argument_group(adapter.name))
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    import cv2
    import torch
    from tqdm import tqdm

    from plugins.common.complexity import input_channels
    from plugins.common.image_io import list_images, read_image
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import load_options
    try:
        device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise OptionsError('--device cuda: CUDA is not available on this machine; use --device cpu')
        if args.tile < 0 or args.tile_pad < 0:
            raise OptionsError(f'--tile and --tile-pad must be >= 0, got {args.tile} and {args.tile_pad}')
        files = list_images(args.input)
        opt = load_options(args.opt)
        scale = opt.get('scale')
        if not isinstance(scale, int) or scale < 1:
            raise OptionsError(f'{args.opt}: `scale` must be a positive integer, got {scale!r}')
        net = build_network_from_options(opt, source=args.opt)
        used = load_network_weights(net, args.checkpoint, args.param_key, what=f'network_g of {args.opt}')
        channels, _ = input_channels(net, opt.get('network_g'))
        adapter = adapter_for(net, channels, args, args.opt)
        modes = SpeedModes.from_args(args)
        run = adapter.prepare(modes.apply(net), channels, args, scale, args.opt, device)
    except (OptionsError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        sys.exit(2)

    name = opt.get('name') or osp.splitext(osp.basename(args.opt))[0]
    out_dir = args.output or osp.join('results', f'{name}_infer')
    suffix = name if args.suffix is None else args.suffix
    os.makedirs(out_dir, exist_ok=True)
    print(f'{type(net).__name__} x{scale} ({channels} input channel{"s" if channels > 1 else ""}) from '
          f'{args.checkpoint} [{used or "state dict"}] on {device} ({modes.describe()}), tile {args.tile or "off"}'
          f'{f" pad {args.tile_pad}" if args.tile else ""}: {len(files)} image(s) -> {out_dir}', flush=True)
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
        try:
            with modes.autocast(device):
                outputs = run(image)
        except (OptionsError, ValueError) as err:
            print(f'error: {path}: {err}', file=sys.stderr, flush=True)
            sys.exit(2)
        for output_suffix, image in outputs:
            out_path = osp.join(out_dir, f'{stem}{output_suffix}.png')
            if not cv2.imwrite(out_path, image):
                print(f'error: cannot write {out_path}', file=sys.stderr, flush=True)
                sys.exit(2)
    if failed:
        print(f'error: {len(failed)} of {len(files)} image(s) could not be read and were skipped: '
              f'{", ".join(failed[:5])}{", ..." if len(failed) > 5 else ""}', file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == '__main__':
    main(sys.argv[1:])
