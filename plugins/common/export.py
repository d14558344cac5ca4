"""What ``tools/export.py`` runs: a network in its inference form written as TorchScript and ONNX, with dynamic
height and width where the network allows them, and each exported file checked against PyTorch on an input of
another size than the one it was traced with.

An *export form* (``ExportForm``) is the network as a module that takes tensors only and returns one tensor, the
shapes of its trace inputs, which of their axes are dynamic, and the shapes of the check inputs. Most networks take
one image ``(N, C, H, W)``; those that need more at inference have their own form, chosen by class name
(``FORMS``): CMDSR (the LR image and its support set), CRNN (a grey word image of height 32, dynamic width; the
output ``(T, N, classes)`` grows with the width), PD-GAN's SPDNorm generator alone (noise, prior, mask at the fixed
size it generates). An inpainting model of an mmengine config exports its ``inpaint`` method (masked image + mask,
and PD-GAN's noise, -> the completion). A network that cannot be exported raises ``NotExportable``
with the reason.

Exporters: TorchScript by ``torch.jit.trace`` (the traced graph keeps shape arithmetic, so H and W stay free; Python
branches on sizes are frozen, which the check on another size catches); ONNX by torch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``, opset 17, ``dynamic_axes`` on H and W), checked with ``onnx.checker`` and
run with onnxruntime (the ``export`` extra: ``pip install -e .[export]``).
"""
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..engine.errors import OptionsError
from .complexity import input_channels

FORMATS = ('torchscript', 'onnx')
ONNX_OPSET = 17
# Largest |exported - PyTorch| accepted, for outputs in about [0, 1] or [-1, 1] (float32; ONNX Runtime fuses and
# reorders operations, so a few 1e-6 are normal; 1e-3 is far below one 8-bit grey level, 1/255).
TOLERANCE = 1e-3


class NotExportable(Exception):
    """A network that cannot be exported in a format; the message says why."""


@dataclass
class ExportForm:
    """A network ready to export.

    Attributes:
        module: takes ``len(inputs)`` tensors, returns one tensor; eval mode, on the CPU.
        inputs: input name -> shape of the trace input (random values in [0, 1], noise vectors N(0, 1)).
        dynamic: input name -> {axis: label} of the axes left free (``height``, ``width``).
        check: input name -> shape of the check input (other sizes on the dynamic axes).
        output_dynamic: {axis: label} of the output's free axes.
        note: one line about the form (printed).
        normal: names of the inputs drawn from N(0, 1) rather than [0, 1].
    """
    module: nn.Module
    inputs: Dict[str, Tuple[int, ...]]
    dynamic: Dict[str, Dict[int, str]]
    check: Dict[str, Tuple[int, ...]]
    output_dynamic: Dict[int, str]
    note: str
    normal: Sequence[str] = field(default_factory=tuple)

    def make_inputs(self, shapes: Dict[str, Tuple[int, ...]], seed: int = 0) -> List[torch.Tensor]:
        """Random inputs of the given shapes, in the order of ``inputs``; a mask input is binary."""
        gen = torch.Generator().manual_seed(seed)
        tensors = []
        for name in self.inputs:
            if name in self.normal:
                tensors.append(torch.randn(shapes[name], generator=gen))
            elif name == 'mask':
                tensors.append((torch.rand(shapes[name], generator=gen) > 0.7).float())
            else:
                tensors.append(torch.rand(shapes[name], generator=gen))
        return tensors


class _Positional(nn.Module):
    """``net(*inputs)`` with the first output only (networks that return tuples in some modes)."""

    def __init__(self, net: nn.Module, call: Optional[Callable] = None):
        super().__init__()
        self.net = net
        self.call = call

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.call(self.net, *inputs) if self.call is not None else self.net(*inputs)
        return out[0] if isinstance(out, (tuple, list)) else out


def _image_form(net: nn.Module, channels: int, size: Tuple[int, int], multiple: int = 1, note: str = '') -> ExportForm:
    h, w = size
    step = multiple * max(1, 8 // multiple)
    check = (h + 2 * step, w + step)
    hw = {2: 'height', 3: 'width'}
    return ExportForm(_Positional(net), {'image': (1, channels, h, w)}, {'image': hw}, {'image': (1, channels) + check},
                      hw, note or f'one image (N, {channels}, H, W), H and W dynamic')


def _cmdsr_form(net: nn.Module, size: Tuple[int, int]) -> ExportForm:
    support = net.support_size or 4
    h, w = size
    hw = {2: 'height', 3: 'width'}
    return ExportForm(
        _Positional(net), {'image': (1, net.num_in_ch, h, w), 'support': (1, support, net.num_in_ch, h, w)},
        {'image': hw, 'support': {3: 'support_height', 4: 'support_width'}},
        {'image': (1, net.num_in_ch, h + 8, w - 8), 'support': (1, support, net.num_in_ch, h - 8, w + 8)}, hw,
        f'image (1, {net.num_in_ch}, H, W) and its support set (1, {support}, {net.num_in_ch}, Hs, Ws) of LR patches '
        'with the same degradation; H, W, Hs, Ws dynamic (one task per call)')


def _crnn_form(net: nn.Module, size: Tuple[int, int]) -> ExportForm:
    w = size[1]
    return ExportForm(_Positional(net, lambda n, img: n(img=img)), {'image': (1, 1, 32, w)},
                      {'image': {3: 'width'}}, {'image': (1, 1, 32, w + 36)}, {0: 'steps'},
                      'a word image (N, 1, 32, W) in [0, 1], W dynamic -> scores (T, N, classes), T = W / 4 + 1')


def _spdnorm_form(net: nn.Module, size: Tuple[int, int]) -> ExportForm:
    s = net.out_size
    shapes = {'noise': (1, net.z_dim), 'prior': (1, 3, s, s), 'mask': (1, 1, s, s)}
    return ExportForm(_Positional(net), shapes, {}, dict(shapes), {},
                      f'noise (1, {net.z_dim}) N(0, 1), prior (1, 3, {s}, {s}) and mask (1, 1, {s}, {s}): fixed size '
                      f'(the generator grows a {net.latent_size}x{net.latent_size} map by x2 steps to {s}x{s})',
                      normal=('noise',))


def _inpaint_form(model: nn.Module, size: Tuple[int, int]) -> ExportForm:
    """An inpainting model's ``inpaint(masked_img, mask[, noise])`` (MMagic side: image and mask in, the composite
    out, known pixels kept); with a noise input (PD-GAN) at the fixed size its generator makes."""
    import inspect
    generator = model.inference_generator()
    noise = 'noise' in inspect.signature(model.inpaint).parameters
    h, w = (generator.out_size, ) * 2 if noise else size
    shapes = {'image': (1, 3, h, w), 'mask': (1, 1, h, w)}
    if noise:
        shapes['noise'] = (1, generator.z_dim)
        return ExportForm(_Positional(model, lambda m, *x: m.inpaint(*x)[1]), shapes, {}, dict(shapes), {},
                          f'masked image (1, 3, {h}, {w}) in [-1, 1] (0 in the hole), mask (1, 1, {h}, {w}) (1 = hole) '
                          f'and noise (1, {generator.z_dim}) N(0, 1) -> the completion with the known pixels kept; '
                          f'fixed size (the generator grows a {generator.latent_size}x{generator.latent_size} map to '
                          f'{h}x{w})', normal=('noise', ))
    hw = {2: 'height', 3: 'width'}
    return ExportForm(_Positional(model, lambda m, *x: m.inpaint(*x)[1]), shapes, {'image': hw, 'mask': hw},
                      {'image': (1, 3, h + 16, w + 8), 'mask': (1, 1, h + 16, w + 8)}, hw,
                      'masked image (N, 3, H, W) in [-1, 1] (0 in the hole) and mask (N, 1, H, W) (1 = hole) -> the '
                      'completion with the known pixels kept; H and W dynamic')


def _not_alone(reason: str) -> Callable:
    def form(net, size):
        raise NotExportable(reason)
    return form


# Networks whose inference form is not one image in, one image out, by class name (the lines' networks are not
# imported here: common/ imports no line).
FORMS: Dict[str, Callable[[nn.Module, Tuple[int, int]], ExportForm]] = {
    'CMDSR': _cmdsr_form,
    'CRNN': _crnn_form,
    'SPDNormGenerator': _spdnorm_form,
    'TextBridge': _not_alone('TextBridge maps TSRN features to CRNN column features inside joint training; it is '
                             'not an inference network of its own (export the TSRN and the CRNN)'),
    'CMDSRConditionNet': _not_alone('a part of CMDSR: export the CMDSR network (image + support set)'),
}
# Networks that pad or check their input to a multiple of a size: H and W of the trace and check inputs are
# multiples of it, the form says so.
_MULTIPLE_ATTRS = ('divisor', )


def export_form(net: nn.Module, net_opt: Optional[Dict] = None, size: Tuple[int, int] = (64, 64)) -> ExportForm:
    """The export form of ``net`` (built from ``net_opt``, its options) with trace inputs of height and width
    ``size``; ``NotExportable`` for a network that has none."""
    net = net.eval().cpu()
    name = type(net).__name__
    if callable(getattr(net, 'inpaint', None)) and callable(getattr(net, 'inference_generator', None)):
        return _inpaint_form(net, size)
    if name in FORMS:
        return FORMS[name](net, size)
    channels, _ = input_channels(net, net_opt)
    if channels is None:
        raise NotExportable(f'{name}: its input channels are unknown (no num_in_ch option and no convolution)')
    multiple = next((getattr(net, a) for a in _MULTIPLE_ATTRS if isinstance(getattr(net, a, None), int)), 1)
    min_size = getattr(net, 'min_size', 0)
    h, w = (max(v, min_size) for v in size)
    h, w = (-(-v // multiple) * multiple for v in (h, w))
    note = f'one image (N, {channels}, H, W), H and W dynamic'
    if channels == 4 and name.startswith(('Backbone7x7', 'Gen_Y')):
        note = 'RGB + brightness plane (N, 4, H, W), H and W dynamic'
    elif channels == 4:
        note = 'image + mask channel (N, 4, H, W), H and W dynamic'
    if multiple > 1:
        note += f' (multiples of {multiple} give the same results as PyTorch: the network pads to them inside)'
    return _image_form(net, channels, (h, w), multiple, note)


def _reason(err: Exception) -> str:
    """One line about why an exporter failed, with what it usually means."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = f'{type(err).__name__}: {lines[0][:300] if lines else ""}'
    if 'Python function call' in text or 'Python operator' in text or 'PythonOp' in text:
        text += (' (a custom torch.autograd.Function in the forward pass: the exporters cannot record it; the '
                 'network needs a plain-operator path when no gradient is needed)')
    elif "doesn't define __round__" in text or 'Tensor to Python' in text:
        text += (' (the forward pass computes a size with Python arithmetic on the input size, which the tracer '
                 'cannot record: such a network has no dynamic-size export)')
    return text


def export_torchscript(form: ExportForm, path: str) -> None:
    """Trace ``form.module`` on its trace inputs and save it to ``path``."""
    inputs = form.make_inputs(form.inputs)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # tracer warnings on frozen Python values: the check decides
            traced = torch.jit.trace(form.module, tuple(inputs), check_trace=False)
        traced.save(path)
    except Exception as err:  # noqa: BLE001  (the reason goes to the user)
        raise NotExportable(f'torch.jit.trace failed: {_reason(err)}') from err


def export_onnx(form: ExportForm, path: str, opset: int = ONNX_OPSET) -> None:
    """Export ``form.module`` to ONNX at ``path`` with its dynamic axes, and check the file with ``onnx.checker``."""
    try:
        import onnx
    except ImportError as err:
        raise NotExportable('the onnx package is missing: pip install -e .[export]') from err
    inputs = form.make_inputs(form.inputs)
    dynamic = {name: axes for name, axes in form.dynamic.items() if axes}
    if form.output_dynamic:
        dynamic['output'] = form.output_dynamic
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(form.module, tuple(inputs), path, input_names=list(form.inputs), output_names=['output'],
                              dynamic_axes=dynamic or None, opset_version=opset, dynamo=False)
    except Exception as err:  # noqa: BLE001
        raise NotExportable(f'torch.onnx.export failed: {_reason(err)}') from err
    onnx.checker.check_model(onnx.load(path))


def run_exported(path: str, fmt: str, form: ExportForm, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Run the exported file ``path`` (format ``fmt``) on ``inputs``."""
    if fmt == 'torchscript':
        module = torch.jit.load(path, map_location='cpu')
        with torch.no_grad():
            return module(*inputs)
    try:
        import onnxruntime
    except ImportError as err:
        raise NotExportable('onnxruntime is missing (pip install -e .[export]): the ONNX file passed onnx.checker '
                            'but was not run') from err
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    feed = {name: t.numpy() for name, t in zip(form.inputs, inputs)}
    return torch.from_numpy(session.run(None, feed)[0])


@dataclass
class ExportResult:
    """One exported file: its format, path (None when not exported), the check's max |difference| and the check
    input shapes, or the reason it was not exported / did not pass."""
    fmt: str
    path: Optional[str]
    max_diff: Optional[float] = None
    check_shapes: str = ''
    problem: str = ''

    @property
    def ok(self) -> bool:
        return self.path is not None and not self.problem

    def line(self) -> str:
        if self.path is None:
            return f'{self.fmt:<12} not exported: {self.problem}'
        if self.problem:
            return f'{self.fmt:<12} {self.path}: check FAILED: {self.problem}'
        return (f'{self.fmt:<12} {self.path}  check on {self.check_shapes}: max |exported - PyTorch| = '
                f'{self.max_diff:.2e} (tolerance {TOLERANCE:g})')


def _shape_text(shapes: Dict[str, Tuple[int, ...]]) -> str:
    return ', '.join(f'{name} {"x".join(str(s) for s in shape)}' for name, shape in shapes.items())


def export_and_check(form: ExportForm, out_dir: str, stem: str, formats: Sequence[str] = FORMATS,
                     tolerance: float = TOLERANCE) -> List[ExportResult]:
    """Write ``<out_dir>/<stem>.pt`` (TorchScript) and ``<stem>.onnx`` for the asked ``formats``, and compare each
    with PyTorch on the check inputs (another H and W than the trace's where they are dynamic)."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise OptionsError(f'--format {fmt!r}: choose from {", ".join(FORMATS)}')
    check_inputs = form.make_inputs(form.check, seed=1)
    try:
        with torch.no_grad():
            form.module(*form.make_inputs(form.inputs))
            expected = form.module(*check_inputs)
    except Exception as err:  # noqa: BLE001  (a network that takes one size only, or not these inputs)
        problem = (f'the PyTorch network itself does not run on {_shape_text(form.inputs)} and '
                   f'{_shape_text(form.check)} ({type(err).__name__}: {str(err).strip()[:200]}): it has no '
                   'dynamic-size inference form')
        return [ExportResult(fmt, None, problem=problem) for fmt in formats]
    results = []
    for fmt in formats:
        path = osp.join(out_dir, stem + ('.pt' if fmt == 'torchscript' else '.onnx'))
        try:
            (export_torchscript if fmt == 'torchscript' else export_onnx)(form, path)
        except NotExportable as err:
            results.append(ExportResult(fmt, None, problem=str(err)))
            continue
        result = ExportResult(fmt, path, check_shapes=_shape_text(form.check))
        try:
            got = run_exported(path, fmt, form, check_inputs)
        except NotExportable as err:
            result.problem = str(err)
        except Exception as err:  # noqa: BLE001  (an exported graph that cannot run at the check size)
            result.problem = (f'the exported file does not run on {result.check_shapes}: {type(err).__name__}: '
                              f'{str(err).splitlines()[0][:300]}')
        else:
            if got.shape != expected.shape:
                result.problem = (f'output {tuple(got.shape)} instead of {tuple(expected.shape)} on '
                                  f'{result.check_shapes}: the traced graph froze a size')
            else:
                result.max_diff = float((got.float() - expected.float()).abs().max())
                if not result.max_diff <= tolerance:
                    result.problem = (f'max |exported - PyTorch| = {result.max_diff:.3g} > {tolerance:g} on '
                                      f'{result.check_shapes}')
        results.append(result)
    return results
