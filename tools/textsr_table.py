"""Combine the E/M/H/A results of several text SR test runs into the tables of docs/textsr.md (one per metric).

    python tools/textsr_table.py results/001_demo_bicubic_synth_test results/001_demo_TSRN_synth_test [...]

Each argument is a results folder (or a split_metrics.jsonl) written by tools/test.py with a TextSRModel
options file; the last line of each is used. Rows are named after the folder.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='+', help='results folders or split_metrics.jsonl files')
    args = parser.parse_args(argv)
    from plugins.textsr.metrics import read_split_metrics, format_runs_tables
    runs = {}
    for run in args.runs:
        path = run if run.endswith('.jsonl') else osp.join(run, 'split_metrics.jsonl')
        if not osp.isfile(path):
            parser.error(f'{path} does not exist: run tools/test.py with a text SR options file first')
        runs[osp.basename(osp.dirname(path) if run.endswith('.jsonl') else osp.normpath(run))] = read_split_metrics(path)
    print(format_runs_tables(runs))


if __name__ == '__main__':
    main()
