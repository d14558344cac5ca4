"""Toolbox integration, no research code: the errors raised to users, what both toolboxes share (atomic checkpoint
files, the non-finite guard's bookkeeping, the data-fault policy, argument checks), BasicSR's side (``basicsr/``)
and mmengine's side (``mmengine/``). Imports no research line and never ``plugins`` itself."""
