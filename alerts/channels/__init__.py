"""Notification channel registry: finds the plug-in modules and builds the discriminated config union."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any, get_args

import httpx
from pydantic import Field, TypeAdapter, ValidationError

from alerts.channels.base import (
    Channel,
    ChannelConfigBase,
    ChannelServices,
    DeliveryResult,
    Notification,
    Recipient,
)
from hub.errors import ConfigError, PluginError
from hub.plugins import Registry, build_registry

__all__ = [
    "Channel",
    "ChannelConfigBase",
    "ChannelPlugin",
    "ChannelServices",
    "DeliveryResult",
    "Notification",
    "Recipient",
    "build_channel",
    "build_channels",
    "channel_config_adapter",
    "load_channels",
    "parse_channel_config",
]

KIND = "notification channel"
DEFAULT_PACKAGES = ("alerts.channels",)
# Modules of a channel package that hold shared code rather than a channel.
NOT_PLUGINS = frozenset({"base"})

BuildFn = Callable[..., Channel]


@dataclass(frozen=True)
class ChannelPlugin:
    """One channel module: its key, config model, build function and where it came from."""

    key: str
    config_model: type[ChannelConfigBase]
    build: BuildFn
    module: str


def plugin_from_module(module: ModuleType) -> tuple[str, ChannelPlugin] | None:
    """Check a channel module's declarations; anything missing or inconsistent is a PluginError."""
    name = module.__name__
    short = name.rsplit(".", 1)[-1]
    if short in NOT_PLUGINS:
        return None
    key = getattr(module, "KEY", None)
    if not isinstance(key, str):
        raise PluginError(f"{KIND} module {name} does not declare KEY = '<name>'")
    if key != short:
        raise PluginError(f"{KIND} module {name}: KEY {key!r} must equal the file name {short!r}")
    config = getattr(module, "Config", None)
    if not (isinstance(config, type) and issubclass(config, ChannelConfigBase)):
        raise PluginError(f"{KIND} module {name} does not define Config(ChannelConfigBase)")
    type_field = config.model_fields.get("type")
    if type_field is None or get_args(type_field.annotation) != (key,):
        raise PluginError(f"{KIND} module {name}: Config.type must be Literal[{key!r}]")
    build = getattr(module, "build", None)
    if not callable(build):
        raise PluginError(f"{KIND} module {name} does not define build(config, *, http_client, services)")
    return key, ChannelPlugin(key=key, config_model=config, build=build, module=name)


def load_channels(*packages: str) -> Registry[ChannelPlugin]:
    """Import every channel module of the given packages (default: this one) into one registry."""
    registry: Registry[ChannelPlugin] = Registry(KIND)
    for package in packages or DEFAULT_PACKAGES:
        for key, plugin in build_registry(KIND, package, plugin_from_module).items():
            registry.register(key, plugin, plugin.module)
    return registry


@functools.lru_cache(maxsize=8)
def _adapter_for(models: tuple[type[ChannelConfigBase], ...]) -> TypeAdapter[Any]:
    if len(models) == 1:
        return TypeAdapter(models[0])
    union = functools.reduce(operator.or_, models)
    tagged: Any = Annotated[union, Field(discriminator="type")]
    return TypeAdapter(tagged)


def channel_config_adapter(registry: Registry[ChannelPlugin] | None = None) -> TypeAdapter[Any]:
    """A TypeAdapter for the union of all channel configs, discriminated by `type`."""
    registry = registry if registry is not None else load_channels()
    if not registry.keys():
        raise ConfigError(f"no {KIND} plug-ins are registered")
    return _adapter_for(tuple(plugin.config_model for _, plugin in registry.items()))


def _describe(data: object, err: ValidationError) -> str:
    label = "?"
    if isinstance(data, Mapping):
        label = str(data.get("name") or data.get("type") or "?")
    problems = []
    for error in err.errors():
        loc = [str(part) for part in error["loc"]]
        # The first location part of a tagged-union error is the tag itself, not a field.
        if isinstance(data, Mapping) and loc and loc[0] == data.get("type"):
            loc = loc[1:]
        where = ".".join(loc)
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field {where!r}")
        elif where:
            problems.append(f"field {where!r}: {error['msg']}")
        else:
            problems.append(error["msg"])
    return f"{KIND} {label!r} config: " + "; ".join(problems)


def parse_channel_config(
    data: Mapping[str, Any], registry: Registry[ChannelPlugin] | None = None
) -> ChannelConfigBase:
    """Validate one channel config mapping; errors become ConfigError naming the channel and field."""
    try:
        config = channel_config_adapter(registry).validate_python(data)
    except ValidationError as err:
        raise ConfigError(_describe(data, err)) from err
    assert isinstance(config, ChannelConfigBase)
    return config


def build_channel(
    config: ChannelConfigBase,
    registry: Registry[ChannelPlugin],
    *,
    http_client: httpx.AsyncClient | None = None,
    services: ChannelServices | None = None,
) -> Channel:
    """Build the channel for a validated config with its plug-in's build function."""
    plugin = registry.get(config.type)
    return plugin.build(config, http_client=http_client, services=services)


def build_channels(
    configs: Iterable[ChannelConfigBase],
    registry: Registry[ChannelPlugin],
    *,
    http_client: httpx.AsyncClient | None = None,
    services: ChannelServices | None = None,
) -> dict[str, Channel]:
    """Build every configured channel, keyed by instance name; two instances with one name fail."""
    channels: dict[str, Channel] = {}
    for config in configs:
        channel = build_channel(config, registry, http_client=http_client, services=services)
        if channel.name in channels:
            raise ConfigError(f"two {KIND} configs are named {channel.name!r}; set distinct `name`s")
        channels[channel.name] = channel
    return channels
