"""compat/tensorboard.py: with BasicSR's tb-nightly and MMagic's tensorboard installed together, the projector plugin
is declared twice and ``tensorboard --logdir ...`` failed with "Duplicate plugins for name projector"."""
import importlib.metadata
import types

from plugins.compat import tensorboard as tensorboard_patch


class PluginA:
    pass


class PluginB:
    pass


def test_each_plugin_class_is_kept_once_in_its_order():
    fake = types.SimpleNamespace(get_dynamic_plugins=lambda: [PluginA, PluginB, PluginA])
    tensorboard_patch.apply(fake)
    assert fake.get_dynamic_plugins() == [PluginA, PluginB]
    patched = fake.get_dynamic_plugins
    tensorboard_patch.apply(fake)  # idempotent
    assert fake.get_dynamic_plugins is patched


def test_the_installed_tensorboard_loads_each_declared_plugin_once():
    from tensorboard import default
    declared = {(ep.name, ep.value) for ep in importlib.metadata.entry_points(group='tensorboard_plugins')}
    plugins = default.get_dynamic_plugins()
    assert len(plugins) == len(set(plugins)) == len(declared)
