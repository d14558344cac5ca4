"""Write N completions of one image side by side: masked input | prior (PD-GAN) | completion 1..N | original.

    python tools/inpaint/sample.py options/mmagic/inpaint/pdgan_demo.py work_dirs/pdgan_demo/iter_600.pth \\
        --input datasets/demo/val/HR/chelsea.png [--mask MASK.png | --mask-mode ff|bbox|irregular --mask-seed 0] \\
        [--num 4] [--seed 0] [--size 64] [--zoom 3] [--output completions.png] [--threshold 127 | --strict-mask]

The image is centre-cropped to a square and resized to --size (default: the PD-GAN generator's output size, else
64). A mask file must have the image's size; white = hole; grey levels are holes above --threshold (127), or
rejected with --strict-mask. Without --mask a mask is generated (MMagic's free-form / box / irregular generators).
Each completion draws its own noise vector (seeds --seed, --seed+1, ...); known pixels are the input's.
The logic is in plugins/inpaint/sampling.py.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='mmengine config of the model, e.g. options/mmagic/inpaint/pdgan_demo.py')
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py for that config')
    parser.add_argument('--input', '--image', dest='input', required=True, help='the image to complete')
    parser.add_argument('--mask', default=None, help='mask image of the same size, white = hole')
    parser.add_argument('--mask-mode', default='ff', choices=('ff', 'bbox', 'irregular'),
                        help='generated mask when --mask is not given (default: ff, free-form strokes)')
    parser.add_argument('--mask-seed', type=int, default=0, help='seed of the generated mask (default: 0)')
    parser.add_argument('--num', type=int, default=4, help='number of completions (default: 4)')
    parser.add_argument('--seed', type=int, default=0, help='noise seed of the first completion (default: 0)')
    parser.add_argument('--size', type=int, default=None, help='working size (default: the model\'s, else 64)')
    parser.add_argument('--threshold', type=int, default=127, help='grey levels above it are holes (default: 127)')
    parser.add_argument('--strict-mask', action='store_true', help='reject a mask that is not black and white')
    parser.add_argument('--zoom', type=int, default=1, help='enlarge the picture N times (nearest) for viewing')
    parser.add_argument('--output', '--out', dest='output', default='completions.png',
                        help='output picture (default: completions.png)')
    return parser.parse_args(argv)


def _die(message: str) -> None:
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv):
    args = parse_args(argv)
    import cv2

    import plugins.inpaint  # noqa: F401  (compat, then the inpainting line's MMagic registrations)
    from plugins.inpaint.sampling import (completions, load_inpaintor, prepare, side_by_side, square_resize,
                                          to_uint8)

    if args.num < 1:
        _die('--num must be at least 1')
    image = cv2.imread(args.input, cv2.IMREAD_COLOR)
    if image is None:
        _die(f'cannot read image {args.input!r}')
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    mask = None
    if args.mask:
        mask = cv2.imread(args.mask, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            _die(f'cannot read mask {args.mask!r}')
    try:
        model = load_inpaintor(args.config, args.checkpoint)
        generator = model.inference_generator()
        size = args.size or getattr(generator, 'out_size', 64)
        masked, hole = prepare(rgb, size, mask, args.mask or 'mask',
                               args.mask_mode, args.mask_seed, args.threshold,
                               'error' if args.strict_mask else 'threshold')
        outs = completions(model, masked, hole, args.num, args.seed)
    except (FileNotFoundError, ValueError) as err:
        _die(str(err))
    if len(outs) < args.num:
        print(f'{type(model).__name__} is deterministic: one completion instead of {args.num}', flush=True)
    shown = masked + hole  # the hole drawn white (1 in [-1, 1])
    panels = [to_uint8(shown)]
    if hasattr(model, 'prior_image'):
        panels.append(to_uint8(model.prior_image(masked, hole)))
    panels += [to_uint8(out) for out in outs]
    panels.append(square_resize(rgb, size))  # the original
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    picture = side_by_side(panels)
    if args.zoom > 1:
        picture = cv2.resize(picture, None, fx=args.zoom, fy=args.zoom, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(args.output, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    prior = 'prior, ' if hasattr(model, 'prior_image') else ''
    print(f'wrote {args.output}: {len(panels)} panels of {size}x{size} (input, {prior}{len(outs)} completion(s), '
          'original)', flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
