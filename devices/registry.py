"""The device-type registry: one module per type in devices/types, keyed by its file name."""

from __future__ import annotations

from functools import cache
from types import ModuleType

from devices.device_type import DeviceType
from hub.errors import PluginError
from hub.plugins import Registry, build_registry


def _extract(module: ModuleType) -> tuple[str, DeviceType] | None:
    device_type = getattr(module, "DEVICE_TYPE", None)
    if device_type is None:
        raise PluginError(f"{module.__name__} defines no DEVICE_TYPE")
    if not isinstance(device_type, DeviceType):
        raise PluginError(f"{module.__name__}.DEVICE_TYPE is not a DeviceType")
    expected = module.__name__.rsplit(".", 1)[-1]
    if device_type.key != expected:
        # One name per concept: the key is the file name and the topic segment.
        raise PluginError(f"{module.__name__} declares key {device_type.key!r}; it must be {expected!r}")
    return device_type.key, device_type


def load_device_types(package: str = "devices.types") -> Registry[DeviceType]:
    """Import every device-type module; fails loudly on a duplicate key or a broken module."""
    return build_registry("device type", package, _extract)


@cache
def device_types() -> Registry[DeviceType]:
    """The registry of the shipped device types, loaded once."""
    return load_device_types()
