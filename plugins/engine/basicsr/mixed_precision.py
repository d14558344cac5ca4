"""Mixed precision for BasicSR training: ``train: amp: bf16 | fp16 | false`` (default false), for every BasicSR model
(BasicSR's ``SRModel`` and ``SRGANModel``, our ``CMDSRModel``, ``LowLightModel``, ``TextSRModel``) without changing
their training steps. The ``build_model`` patch of ``plugins/compat/basicsr.py`` installs it on the built model as
instance attributes (the model's class and other instances are untouched), as it does the non-finite guard:

* ``optimize_parameters`` runs under ``torch.autocast(device_type=<the model's device type>, dtype=bfloat16 |
  float16)``: convolutions and matrix products in 16 bits; weights, gradients, optimizer moments and the EMA copy stay
  float32. Backward passes and optimizer steps run with autocast off (autograd runs each backward op in the dtype of
  its forward op). Autocast keeps its 16-bit copies of the weights until the outermost autocast block ends (here the
  whole training step), so each optimizer step clears them: a forward after a step (CMDSR's second half, its BaseNet
  after the ConditionNet step) sees the new weights. Validation and ``tools/test.py`` run in float32.
* ``fp16`` adds a gradient scaler (``torch.amp.GradScaler(<device type>)``): float16 gradients underflow without one.

  - Losses are scaled before backward. BasicSR's models call ``l_total.backward()`` inside their own
    ``optimize_parameters``, which we do not fork; so while the wrapped ``optimize_parameters`` runs (and only then),
    ``torch.autograd.backward``, which ``Tensor.backward`` calls, is routed through ``scaler.scale``. Every loss
    backpropagated inside a training step is scaled and nothing outside one is. Chosen over the alternatives:
    scaling the loss modules' outputs would scale the logged losses too, and hooks on the parameters' gradients act
    after the 16-bit backward pass, where the underflow happens. ``torch.autograd.grad`` is not routed (no model of
    ours calls it; a gradient penalty would call ``scaler.scale`` itself).
  - Each optimizer's ``step`` becomes ``scaler.step(optimizer)``: the gradients are unscaled, and the step is skipped
    when they hold an inf or NaN (an overflow, normal in fp16: the scale is then halved, and the skip logged).
  - ``scaler.update()`` runs after the iteration's last step, and before the backward of a loss that follows a step:
    each loss is scaled with the scale its step unscales with, so a model whose optimizers step in turn (SRGAN's
    discriminator after the generator) or whose optimizer steps twice per iteration (CMDSR's BaseNet, once per half)
    works. (A model that accumulates gradients of losses from both sides of another optimizer's step into one
    optimizer would mix two scales; none of ours does.)
  - Gradient clipping must see unscaled gradients: a model calls ``unscale_gradients(self, optimizer)`` right before
    clipping (TextSRModel's ``grad_clip``); the scaler then does not unscale again.
  - The scaler's state is saved in the training state (``checkpoints.save_training_state``, key ``amp_scaler``) and
    restored on resume (``load_scaler_state``, from the ``resume_training`` patch), so resume stays exact.
  - The non-finite guard (``nonfinite_guard.py``) leaves the gradient check to the scaler and does not count the
    steps it skips; an iteration whose logged losses are not finite still counts.

* ``bf16`` has float32's exponent range and needs no scaler. It is the choice on CPU (fp16 autocast also runs there,
  as torch supports it, but slower) and on GPUs with native bfloat16 (Ampere and later); fp16 is the choice on older
  GPUs.

Layers that stay float32 under autocast (``full_precision``: autocast off, 16-bit inputs made float32 by ``wide``),
where 16 bits lose what the computation needs:

* ``plugins/lowlight/guided_filter.py``: the box-filter means, variances and covariances of the guided filters
  (``var = mean(x^2) - mean(x)^2`` cancels catastrophically in 16 bits), and the final ``A * x + b``;
* ``plugins/lowlight/guided_fast_path.py``: the inference tail ``up(A) * G(x) + up(b)`` (A and b large and of
  opposite signs);
* ``plugins/lowlight/l1_ssim_loss.py``: SSIM (local variances, as above);
* ``plugins/textsr/stn.py``: the TPS sampling grid and its ``grid_sample`` (sub-pixel coordinates);
* ``plugins/textsr/textsr_loss.py``: the CTC loss;
* ``plugins/blindsr/contrastive_loss.py``: the distances between condition vectors and their softplus.

``tests/engine/test_mixed_precision.py`` trains every line with ``bf16`` on CPU and checks each island's dtype.
"""
from contextlib import contextmanager
from typing import Dict, List, Optional

import torch

from ..errors import OptionsError

OPTION = 'amp'
DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
SCALER_KEY = 'amp_scaler'  # the scaler's state in a training state
_ATTRIBUTE = '_plugins_mixed_precision'  # the MixedPrecision installed on a model


def option_problem(train_opt: Optional[Dict]) -> Optional[str]:
    """What is wrong with ``train:amp`` (one line), or None."""
    value = (train_opt or {}).get(OPTION, False)
    if value is None or value is False or (isinstance(value, str) and value in DTYPES):
        return None
    return f'train:{OPTION} must be bf16, fp16 or false, got {value!r}'


@contextmanager
def full_precision(device_type: str):
    """Autocast off on ``device_type`` ('cpu', 'cuda', ...) for a float32 island: the block computes in the dtypes of
    its tensors, so it casts its 16-bit inputs with ``wide``. Nothing to turn off on a device without autocast."""
    if torch.amp.is_autocast_available(device_type):
        with torch.autocast(device_type, enabled=False):
            yield
    else:
        yield


def wide(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 if it is a 16-bit float (float64 stays float64), for a ``full_precision`` island."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def optimizer_names(model) -> List[str]:
    """The attribute name of each of ``model.optimizers`` (``optimizer_g``), or ``optimizers[i]``."""
    names = {id(v): k for k, v in vars(model).items() if isinstance(v, torch.optim.Optimizer)}
    return [names.get(id(o), f'optimizers[{i}]') for i, o in enumerate(model.optimizers)]


class MixedPrecision:
    """Autocast (and for fp16 the gradient scaler) on a BasicSR model: see the module docstring.

    ``skipped_steps`` names the optimizers whose step the scaler skipped in the current iteration (read by the
    non-finite guard)."""

    def __init__(self, model, dtype: torch.dtype, logger):
        self.model, self.dtype, self.logger = model, dtype, logger
        self.device_type = model.device.type
        self.scaler = torch.amp.GradScaler(self.device_type) if dtype == torch.float16 else None
        self.skipped_steps: List[str] = []
        self._stepped = set()  # ids of the optimizers stepped since the last scaler.update()
        self._unscaled = set()  # ids of the optimizers unscaled since then
        self._pending = False  # the scaler recorded inf checks that update() has not consumed
        self._in_scaler_step = False
        self._inner_step_ran = False
        for optimizer, name in zip(model.optimizers, optimizer_names(model)):
            optimizer.step = self._wrap_step(optimizer.step, optimizer, name)
        self._optimize_parameters = model.optimize_parameters
        model.optimize_parameters = self.optimize_parameters
        setattr(model, _ATTRIBUTE, self)

    # ----------------------------------------------------------------------------------------- the training step
    def optimize_parameters(self, current_iter: int, *args, **kwargs):
        self.skipped_steps = []
        with torch.autocast(self.device_type, dtype=self.dtype), self._routed_backward():
            result = self._optimize_parameters(current_iter, *args, **kwargs)
        self._update()
        if self.skipped_steps:
            self.logger.info(f'Mixed precision (fp16): iteration {current_iter}: the gradient scaler skipped the step '
                             f'of {", ".join(self.skipped_steps)} (inf/NaN in the scaled gradients); loss scale now '
                             f'{self.scaler.get_scale():g}.')
        return result

    @contextmanager
    def _routed_backward(self):
        """``torch.autograd.backward`` (what ``Tensor.backward`` calls) with autocast off, and for fp16 on the scaled
        loss, for the duration of one training step."""
        original = torch.autograd.backward

        def backward(tensors, *args, **kwargs):
            if self.scaler is not None:
                if self._stepped:  # a new loss after a step: its scale is the updated one
                    self._update()
                tensors = self.scaler.scale(tensors)
            with full_precision(self.device_type):
                return original(tensors, *args, **kwargs)

        torch.autograd.backward = backward
        try:
            yield
        finally:
            torch.autograd.backward = original

    def _wrap_step(self, step, optimizer: torch.optim.Optimizer, name: str):
        def amp_step(*args, **kwargs):
            if self._in_scaler_step:  # scaler.step(optimizer) calls optimizer.step: the real step
                self._inner_step_ran = True
                return step(*args, **kwargs)
            try:
                with full_precision(self.device_type):
                    return scaled_step(*args, **kwargs)
            finally:
                # Autocast caches the 16-bit copies of the weights until the outermost autocast block ends, which
                # here is the whole training step: a forward after this step would use the weights before it.
                torch.clear_autocast_cache()

        def scaled_step(*args, **kwargs):
            if self.scaler is None:
                return step(*args, **kwargs)
            if id(optimizer) in self._stepped:  # stepped again without a backward in between
                self._update()
            self._in_scaler_step, self._inner_step_ran = True, False
            try:
                result = self.scaler.step(optimizer, *args, **kwargs)
            finally:
                self._in_scaler_step = False
            self._stepped.add(id(optimizer))
            self._pending = True
            if not self._inner_step_ran:
                self.skipped_steps.append(name)
            return result

        return amp_step

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Unscale ``optimizer``'s gradients now (fp16), once per step; nothing for bf16."""
        if self.scaler is None or id(optimizer) in self._unscaled:
            return
        with full_precision(self.device_type):
            self.scaler.unscale_(optimizer)
        self._unscaled.add(id(optimizer))
        self._pending = True

    def _update(self) -> None:
        if self.scaler is not None and self._pending:
            self.scaler.update()
        self._pending = False
        self._stepped.clear()
        self._unscaled.clear()


def installed(model) -> Optional[MixedPrecision]:
    """The ``MixedPrecision`` of a model, or None."""
    return getattr(model, _ATTRIBUTE, None)


def unscale_gradients(model, optimizer: torch.optim.Optimizer) -> None:
    """Call right before clipping ``optimizer``'s gradients inside ``optimize_parameters``: under ``amp: fp16`` the
    gradients are unscaled now (the scaler's step then does not unscale again); otherwise nothing happens."""
    amp = installed(model)
    if amp is not None:
        amp.unscale(optimizer)


def scaler_state(model) -> Dict:
    """``{SCALER_KEY: the scaler's state}`` for a model training with fp16, else ``{}`` (added to training states)."""
    amp = installed(model)
    return {SCALER_KEY: amp.scaler.state_dict()} if amp is not None and amp.scaler is not None else {}


def load_scaler_state(model, resume_state: Dict, logger) -> None:
    """Restore the scaler from a training state (resume). A state without one (saved by a run without fp16) leaves
    the scaler at its initial scale; a state with one resumed without fp16 is ignored. Both are logged."""
    amp, state = installed(model), resume_state.get(SCALER_KEY)
    has_scaler = amp is not None and amp.scaler is not None
    if has_scaler and state:
        amp.scaler.load_state_dict(state)
    elif has_scaler:
        logger.info('Mixed precision (fp16): the training state has no gradient scaler state (saved without fp16); '
                    'the scaler starts at its initial scale.')
    elif state:
        logger.info(f'The training state holds an fp16 gradient scaler state; train:{OPTION} is not fp16 now, so it '
                    'is not used.')


def install_mixed_precision(model, logger) -> Optional[MixedPrecision]:
    """Install mixed precision on a training model as ``train:amp`` asks; returns it, or None (float32)."""
    train_opt = model.opt.get('train') or {}
    problem = option_problem(train_opt)
    if problem:
        raise OptionsError(f"{model.opt.get('name', 'options')}: {problem}")
    value = train_opt.get(OPTION)
    if not model.opt.get('is_train') or value in (None, False) or not getattr(model, 'optimizers', None):
        return None
    dtype = DTYPES[value]
    if model.device.type == 'cuda' and dtype == torch.bfloat16 \
            and not torch.cuda.is_bf16_supported(including_emulation=False):
        logger.warning(f'train:{OPTION} bf16: {torch.cuda.get_device_name()} has no native bfloat16, so it is emulated '
                       'and slow; amp: fp16 is the faster choice on this GPU.')
    logger.info(f'Mixed precision: {value} autocast on {model.device.type}'
                + (' with a gradient scaler.' if dtype == torch.float16 else '.'))
    return MixedPrecision(model, dtype, logger)
