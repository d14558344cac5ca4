"""The main job of `make demo`: train SRCNN x2 (Y) on the demo data on CPU, compare it with bicubic on the
validation split, and draw LR | bicubic | ours | HR with PSNR-Y in the titles.

    python tools/classic/demo.py [-opt options/train/classic/srcnn_x2.yml] [--skip-training] [--output results/demo]
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import plugins  # noqa: E402,F401


def main(argv=None):
    from plugins.classic.bicubic_comparison import compare_with_bicubic, save_comparison_figure
    from plugins.common.complexity import input_channels
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import load_options

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default=osp.join(REPO, 'options/train/classic/srcnn_x2.yml'), help='training options')
    parser.add_argument('--skip-training', action='store_true', help='evaluate the existing net_g_latest.pth')
    parser.add_argument('--output', '--out', dest='output', default='results/demo',
                        help='folder for the picture and metrics (default: results/demo)')
    args = parser.parse_args(argv)

    opt = load_options(args.opt)
    if not args.skip_training:
        subprocess.run([sys.executable, osp.join(REPO, 'tools', 'train.py'), '-opt', args.opt], check=True)
    exp_root = osp.join('experiments', opt['name'])
    ckpt = osp.join(exp_root, 'models', 'net_g_latest.pth')
    net = build_network_from_options(opt, source=args.opt).eval()
    used_key = load_network_weights(net, ckpt)
    scale, val = opt['scale'], opt['datasets']['val']
    rows = compare_with_bicubic(net, val['dataroot_gt'], val['dataroot_lq'], scale, input_channels(net)[0])

    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ('psnr_bicubic', 'psnr_ours', 'ssim_bicubic', 'ssim_ours')}
    title = (f"{opt['network_g']['type']} x{scale} after {opt['train']['total_iter']} CPU iterations "
             f"({used_key}) - mean PSNR-Y bicubic {mean['psnr_bicubic']:.2f} dB, ours {mean['psnr_ours']:.2f} dB")
    picture = save_comparison_figure(rows, osp.join(args.output, f"{opt['name']}.png"), title)
    metrics = {'options': args.opt, 'checkpoint': ckpt, 'param_key': used_key, 'mean': mean,
               'images': [{k: v for k, v in r.items() if k.startswith(('name', 'psnr', 'ssim'))} for r in rows]}
    with open(osp.join(args.output, f"{opt['name']}.json"), 'w') as f:
        json.dump(metrics, f, indent=2)

    print(f"\n{'image':<14}{'PSNR-Y bicubic':>16}{'PSNR-Y ours':>14}{'SSIM-Y bicubic':>16}{'SSIM-Y ours':>13}")
    for r in rows + [dict(name='mean', **mean)]:
        print(f"{r['name']:<14}{r['psnr_bicubic']:>16.2f}{r['psnr_ours']:>14.2f}{r['ssim_bicubic']:>16.4f}"
              f"{r['ssim_ours']:>13.4f}")
    logs = sorted(glob.glob(osp.join(exp_root, 'train_*.log')), key=os.path.getmtime)
    print(f'\npicture: {picture}\nmetrics: {osp.join(args.output, opt["name"] + ".json")}')
    print(f"training log: {logs[-1] if logs else exp_root}")


if __name__ == '__main__':
    main()
