"""Plugin module named in test configs (`plugins: [toy_plugin_register]`): registers the toy plugin."""

from toy_plugin import register

register()
