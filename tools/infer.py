"""Super-resolve images (no ground truth) with the network_g of a BasicSR options file and a trained checkpoint.

    python tools/infer.py -opt options/test/classic/srcnn_x2.yml --checkpoint experiments/.../net_g_latest.pth
        --input IMAGE_OR_FOLDER [--output DIR] [--tile 512 --tile-pad 16] [--suffix S] [--param-key auto]
        [--device cpu|cuda]

Writes <output>/<input stem>_<suffix>.png, by default under results/<options name>_infer/ with the options name as
suffix. `params_ema` of the checkpoint is used when present, else `params` (--param-key to choose). Networks with
one input channel run on Y (YCbCr, BasicSR's `color: y`) with bicubic Cb/Cr; three-channel networks on RGB.
--tile N runs the LR image in N x N tiles with --tile-pad pixels of context each side, in bounded memory.
The logic is in plugins/common/tiling.py.
Low-light networks (RGB + a brightness plane, plugins/lowlight/) need --brightness V [V ...]: the target mean
luminance in [0, 1]; one output <stem>_<suffix>_b<V>.png per value (logic in plugins/lowlight/infer.py).
Blind-SR networks (CMDSR, plugins/blindsr/) need a support set with the input's degradation: --support DIR (LR
support images, all of one size) or --self-support (patches cut from each input image; plugins/blindsr/support.py).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
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
    parser.add_argument('--brightness', type=float, nargs='+', default=None, metavar='V',
                        help='target mean luminance(s) in [0, 1] for networks with a brightness plane (low-light)')
    parser.add_argument('--support', default=None, metavar='DIR',
                        help='CMDSR: folder of LR support images with the same degradation as the input (blind SR)')
    parser.add_argument('--self-support', action='store_true',
                        help='CMDSR: cut the support patches from each input image itself (blind SR)')
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    import cv2
    import torch
    from tqdm import tqdm

    import plugins  # noqa: F401  (compat patches, then every registration)
    from plugins.common.complexity import input_channels
    from plugins.common.network_io import OptionsError, build_network_from_options, load_network_weights, load_options
    from plugins.common.tiling import list_images, read_image, super_resolve
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
        from plugins.lowlight.infer import check_infer_options
        brightness = check_infer_options(channels, args.brightness, args.tile, args.opt)
        if channels not in (1, 3) and not brightness:
            raise OptionsError(f'{args.opt}: network_g takes {channels} input channels; infer supports 1 (Y) or 3')
        from plugins.blindsr.support import support_binder
        bind_support = support_binder(net, args.support, args.self_support, device)
    except (OptionsError, FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr, flush=True)
        sys.exit(2)

    name = opt.get('name') or osp.splitext(osp.basename(args.opt))[0]
    out_dir = args.output or osp.join('results', f'{name}_infer')
    suffix = name if args.suffix is None else args.suffix
    os.makedirs(out_dir, exist_ok=True)
    net = net.eval().to(device)
    if brightness:
        from plugins.lowlight.infer import enhance, prepare_fast
        net = prepare_fast(net)
    print(f'{type(net).__name__} x{scale} ({channels} input channel{"s" if channels > 1 else ""}) from '
          f'{args.checkpoint} [{used or "state dict"}] on {device}, tile {args.tile or "off"}'
          f'{f" pad {args.tile_pad}" if args.tile else ""}: {len(files)} image(s) -> {out_dir}', flush=True)
    for path in tqdm(files, unit='img', desc='infer'):
        stem = osp.splitext(osp.basename(path))[0]
        stem = f'{stem}_{suffix}' if suffix else stem
        try:
            img = read_image(path)
            outputs = ([(f'{stem}_b{v:g}.png', enhance(net, img, v, device)) for v in brightness] if brightness
                       else [(f'{stem}.png', super_resolve(bind_support(img) if bind_support else net, img, scale,
                                                           channels, args.tile, args.tile_pad))])
        except (OptionsError, ValueError) as err:
            print(f'error: {path}: {err}', file=sys.stderr, flush=True)
            sys.exit(2)
        for file_name, sr in outputs:
            out_path = osp.join(out_dir, file_name)
            if not cv2.imwrite(out_path, sr):
                print(f'error: cannot write {out_path}', file=sys.stderr, flush=True)
                sys.exit(2)


if __name__ == '__main__':
    main(sys.argv[1:])
