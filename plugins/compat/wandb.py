"""wandb (the optional ``wandb`` extra): ``wandb.util.generate_id``, which BasicSR 1.4.2's ``init_wandb_logger`` calls
for a new run (``logger:wandb:project`` without ``resume_id``), is gone from current wandb releases (the function
lives in ``wandb.sdk.lib.runid``), so every BasicSR run with wandb logging failed with an AttributeError."""


def apply(wandb) -> None:
    """Post-import hook of ``wandb``: give ``wandb.util`` its ``generate_id`` back where it is missing."""
    util = getattr(wandb, 'util', None)
    if util is None or hasattr(util, 'generate_id'):
        return
    from wandb.sdk.lib.runid import generate_id
    util.generate_id = generate_id
