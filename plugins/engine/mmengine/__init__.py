"""mmengine/MMagic integration: the Runner behind the CLI, the config check, our hooks (non-finite guard, torch
random states in checkpoints) and the mixed-precision optimizer wrapper of ``--amp``."""
