"""TensorBoard: ``tensorboard --logdir ...`` fails with "ValueError: Duplicate plugins for name projector" wherever
BasicSR and MMagic are installed together: BasicSR 1.4.2 requires ``tb-nightly`` and MMagic 1.2.0 ``tensorboard``,
two distributions of the same ``tensorboard`` package that both declare its projector plugin (an entry point of
group ``tensorboard_plugins``), so ``tensorboard.default.get_dynamic_plugins`` loads that plugin class twice.

``apply`` (a post-import hook of ``tensorboard.default``; ``restoration_plugins_startup`` imports ``plugins`` in the
``tensorboard`` command's process) keeps each plugin class once. Writing events (BasicSR's ``tb_logger``, mmengine's
``TensorboardVisBackend``) never loads plugins and worked before."""
import functools


def apply(default) -> None:
    """Make ``default.get_dynamic_plugins`` return each plugin class once, in its order."""
    original = default.get_dynamic_plugins
    if getattr(original, '_plugins_compat', False):
        return

    @functools.wraps(original)
    def get_dynamic_plugins():
        return list(dict.fromkeys(original()))

    get_dynamic_plugins._plugins_compat = True
    default.get_dynamic_plugins = get_dynamic_plugins
