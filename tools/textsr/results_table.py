"""Combine the E/M/H/A results of several text SR test runs into the tables of docs/textsr.md (one per metric).

    python tools/textsr/results_table.py --input results/textsr_bicubic_synth_test results/textsr_demo_synth_test [...]
        [--output tables.md]

Each input is a results folder (or a split_metrics.jsonl) written by tools/test.py with a TextSRModel options file;
the last line of each is used. Rows are named after the folder. The tables go to standard output, and to --output.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # the repository root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', nargs='+', required=True, metavar='RUN',
                        help='results folders or split_metrics.jsonl files')
    parser.add_argument('--output', default=None, help='also write the tables to this markdown file')
    args = parser.parse_args(argv)
    import plugins  # noqa: F401  (compat patches before basicsr is imported)
    from plugins.textsr.word_accuracy_metric import format_runs_tables, read_split_metrics
    runs = {}
    for run in args.input:
        path = run if run.endswith('.jsonl') else osp.join(run, 'split_metrics.jsonl')
        if not osp.isfile(path):
            parser.error(f'{path} does not exist: run tools/test.py with a text SR options file first')
        runs[osp.basename(osp.dirname(path) if run.endswith('.jsonl') else osp.normpath(run))] = read_split_metrics(path)
    tables = format_runs_tables(runs)
    print(tables)
    if args.output:
        os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
        with open(args.output, 'w') as f:
            f.write(tables + '\n')


if __name__ == '__main__':
    main()
