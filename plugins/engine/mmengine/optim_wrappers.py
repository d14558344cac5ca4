"""Mixed precision for mmengine's Runner on the device the model is on (CUDA or CPU), registered in mmengine's root
``OPTIM_WRAPPERS`` (so MMagic's scope, and every other, finds it). ``tools/train.py --amp`` turns every optimizer
wrapper of a config into one (``engine/mmengine/runner.py``), the generator's and the discriminator's of MMagic's
``MultiOptimWrapperConstructor`` included.
"""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

AMP_DTYPES = ('float16', 'bfloat16')


@OPTIM_WRAPPERS.register_module()
class DeviceAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` on the device of the optimizer's parameters: ``optim_context`` runs the
    forward under ``torch.autocast(device_type, dtype)`` and ``backward``/``step`` go through a
    ``torch.amp.GradScaler`` of that device.

    Differences from ``AmpOptimWrapper`` (mmengine 0.10.7), whose ``backward``, ``step``, ``state_dict`` and
    ``load_state_dict`` it keeps:

    * it runs on the CPU too (``AmpOptimWrapper`` asserts a GPU, and its autocast allows only bfloat16 there):
      torch >= 2.4 autocasts convolutions to float16 and bfloat16 on the CPU, and ``GradScaler('cpu')`` exists;
    * float16 scales the loss (mmengine's ``loss_scale``: ``'dynamic'``, a fixed float, or GradScaler's kwargs);
      bfloat16 has float32's exponent range and needs no scaling, so its scaler is off (``is_enabled()`` False,
      steps are plain optimizer steps, and the non-finite guard then checks the gradients itself).

    Args:
        dtype: ``'float16'`` (default, as mmengine's autocast on CUDA) or ``'bfloat16'``.
        loss_scale: float16's loss scaling, as ``AmpOptimWrapper``'s.
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'float16', loss_scale: Union[str, float, dict] = 'dynamic',
                 **kwargs):
        OptimWrapper.__init__(self, **kwargs)  # not AmpOptimWrapper.__init__: it refuses a machine without a GPU
        name = str(dtype).replace('torch.', '')
        if name not in AMP_DTYPES:
            raise ValueError(f'DeviceAmpOptimWrapper: dtype must be one of {", ".join(AMP_DTYPES)}, got {dtype!r}')
        self.cast_dtype = getattr(torch, name)
        params = [p for group in self.optimizer.param_groups for p in group['params']]
        self.device_type = params[0].device.type if params else 'cpu'
        if self.device_type == 'cuda' and name == 'bfloat16' and not torch.cuda.is_bf16_supported():
            raise ValueError('DeviceAmpOptimWrapper: this GPU has no bfloat16 support; use dtype float16')
        scaled = self.cast_dtype == torch.float16
        self._scale_update_param = None
        if loss_scale == 'dynamic':
            scaler_kwargs = {}
        elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
            self._scale_update_param = float(loss_scale)  # a fixed scale: update() keeps it
            scaler_kwargs = dict(init_scale=float(loss_scale))
        elif isinstance(loss_scale, dict):
            scaler_kwargs = dict(loss_scale)
        else:
            raise TypeError(f"DeviceAmpOptimWrapper: loss_scale must be 'dynamic', a number or a dict of GradScaler "
                            f'arguments, got {loss_scale!r}')
        self.loss_scaler = torch.amp.GradScaler(self.device_type, enabled=scaled, **scaler_kwargs)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """``OptimWrapper``'s context (no gradient sync while accumulating) plus autocast on the parameters'
        device."""
        with OptimWrapper.optim_context(self, model), torch.autocast(self.device_type, dtype=self.cast_dtype):
            yield
