"""Complexity of a network: parameters, FLOPs, latency and peak memory at a given input size.

Used by ``tools/benchmark.py``. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts
convolutions (transposed ones too), matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``, hence ``nn.Linear``)
and scaled-dot-product attention, at 2 FLOPs per multiply-accumulate, without bias additions. Element-wise
operations, activations, interpolation (e.g. SRCNN's bicubic pre-upsampling), normalisation and pooling are NOT
counted. MACs are reported as FLOPs / 2.
"""
import copy
import platform
import resource
import statistics
import time
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..engine.errors import OptionsError
from .speed_modes import AMP_DTYPES, SpeedModes

FLOP_NOTE = ('FLOPs: torch.utils.flop_counter.FlopCounterMode, 2 per multiply-accumulate; counts convolutions '
             '(incl. transposed), matmul/mm/addmm/bmm/baddbmm (nn.Linear) and scaled-dot-product attention; '
             'does NOT count biases, element-wise ops, activations, interpolation, normalisation or pooling. '
             'MACs = FLOPs / 2.')
_IN_CHANNEL_KEYS = ('num_in_ch', 'in_channels', 'in_nc', 'in_chans')


def input_channels(net: nn.Module, net_opt: Optional[Dict] = None) -> Tuple[Optional[int], str]:
    """Number of input channels of ``net``, and where it was read.

    Args:
        net (nn.Module): The network.
        net_opt (dict | None): Its ``network_g`` options; ``num_in_ch`` (or ``in_channels``, ``in_nc``,
            ``in_chans``) there wins over an ``int`` attribute of that name on ``net`` itself (a wrapper that
            declares its input, such as the inpainting step ``tools/benchmark.py`` times), which wins over the
            first convolution of ``net``.

    Returns:
        (channels or None when unknown, a description of the source such as 'network_g.num_in_ch').
    """
    for key in _IN_CHANNEL_KEYS:
        if net_opt and isinstance(net_opt.get(key), int):
            return net_opt[key], f'network_g.{key}'
    for key in _IN_CHANNEL_KEYS:
        value = getattr(net, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value, f'{type(net).__name__}.{key}'
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels, f'in_channels of the first convolution ({name})'
    return None, 'unknown'


def parse_input_size(text: str) -> Tuple[int, int, int, int]:
    """Parse 'NxCxHxW' (e.g. '1x3x1080x1920') into four positive ints, with a clear error otherwise."""
    parts = str(text).lower().replace(',', 'x').split('x')
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 4 or min(size) < 1:
        raise OptionsError(f'--input-size must be N x C x H x W with positive integers, e.g. 1x3x1080x1920, '
                           f'got {text!r}')
    return size


def resolve_input_size(text: Optional[str], opt: Dict, net: nn.Module, default: str = '1x3x1080x1920',
                       source: str = 'options') -> Tuple[Tuple[int, int, int, int], str]:
    """The benchmark input size, and a description of where its channel count came from.

    Precedence: ``text`` (``--input-size``), then the options' top-level ``benchmark: {input_size: [N, C, H, W]}``,
    then ``default`` with C replaced by the network's input channels (1 for a Y-channel network).

    Args:
        text (str | None): The user's 'NxCxHxW', or None.
        opt (dict): The options; ``opt['network_g']`` describes ``net``.
        net (nn.Module): The built network.
        default (str): The size used when neither gives one. Default: '1x3x1080x1920'.
        source (str): The options file name, for messages.
    """
    channels, where = input_channels(net, opt.get('network_g'))
    if text is not None:
        size, origin = parse_input_size(text), 'given by --input-size'
    elif isinstance(opt.get('benchmark'), dict) and opt['benchmark'].get('input_size') is not None:
        value = opt['benchmark']['input_size']
        try:
            size = parse_input_size('x'.join(str(v) for v in value) if isinstance(value, (list, tuple)) else value)
        except OptionsError as err:
            raise OptionsError(f'{source}: benchmark.input_size: {err}') from err
        origin = f'benchmark.input_size of {source}'
    else:
        size = parse_input_size(default)
        if channels is not None:
            size = (size[0], channels) + size[2:]
        origin = where if channels is not None else 'default size; the input channels of the network are unknown'
    if channels is not None and size[1] != channels:
        raise OptionsError(f'the input size has C={size[1]} ({origin}) but the network takes {channels} '
                           f'input channel{"s" if channels > 1 else ""} ({where})')
    if channels is not None and origin != where:
        origin = f'{origin}, matches {where}'
    return size, origin


def count_parameters(net: nn.Module) -> Tuple[int, int]:
    """(total, trainable) number of parameters of ``net``."""
    params = list(net.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def count_flops(net: nn.Module, input_size: Sequence[int]) -> Tuple[int, Dict[str, int], Tuple[int, ...]]:
    """FLOPs of one forward pass at ``input_size``, per operator, and the output shape.

    The pass runs on a copy of the network on the ``meta`` device (shapes only, no arithmetic); networks that
    cannot run there (data-dependent shapes) run once for real on the device of their parameters.

    Args:
        net (nn.Module): The network (not modified).
        input_size (Sequence[int]): ``(N, C, H, W)`` of the input.

    Returns:
        (total FLOPs, {operator name: FLOPs}, output shape).
    """
    def run(model, x):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = model(x)
        counts = {str(op): int(n) for op, n in counter.get_flop_counts().get('Global', {}).items()}
        return int(counter.get_total_flops()), counts, tuple(out.shape)

    try:
        return run(copy.deepcopy(net).to('meta'), torch.empty(*input_size, device='meta'))
    except Exception:  # noqa: BLE001  (an op without a meta kernel: count on real tensors instead)
        param = next(net.parameters(), None)
        device = param.device if param is not None else 'cpu'
        return run(net, torch.rand(*input_size, device=device))


def device_description(device: torch.device) -> str:
    """A readable name of ``device``: the GPU name, or the CPU model with the number of torch threads."""
    if device.type == 'cuda':
        return f'cuda: {torch.cuda.get_device_name(device)}'
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), model)
    except OSError:
        pass
    return f'cpu: {model} ({torch.get_num_threads()} threads)'


class CpuPeakMemory:
    """Peak resident memory (RSS) of this process since ``start()``: ``stop()`` gives it above the level at
    ``start()`` (what a forward pass adds), ``peak()`` as it is (what a training process holds, its data workers not
    counted).

    On Linux the kernel's high-water mark (``VmHWM``) is reset by writing 5 to ``/proc/self/clear_refs``, so the
    peak during the measured runs is exact. Elsewhere the fallback is ``resource.getrusage().ru_maxrss``, the
    lifetime high-water mark, whose growth is a lower bound. (psutil is not used: it has no peak RSS on Linux.)
    """

    def start(self) -> None:
        self.method = 'CPU: peak RSS during the timed runs minus RSS before them (/proc VmHWM, reset by clear_refs)'
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
            self.base = self._status('VmRSS')
        except OSError:
            self.method = 'CPU: growth of resource ru_maxrss (lifetime peak RSS) during the timed runs; a lower bound'
            self.base = None
            self.base_maxrss = self._maxrss()

    @staticmethod
    def _status(field: str) -> int:
        with open('/proc/self/status') as f:
            line = next(line for line in f if line.startswith(field + ':'))
        return int(line.split()[1]) * 1024

    @staticmethod
    def _maxrss() -> int:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kib if platform.system() == 'Darwin' else kib * 1024  # bytes on macOS, KiB on Linux

    def stop(self) -> int:
        """Bytes of the peak RSS since ``start()`` above the RSS at ``start()``."""
        if self.base is not None:
            return max(self._status('VmHWM') - self.base, 0)
        return max(self._maxrss() - self.base_maxrss, 0)

    def peak(self) -> int:
        """Bytes of the peak RSS since ``start()`` (the lifetime peak where it cannot be reset)."""
        return self._status('VmHWM') if self.base is not None else self._maxrss()

    @property
    def peak_method(self) -> str:
        return ('CPU: peak RSS of the main process during the measured iterations (/proc VmHWM, reset by '
                'clear_refs; data workers not counted)' if self.base is not None else
                'CPU: lifetime peak RSS of the main process (resource ru_maxrss; data workers not counted)')


def benchmark(net: nn.Module, input_size: Sequence[int], device: str = 'cpu', runs: int = 10, warmup: int = 2,
              channels_last: bool = False, use_compile: bool = False, fp16: bool = False, amp: Optional[str] = None,
              compile_backend: str = 'inductor') -> Dict:
    """Measure parameters, FLOPs, latency and peak memory of ``net`` on a random input.

    Args:
        net (nn.Module): The network; it is put in eval mode and moved to ``device``.
        input_size (Sequence[int]): ``(N, C, H, W)`` of the input, filled with uniform noise in [0, 1).
        device (str): 'cpu' or 'cuda' (or 'cuda:k').
        runs (int): Timed forward passes (under ``torch.inference_mode``). Default: 10.
        warmup (int): Untimed passes before them. Default: 2.
        channels_last (bool): Use the channels-last memory format for the network and the input.
        use_compile (bool): Time ``net`` compiled in place with ``torch.compile`` (compilation happens in the
            warm-up passes; with ``warmup=0`` the first timed run includes it).
        fp16 (bool): Half precision weights and input; CUDA only.
        amp (str | None): 'bf16' or 'fp16': ``torch.autocast`` on the device (CPU too), float32 weights.
        compile_backend (str): The torch.compile backend. Default: 'inductor'.

    Returns:
        dict with the figures (see ``tools/benchmark.py`` for the JSON layout).

    Raises:
        OptionsError: for --fp16 on CPU or with --amp, fewer than 1 run, or an input the network cannot take.
    """
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise OptionsError('--device cuda: CUDA is not available on this machine; use --device cpu')
    if fp16 and amp:
        raise OptionsError('--fp16 (half weights) and --amp (autocast) exclude each other; choose one')
    if fp16 and device.type != 'cuda':
        raise OptionsError('--fp16 needs a CUDA device (half-precision convolutions are not supported for timing '
                           'on CPU); drop --fp16 or use --device cuda')
    if amp is not None and amp not in AMP_DTYPES:
        raise OptionsError(f'--amp must be one of {", ".join(sorted(AMP_DTYPES))}, got {amp!r}')
    if runs < 1 or warmup < 0:
        raise OptionsError(f'--runs must be >= 1 and --warmup >= 0, got runs={runs}, warmup={warmup}')
    net = net.eval()
    params, trainable = count_parameters(net)
    try:
        flops, flops_by_op, out_shape = count_flops(net, input_size)
    except Exception as err:  # noqa: BLE001  (wrong channel count, size not divisible by a window, ...)
        raise OptionsError(f'the network cannot run on an input of size {"x".join(map(str, input_size))}: '
                           f'{type(err).__name__}: {err}') from err

    dtype = torch.float16 if fp16 else torch.float32
    modes = SpeedModes(amp, channels_last, use_compile, compile_backend)
    model = modes.apply(net.to(device=device, dtype=dtype))
    x = modes.to_input(torch.rand(*input_size, device=device, dtype=dtype))
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == 'cuda' else (lambda: None)
    times = []
    with torch.inference_mode(), modes.autocast(device):
        for _ in range(warmup):
            model(x)
        sync()
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        else:
            cpu_peak = CpuPeakMemory()
            cpu_peak.start()
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - start) * 1000.)
    if device.type == 'cuda':
        peak, method = torch.cuda.max_memory_allocated(device), (
            'CUDA: torch.cuda.max_memory_allocated during the timed runs (weights, input and activations)')
    else:
        peak, method = cpu_peak.stop(), cpu_peak.method
    return {
        'network': type(net).__name__,
        'device': str(device),
        'device_name': device_description(device),
        'torch_version': torch.__version__,
        'num_threads': torch.get_num_threads(),
        'input_size': list(input_size),
        'output_size': list(out_shape),
        'params': params,
        'trainable_params': trainable,
        'flops': flops,
        'macs': flops // 2,
        'flops_by_op': flops_by_op,
        'flop_counter': FLOP_NOTE,
        'latency_ms': {'median': statistics.median(times), 'mean': statistics.mean(times), 'runs': runs,
                       'warmup': warmup, 'all': times},
        'images_per_s': input_size[0] * 1000. / statistics.median(times),
        'peak_memory_bytes': int(peak),
        'peak_memory_method': method,
        'modes': {'channels_last': channels_last, 'compile': use_compile, 'fp16': fp16, 'amp': amp,
                  'compile_backend': compile_backend if use_compile else None},
    }


def _si(n: float) -> str:
    for unit, div in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= div:
            return f'{n / div:.2f} {unit}'
    return f'{n:.0f}'


def format_table(result: Dict) -> str:
    """The figures of ``benchmark`` (plus the optional 'options' and 'input_source' keys) as a Markdown table."""
    lat, modes = result['latency_ms'], result['modes']
    rows = [
        ('network', result['network'] + (f' ({"network_g" if not str(result.get("options")).endswith(".py") else "from"}'
                                         f' {result["options"]})' if result.get('options') else '')),
        ('device', result['device_name']),
        ('torch', result['torch_version']),
        ('input N x C x H x W', 'x'.join(map(str, result['input_size']))
         + (f' (C={result["input_size"][1]}: {result["input_source"]})' if result.get('input_source') else '')),
        ('output', 'x'.join(map(str, result['output_size']))),
        ('parameters', f'{result["params"]:,} (trainable {result["trainable_params"]:,})'),
        ('FLOPs', f'{result["flops"]:,} ({_si(result["flops"])}FLOPs)'),
        ('MACs', f'{result["macs"]:,} ({_si(result["macs"])}MACs)'),
        ('latency median', f'{lat["median"]:.2f} ms'),
        ('latency mean', f'{lat["mean"]:.2f} ms ({lat["runs"]} runs after {lat["warmup"]} warm-up)'),
        ('throughput', f'{result["images_per_s"]:.2f} images/s (batch / median latency)'),
        ('peak memory', f'{result["peak_memory_bytes"] / 2 ** 20:.1f} MiB'),
        ('modes', ', '.join([('fp16' if modes['fp16'] else f'amp {modes["amp"]}' if modes.get('amp') else 'fp32'),
                             ('channels_last' if modes['channels_last'] else 'contiguous'),
                             (f'torch.compile ({modes.get("compile_backend") or "inductor"})' if modes['compile']
                              else 'eager')])),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f'| {"figure".ljust(width)} | value |', f'|{"-" * (width + 2)}|-------|']
    lines += [f'| {k.ljust(width)} | {v} |' for k, v in rows]
    lines += ['', f'peak memory: {result["peak_memory_method"]}', FLOP_NOTE]
    return '\n'.join(lines)
