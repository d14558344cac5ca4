"""BasicSR integration: the CLI pipeline, options (``_base_``, ``--force_yml``) and their check, networks and
checkpoints, exact resume, the non-finite guard, optimizers, and fixed-budget runs."""
