"""Any optimizer of ``torch.optim`` by class name for our BasicSR models: BasicSR 1.4.2's
``BaseModel.get_optimizer`` builds Adam only (``options_schema`` refuses other types for models that keep it)."""
from typing import Optional, Type

import torch


def torch_optimizer_class(name) -> Optional[Type[torch.optim.Optimizer]]:
    """``torch.optim.<name>`` when it is an optimizer class, else None."""
    cls = getattr(torch.optim, str(name), None)
    return cls if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) else None


class AnyTorchOptimizerMixin:
    """Put before ``SRModel`` in a model's bases: ``train:optim_*:type`` may then name any ``torch.optim`` class
    (``RAdam``, ``Adam``, ``AdamW``, ``SGD``, ...), with that class's own keyword arguments."""

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        cls = torch_optimizer_class(optim_type)
        if cls is None:
            raise ValueError(f'{optim_type!r} is not an optimizer of torch.optim (e.g. RAdam, Adam, AdamW, SGD)')
        return cls(params, lr, **kwargs)
