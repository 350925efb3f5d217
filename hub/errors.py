"""The project's base exception; every package derives its own errors from it."""


class EldercareError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(EldercareError):
    """A setting, policy or plug-in is wrong; start-up stops with this message."""


class PluginError(ConfigError):
    """A plug-in failed to import or registered a key that is already taken."""
