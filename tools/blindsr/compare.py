"""Conditioned (CMDSR) vs unconditioned (the same BaseNet, no ConditionNet) at one training budget, on the same
task-grouped data, then PSNR per degradation task on the held-out validation images.

    python tools/blindsr/compare.py --iters 600 --output docs/blindsr/compare_x4 \\
        [--cond options/train/blindsr/cmdsr_x4_demo.yml --plain options/train/blindsr/basenet_x4_demo.yml]
        [--force_yml network_g:num_feat=32 network_g:num_block=6] [--cond-force-yml train:condition_every=2]

Both runs are real `tools/train.py` processes (names `<name>_cmp<iters>`), with the same seed, so they draw the
same tasks in the same order; `--force_yml` entries go to both (keys must exist in both files). The EMA weights of
the last checkpoint are evaluated on every task of --tasks (blur sigma/noise pairs; LR with seeded noise, support
cut from each LR image), plus bicubic, plus CMDSR given the support set of ANOTHER task (does the condition
matter?). Writes <output>.md (table + settings) and <output>.json; existing ones are refused before any run unless
--overwrite is given. Run it from the repository root.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

import plugins  # noqa: E402,F401
from tqdm import tqdm  # noqa: E402


def parse_tasks(text: str):
    """'0:0,2.6:15' -> ((0.0, 0.0), (2.6, 15.0))."""
    try:
        return tuple(tuple(float(v) for v in pair.split(':')) for pair in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'--tasks must be sigma:noise pairs separated by commas, got {text!r}')


def main(argv=None):
    from plugins.blindsr.task_evaluation import DEFAULT_TASKS, evaluate_tasks, markdown_table, task_datasets
    from plugins.engine.basicsr.budget_runs import existing_reports, run_one
    from plugins.engine.basicsr.networks import build_network_from_options, load_network_weights
    from plugins.engine.basicsr.options import apply_force_yml, load_options
    from plugins.engine.basicsr.options_check import check_basicsr_options
    from plugins.engine.errors import OptionsError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cond', default='options/train/blindsr/cmdsr_x4_demo.yml', help='CMDSR options')
    parser.add_argument('--plain', default='options/train/blindsr/basenet_x4_demo.yml', help='BaseNet options')
    parser.add_argument('--iters', type=int, default=600, help='iterations per run (default: 600)')
    parser.add_argument('--tasks', type=parse_tasks, default=DEFAULT_TASKS, help='sigma:noise,... evaluation tasks')
    parser.add_argument('--output', '--out', dest='output', default='results/compare_blindsr',
                        help='output prefix (default: results/compare_blindsr)')
    parser.add_argument('--force_yml', nargs='*', default=[], help='BasicSR overrides for both runs')
    parser.add_argument('--cond-force-yml', '--cond-force_yml', dest='cond_force_yml', nargs='*', default=[],
                        help='BasicSR overrides for the CMDSR run only')
    parser.add_argument('--overwrite', action='store_true', help='replace the report files if they exist')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be positive, got {args.iters}')
    existing = existing_reports(args.output, ['.md', '.json'])
    if existing and not args.overwrite:
        parser.error(f'{", ".join(existing)} already exist: pass --overwrite to replace them, or choose another '
                     '--output (the documented commands write the committed figures under docs/)')
    try:
        opts = {}
        extra = {'cond': args.force_yml + args.cond_force_yml, 'plain': args.force_yml}
        for key, path in (('cond', args.cond), ('plain', args.plain)):
            check_basicsr_options(path, is_train=True, force_yml=extra[key])
            opts[key] = apply_force_yml(load_options(path), extra[key], path)
    except OptionsError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(2)

    start = time.time()
    runs, nets = {}, {}
    for key in tqdm(('cond', 'plain'), desc='compare', unit='run'):
        path = getattr(args, key)
        runs[key] = run_one(path, args.iters, args.iters, f'cmp{args.iters}', extra[key],
                            osp.join(REPO, 'tools', 'train.py'), osp.join('results', 'compare_blindsr_logs'))
        net = build_network_from_options(opts[key], source=path)
        ckpt = osp.join('experiments', f"{opts[key]['name']}_cmp{args.iters}", 'models', 'net_g_latest.pth')
        load_network_weights(net, ckpt, 'auto')
        nets[f"{opts[key]['network_g']['type']} ({'conditioned' if key == 'cond' else 'unconditioned'})"] = net.eval()
        print(f"{key}: {runs[key]['seconds']:.0f} s", flush=True)

    cond = opts['cond']
    val = next(v for k, v in cond['datasets'].items() if k.startswith('val'))
    cond_net = next(n for n in nets.values() if hasattr(n, 'condition_net'))
    datasets = task_datasets(val['dataroot_gt'], cond['scale'], args.tasks, cond_net.support_size or 20,
                             int(val.get('support_patch', 48)))
    scores = evaluate_tasks(nets, datasets, cond['scale'], wrong_support_for=[next(iter(nets))])
    table = markdown_table(scores)
    settings = (f"{args.iters} iterations each, {cond['datasets']['train']['batch_size_per_gpu']} tasks x "
                f"{cond['datasets']['train']['patches_per_task']} patches per batch, HR crops "
                f"{cond['datasets']['train']['gt_size']}, overrides: {' '.join(args.force_yml) or 'none'}, CMDSR only: "
                f"{' '.join(args.cond_force_yml) or 'none'}; "
                f"training wall time: CMDSR {runs['cond']['seconds']:.0f} s, BaseNet {runs['plain']['seconds']:.0f} s; "
                f"PSNR-Y (border {cond['scale']}) on {val['dataroot_gt']}")
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    with open(args.output + '.md', 'w') as f:
        f.write(table + '\n' + settings + '\n')
    with open(args.output + '.json', 'w') as f:
        json.dump({'iters': args.iters, 'tasks': args.tasks, 'force_yml': args.force_yml,
                   'cond_force_yml': args.cond_force_yml, 'scores': scores,
                   'runs': runs, 'seconds_total': round(time.time() - start, 1)}, f, indent=2)
    print('\n' + table + '\n' + settings)
    print(f'table: {args.output}.md\ndata: {args.output}.json')


if __name__ == '__main__':
    main()
