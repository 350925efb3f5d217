"""One-shot set-up of the broker's accounts for docker-compose: the ACL and the hub's own account.

Run before the broker starts, as the broker's user, with the hub's environment:
ELDERCARE_MQTT_URL carries the hub's password, ELDERCARE_MQTT_PASSWD_FILE names the password file
(the ACL is written beside it). Device accounts are added later by provisioning. Idempotent.
"""

from __future__ import annotations

import sys
from urllib.parse import unquote, urlsplit

from devices.credentials import CredentialStore, acl_text
from hub.settings import load_settings
from hub.stack import GATEWAY_ACCOUNTS


def main() -> int:
    """Write the ACL and (re)set the hub account's password from ELDERCARE_MQTT_URL."""
    settings = load_settings()
    if settings.mqtt_url is None or urlsplit(settings.mqtt_url).password is None:
        print("error: ELDERCARE_MQTT_URL must carry the hub's password", file=sys.stderr)  # noqa: T201
        return 2
    passwd = settings.passwd_file
    passwd.parent.mkdir(parents=True, exist_ok=True)
    acl = passwd.with_name("acl")
    acl.write_text(acl_text(settings.mqtt_topic_root, settings.mqtt_username, GATEWAY_ACCOUNTS))
    acl.chmod(0o640)
    password = unquote(urlsplit(settings.mqtt_url).password or "")
    # No pid file yet: the broker starts after this and reads the files then.
    CredentialStore(passwd).set_password(settings.mqtt_username, password)
    print(f"wrote {acl} and the {settings.mqtt_username!r} account in {passwd}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
