"""Run a list of BasicSR options files at one iteration budget, then tabulate and plot their validation PSNR.

    python tools/classic/ablate.py -opt options/train/classic/srcnn_x2_mse.yml options/train/classic/srcnn_x2_l1.yml \\
        --iters 1000 --val-freq 100 --output docs/classic/ablation_x2 [--force_yml datasets:train:dataroot_gt=...]

Each run is `tools/train.py -opt X --force_yml ...` under the name `<name>_ablate<iters>` (so earlier experiments
are left alone); `--force_yml` entries are passed to every run, e.g. to point the data at 91-image/Set5. Writes
<output>.md (table), <output>.png (PSNR-vs-iteration plot) and <output>.json, and a bicubic row computed on the first
run's validation HR folder. Existing report files are refused before any run unless --overwrite is given (the
documented commands write the committed figures under docs/). Run it from the repository root (relative data paths).
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import plugins  # noqa: E402,F401


def main(argv=None):
    from tqdm import tqdm

    from plugins.classic.ablation import bicubic_baseline, save_report
    from plugins.engine.basicsr.budget_runs import existing_reports, run_one
    from plugins.engine.basicsr.options import apply_force_yml, load_options
    from plugins.engine.basicsr.options_check import check_basicsr_options
    from plugins.engine.errors import OptionsError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', nargs='+', required=True, help='BasicSR training options files')
    parser.add_argument('--iters', type=int, default=1000, help='iterations per run (default: 1000)')
    parser.add_argument('--val-freq', type=int, default=100, help='validate every N iterations (default: 100)')
    parser.add_argument('--output', '--out', dest='output', default='results/ablation',
                        help='output prefix (default: results/ablation)')
    parser.add_argument('--title', default=None, help='plot title')
    parser.add_argument('--force_yml', nargs='*', default=[], help='extra BasicSR overrides for every run')
    parser.add_argument('--overwrite', action='store_true', help='replace the report files if they exist')
    args = parser.parse_args(argv)
    if args.iters < 1 or args.val_freq < 1 or args.iters % args.val_freq:
        parser.error(f'--iters ({args.iters}) must be a positive multiple of --val-freq ({args.val_freq})')

    existing = existing_reports(args.output, ['.md', '.png', '.json'])
    if existing and not args.overwrite:
        parser.error(f'{", ".join(existing)} already exist: pass --overwrite to replace them, or choose another '
                     '--output (the documented commands write the committed figures under docs/)')
    try:  # every file is checked before the first run starts
        for path in args.opt:
            check_basicsr_options(path, is_train=True, force_yml=args.force_yml)
        first = apply_force_yml(load_options(args.opt[0]), args.force_yml, args.opt[0])
    except OptionsError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)
    val = first['datasets']['val']
    baseline = bicubic_baseline(val['dataroot_gt'], first['scale'])
    runs = []
    for path in tqdm(args.opt, desc='ablation', unit='run'):
        runs.append(run_one(path, args.iters, args.val_freq, f'ablate{args.iters}', args.force_yml,
                            osp.join(REPO, 'tools', 'train.py'), osp.join('results', 'ablation_logs')))
    title = args.title or f"{len(runs)} runs, {args.iters} iterations, validation on {val.get('name', 'val')}"
    report = save_report(runs, baseline, args.iters, args.output, title)
    print('\n' + report['text'])
    print(f"table: {report['table']}\nplot: {report['plot']}\ndata: {report['json']}")


if __name__ == '__main__':
    main()
