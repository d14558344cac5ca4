"""Convert a reference implementation's checkpoint into one our options and configs load.

    python tools/convert_checkpoint.py --from textzoom-tsrn IN.pth OUT.pth
    python tools/convert_checkpoint.py --from cmdsr IN.pth OUT.pth
    python tools/convert_checkpoint.py --from pdgan IN.pth OUT.pth

Each `--from` names a reference code base; its converter lives in the line that owns the network
(plugins/<line>/reference_checkpoints.py) and documents the key mapping, the ranges and what is dropped. The input is
read with torch.load(weights_only=True), so a pickled whole model (not a state dict) is refused with a clear line.
The output is written atomically; the tool prints how the options or config load it.
"""
import argparse
import importlib
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `import plugins`

# --from name -> (module, function, what it converts). A converter takes the loaded checkpoint and returns (the object
# to save, a line saying how to load it); it raises OptionsError for keys or shapes it does not expect. Imported
# lazily, so one conversion costs only its own line's imports.
CONVERTERS = {
    'textzoom-tsrn': ('plugins.textsr.reference_checkpoints', 'convert_textzoom_tsrn',
                      "TextZoom's TSRN (FudanVI/TextZoom, src/model/tsrn.py) -> our TSRN network_g"),
    'cmdsr': ('plugins.blindsr.reference_checkpoints', 'convert_official_cmdsr',
              'the official CMDSR code (BaseNet + ConditionNet) -> our CMDSR network_g'),
    'pdgan': ('plugins.inpaint.reference_checkpoints', 'convert_pdgan_generator',
              "PD-GAN's generator (KumapowerLIU/PD-GAN) -> our SPDNorm generator"),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--from', dest='source', required=True, choices=sorted(CONVERTERS),
                        help='; '.join(f'{k}: {v[2]}' for k, v in sorted(CONVERTERS.items())))
    parser.add_argument('input', metavar='IN.pth', help="the reference code's checkpoint")
    parser.add_argument('output', metavar='OUT.pth', help='where to write ours')
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    import torch

    import plugins  # noqa: F401  (compat patches first)
    from plugins.engine.checkpoint_files import atomic_torch_save, load_error_reason
    from plugins.engine.errors import OptionsError
    module_name, function_name, _ = CONVERTERS[args.source]
    convert = getattr(importlib.import_module(module_name), function_name)
    try:
        if not osp.isfile(args.input):
            raise OptionsError(f'{args.input}: no such file')
        try:
            checkpoint = torch.load(args.input, map_location='cpu', weights_only=True)
        except Exception as err:  # noqa: BLE001  (any unpickling failure means the same thing to the user)
            raise OptionsError(f'{args.input}: not a checkpoint of tensors that can be read safely '
                               f'({load_error_reason(err)}); save the state_dict() of the reference model and '
                               'convert that') from None
        converted, how_to_load = convert(checkpoint)
        atomic_torch_save(converted, args.output)
    except OptionsError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'{args.source}: {args.input} -> {args.output}')
    print(how_to_load)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
