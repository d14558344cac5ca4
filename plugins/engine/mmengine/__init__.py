"""mmengine/MMagic integration: the Runner behind the CLI, the config check, and our hooks (non-finite guard, torch
random state in checkpoints)."""
