"""A private Mosquitto running the repository's mosquitto.conf on a loopback port."""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

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
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def passwd_file(self) -> Path:
        """Mosquitto password file (provisioning writes it)."""
        return self.root / "passwd"

    @property
    def acl_file(self) -> Path:
        """Mosquitto ACL file (provisioning writes it)."""
        return self.root / "acl"

    @property
    def pid_file(self) -> Path:
        """Where the broker writes its pid, for SIGHUP reloads."""
        return self.root / "mosquitto.pid"

    def runtime_conf(self) -> str:
        """The repository's policy followed by this instance's listener and paths."""
        policy = REPO_CONF.read_text()
        return policy + "\n".join([
            "",
            "# --- added by hub/embedded/mosquitto.py for this instance ---",
            f"pid_file {self.pid_file}",
            f"persistence_location {self.root / 'data'}/",
            f"password_file {self.passwd_file}",
            f"acl_file {self.acl_file}",
            f"listener {self.port} 127.0.0.1",
            f"max_connections {self.max_connections}",
            "",
        ])

    def start(self) -> None:
        """Write the runtime config and start the broker."""
        if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
            raise EmbeddedError("mosquitto is not installed; run scripts/bootstrap.sh")
        ensure_port_free(self.port, "private Mosquitto", "ELDERCARE_EMBEDDED_MQTT_PORT")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        for path in (self.passwd_file, self.acl_file):
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
