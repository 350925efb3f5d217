"""A private Mosquitto running the repository's mosquitto.conf on a loopback port."""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devices.credentials import services_file
from hub.embedded.process import (
    EmbeddedError,
    chown_tree,
    ensure_port_free,
    service_user,
    spawn,
    stop,
    wait_for_port,
)

REPO_CONF = Path(__file__).resolve().parents[2] / "mosquitto.conf"


@dataclass
class MosquittoInstance:
    """One private broker; its password and ACL files live in `root`."""

    root: Path
    port: int
    max_connections: int = 20000
    tls_port: int = 0  # 0: no TLS listener
    device_port: int = 0  # 0: no separate plain listener for devices
    tls_dir: Path | None = None  # holds ca.crt, server.crt, server.key (scripts/make-ca.sh)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def passwd_file(self) -> Path:
        """Mosquitto password file (provisioning writes it)."""
        return self.root / "passwd"

    @property
    def services_passwd_file(self) -> Path:
        """Service accounts only: the services listener's password file when devices have their own."""
        return services_file(self.passwd_file)

    @property
    def acl_file(self) -> Path:
        """Mosquitto ACL file (provisioning writes it)."""
        return self.root / "acl"

    @property
    def pid_file(self) -> Path:
        """Where the broker writes its pid, for SIGHUP reloads."""
        return self.root / "mosquitto.pid"

    @property
    def tls_files(self) -> Path:
        """Where the broker's own copies of the certificate, key and CA live (readable by its user)."""
        return self.root / "tls"

    def runtime_conf(self) -> str:
        """The repository's policy followed by this instance's listeners and paths."""
        policy = REPO_CONF.read_text()
        lines = [
            "",
            "# --- added by hub/embedded/mosquitto.py for this instance ---",
            f"pid_file {self.pid_file}",
            f"persistence_location {self.root / 'data'}/",
            # The hub's workers and the test tools connect here: several connections share one account.
            # When devices have a listener of their own, only service accounts may log in here.
            f"listener {self.port} 127.0.0.1",
            f"max_connections {self.max_connections}",
            *self._security(self.services_passwd_file if self.device_facing else self.passwd_file),
        ]
        # On device-facing listeners the account name is the client id, so a device that knows another
        # device's client id cannot take over its session and knock it offline (one connection per account).
        # They read every account (devices and gateways); the ACL is the same on every listener.
        if self.device_port:
            lines += [
                f"listener {self.device_port} 127.0.0.1",
                f"max_connections {self.max_connections}",
                *self._security(self.passwd_file),
                "use_username_as_clientid true",
            ]
        if self.tls_port:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"max_connections {self.max_connections}",
                *self._security(self.passwd_file),
                "use_username_as_clientid true",
                f"certfile {self.tls_files / 'server.crt'}",
                f"keyfile {self.tls_files / 'server.key'}",
                f"cafile {self.tls_files / 'ca.crt'}",
                "tls_version tlsv1.2",
                "require_certificate false",
            ]
        return policy + "\n".join([*lines, ""])

    @property
    def device_facing(self) -> bool:
        """True when devices have a listener of their own (plain or TLS)."""
        return bool(self.device_port or self.tls_port)

    def _security(self, passwd_file: Path) -> list[str]:
        # per_listener_settings is true in the policy: every listener names its accounts and ACL.
        return ["allow_anonymous false", f"password_file {passwd_file}", f"acl_file {self.acl_file}"]

    def _install_tls_files(self) -> None:
        if self.tls_dir is None:
            raise EmbeddedError("a TLS listener needs a folder with ca.crt, server.crt and server.key")
        self.tls_files.mkdir(parents=True, exist_ok=True)
        for name in ("ca.crt", "server.crt", "server.key"):
            source = self.tls_dir / name
            if not source.exists():
                raise EmbeddedError(f"{source} is missing; make trial certificates with scripts/make-ca.sh "
                                    f"{self.tls_dir}")
            shutil.copyfile(source, self.tls_files / name)
        (self.tls_files / "server.key").chmod(0o600)

    def start(self) -> None:
        """Write the runtime config and start the broker."""
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise EmbeddedError("mosquitto is not installed; run scripts/bootstrap.sh")
        ensure_port_free(self.port, "private Mosquitto", "ELDERCARE_EMBEDDED_MQTT_PORT")
        if self.device_port:
            ensure_port_free(self.device_port, "private Mosquitto (devices)", "ELDERCARE_EMBEDDED_MQTT_DEVICE_PORT")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        if self.tls_port:
            ensure_port_free(self.tls_port, "private Mosquitto (TLS)", "ELDERCARE_MQTT_TLS_PORT")
            self._install_tls_files()
        for path in (self.passwd_file, self.services_passwd_file, self.acl_file):
            if not path.exists():
                path.touch()
        conf = self.root / "mosquitto.conf"
        conf.write_text(self.runtime_conf())
        user = service_user("mosquitto")
        chown_tree(self.root, user)
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        log = self.root / "mosquitto.log"
        self._proc = spawn([binary, "-c", str(conf)], log, user)
        wait_for_port(self.port, self._proc, "private Mosquitto", log)
        if self.device_port:
            wait_for_port(self.device_port, self._proc, "private Mosquitto (devices)", log)
        if self.tls_port:
            wait_for_port(self.tls_port, self._proc, "private Mosquitto (TLS)", log)

    def reload(self) -> None:
        """Make the broker re-read its password and ACL files."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop the broker; it saves its persistence file on the way out."""
        stop(self._proc, signal.SIGTERM)
        self._proc = None

    def kill(self) -> None:
        """Kill the broker without letting it save (fault tests)."""
        stop(self._proc, signal.SIGKILL)
        self._proc = None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker process id while it runs (the benchmark reads its CPU time)."""
        return self._proc.pid if self.running and self._proc is not None else None
