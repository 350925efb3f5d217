"""Channel registry and config union: every plug-in loads; duplicates and broken plug-ins fail loudly."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from alerts.channels import (
    Channel,
    ChannelServices,
    build_channel,
    build_channels,
    channel_config_adapter,
    load_channels,
    parse_channel_config,
)
from alerts.channels.base import ChannelConfigBase
from hub.errors import ConfigError, PluginError

ALL_KEYS = ["console", "dingtalk", "emergency", "live", "sms", "smtp", "webhook", "wecom"]
MINIMAL = {
    "console": {"type": "console"},
    "dingtalk": {"type": "dingtalk", "access_token": "0123456789abcdef"},
    "emergency": {"type": "emergency", "url": "https://gw.example.org/d", "secret": "0123456789abcdef"},
    "live": {"type": "live"},
    "sms": {"type": "sms", "url": "https://sms.example.org/send"},
    "smtp": {"type": "smtp", "host": "mail.example.org", "sender": "hub@example.org"},
    "webhook": {"type": "webhook", "url": "https://family.example.org/hook"},
    "wecom": {"type": "wecom", "key": "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"},
}

class _NullFeed:
    """A live feed that accepts entries and keeps none (the live channel needs one to be built)."""

    async def publish(self, kind: str, notification: object) -> str | None:
        return None


VALID_PLUGIN = '''
"""A test plug-in."""
from typing import Literal
from pydantic import Field
from alerts.channels.base import ChannelConfigBase, ChannelServices, Notification, RetryingChannel

KEY = "{key}"


class Config(ChannelConfigBase):
    """Config."""
    type: Literal["{key}"] = Field("{key}", title="Type", description="Always {key}.")


class LiveChannel(RetryingChannel[Config]):
    """Publishes to an in-process feed taken from services.resources, like the live WebSocket feed."""
    key = KEY

    def __init__(self, config, services):
        super().__init__(config, services=services)
        self.feed = self.services.resources["live_feed"]

    async def _deliver(self, notification: Notification) -> str | None:
        self.feed.append(notification.alert_id)
        return None


def build(config, *, http_client=None, services=None):
    """Build."""
    return LiveChannel(config, services or ChannelServices())
'''


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Create an importable package of channel modules in tmp_path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(modules: dict[str, str]) -> str:
        name = f"tmp_channels_{uuid.uuid4().hex[:8]}"
        folder = tmp_path / name
        folder.mkdir()
        (folder / "__init__.py").write_text('"""Temporary channel package."""\n')
        for module, source in modules.items():
            (folder / f"{module}.py").write_text(textwrap.dedent(source))
        return name

    return make


def test_all_channels_load() -> None:
    registry = load_channels()
    assert registry.keys() == ALL_KEYS
    for key, plugin in registry.items():
        assert plugin.key == key
        assert plugin.module == f"alerts.channels.{key}"
        assert issubclass(plugin.config_model, ChannelConfigBase)


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_config_field_is_documented(key: str) -> None:
    model = load_channels().get(key).config_model
    for name, field in model.model_fields.items():
        assert field.title, f"{key}.{name} has no title"
        assert field.description, f"{key}.{name} has no description"
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.anyio
@pytest.mark.parametrize("key", ALL_KEYS)
async def test_every_channel_builds_from_parsed_config(key: str) -> None:
    registry = load_channels()
    config = parse_channel_config(MINIMAL[key], registry)
    assert type(config) is registry.get(key).config_model
    services = ChannelServices(resources={"live_feed": _NullFeed()}) if key == "live" else None
    channel = build_channel(config, registry, services=services)
    assert isinstance(channel, Channel)
    assert (channel.key, channel.name) == (key, key)
    await channel.aclose()


def test_union_rejects_unknown_type_naming_it_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        parse_channel_config({"type": "pigeon", "name": "roof"}, load_channels())
    message = str(info.value)
    assert "'roof'" in message
    assert "'pigeon'" in message
    for key in ALL_KEYS:
        assert f"'{key}'" in message


def test_union_rejects_unknown_fields_naming_them() -> None:
    data = {**MINIMAL["webhook"], "retries": 5, "secrte": "x"}
    with pytest.raises(
        ConfigError, match=r"'webhook' config: unknown field 'retries'; unknown field 'secrte'"
    ):
        parse_channel_config(data, load_channels())


def test_union_rejects_missing_type() -> None:
    with pytest.raises(ConfigError, match="type"):
        parse_channel_config({"url": "https://x.example.org/"}, load_channels())


def test_adapter_produces_a_json_schema_with_every_type() -> None:
    schema = channel_config_adapter(load_channels()).json_schema()
    assert sorted(schema["discriminator"]["mapping"]) == ALL_KEYS


def test_instance_names_must_be_distinct() -> None:
    registry = load_channels()
    one = parse_channel_config({**MINIMAL["webhook"], "name": "family"}, registry)
    two = parse_channel_config({**MINIMAL["sms"], "name": "family"}, registry)
    with pytest.raises(ConfigError, match="two notification channel configs are named 'family'"):
        build_channels([one, two], registry)
    channels = build_channels([one, parse_channel_config(MINIMAL["sms"], registry)], registry)
    assert sorted(channels) == ["family", "sms"]


def test_duplicate_key_fails_loudly(make_package) -> None:
    package = make_package({"console": VALID_PLUGIN.format(key="console")})
    with pytest.raises(
        PluginError,
        match=rf"duplicate notification channel key 'console': defined in "
        rf"alerts.channels.console and {package}.console",
    ):
        load_channels("alerts.channels", package)


def test_broken_module_fails_loudly(make_package) -> None:
    package = make_package({"pager": 'raise RuntimeError("pager SDK missing")\n'})
    with pytest.raises(
        PluginError, match=rf"plug-in module {package}.pager failed to import.*pager SDK missing"
    ):
        load_channels("alerts.channels", package)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('"""No key."""\n', "does not declare KEY"),
        (VALID_PLUGIN.format(key="beeper"), "KEY 'beeper' must equal the file name 'pager'"),
        (
            VALID_PLUGIN.format(key="pager").replace(
                'Literal["pager"] = Field("pager"', 'Literal["sms"] = Field("sms"'
            ),
            r"Config.type must be Literal\['pager'\]",
        ),
        (VALID_PLUGIN.format(key="pager").replace("def build(", "def make("), "does not define build"),
        ('KEY = "pager"\nConfig = dict\n', r"does not define Config\(ChannelConfigBase\)"),
    ],
)
def test_inconsistent_module_fails_loudly(make_package, source: str, message: str) -> None:
    package = make_package({"pager": source})
    with pytest.raises(PluginError, match=message):
        load_channels(package)


@pytest.mark.anyio
async def test_extra_package_plugs_in_a_non_http_channel(make_package, make_notification) -> None:
    package = make_package(
        {
            "pager": VALID_PLUGIN.format(key="pager"),
            "base": '"""Shared helpers, not a plug-in."""\n',
            "_helpers": "raise RuntimeError('private modules are not imported')\n",
        }
    )
    registry = load_channels("alerts.channels", package)
    assert registry.keys() == sorted([*ALL_KEYS, "pager"])
    config = parse_channel_config({"type": "pager"}, registry)
    feed: list[int] = []
    channel = build_channel(config, registry, services=ChannelServices(resources={"live_feed": feed}))
    result = await channel.send(make_notification())
    assert result.ok
    assert feed == [4711]
