"""Child-process plumbing shared by the private services: ports, users and clean shutdown."""

from __future__ import annotations

import ctypes
import hashlib
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

from hub.errors import EldercareError

_PR_SET_PDEATHSIG = 1


class EmbeddedError(EldercareError):
    """A private service could not be started or stopped."""


class PortInUseError(EmbeddedError):
    """The port a private service needs is taken by another process."""


def free_port() -> int:
    """Ask the kernel for a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_port_free(port: int, what: str, setting: str) -> None:
    """Fail with a message naming the port and the setting that moves it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the servers themselves: a port left in TIME_WAIT by our last run is free to reuse.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is already in use, so the {what} cannot start; "
                f"stop the other process or choose another port with {setting}"
            ) from None


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30.0) -> None:
    """Wait until a child accepts TCP connections, or explain from its log why it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedError(f"{what} exited with code {proc.returncode}: {tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise EmbeddedError(f"{what} did not accept connections on port {port} within {timeout:.0f} s: {tail(log)}")


def last_error(path: Path) -> str:
    """The most telling line of a failed tool's log (its last error line), for a one-line message."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no output)"
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower() or "denied" in ln.lower()]
    return (errors or lines or ["(no output)"])[-1]


def tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def service_user(name: str) -> pwd.struct_passwd | None:
    """The unprivileged account to run a service as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedError(f"running as root but system user {name!r} does not exist; run `make run` "
                            "once to install the packages that create it") from None


def chown_tree(path: Path, user: pwd.struct_passwd | None) -> None:
    """Give a service's private directory to the account it runs as."""
    if user is None:
        return
    try:
        for root, dirs, files in os.walk(path):
            os.chown(root, user.pw_uid, user.pw_gid)
            for name in dirs + files:
                os.chown(Path(root) / name, user.pw_uid, user.pw_gid, follow_symlinks=False)
    except OSError as err:
        raise EmbeddedError(f"cannot give {path} to the {user.pw_name!r} account ({err.strerror}): its file system "
                            "does not allow it; set ELDERCARE_DATA_DIR to a folder on a local disk") from None


def reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """True when `user` can enter `path` (every folder above it searchable), asked of the kernel as that user."""
    # access(2) as that user checks search permission on every folder of the path (a child's cwd would
    # be entered before it drops root).
    try:
        subprocess.run(["/usr/bin/test", "-x", str(path)], user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                       check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


SHARED_STATE = Path("/var/lib/eldercare")


def service_dir(preferred: Path, user: pwd.struct_passwd | None) -> Path:
    """Where a private service keeps its files: `preferred`, or a folder its account can reach.

    As root the services run as their own accounts (PostgreSQL refuses to run as root). A clone in a
    private home folder (mode 0700) is closed to them, so their files go under /var/lib/eldercare and
    `preferred` becomes a symlink to that folder: later runs, and the person looking for the data, find it.
    """
    if preferred.is_symlink():
        return preferred.resolve()
    preferred.parent.mkdir(parents=True, exist_ok=True)
    if user is None or reachable_by(preferred.parent, user):
        return preferred
    digest = hashlib.sha256(str(preferred.parent.resolve()).encode()).hexdigest()[:10]  # one folder per data dir
    moved = SHARED_STATE / f"{preferred.parent.parent.name or 'root'}-{digest}" / preferred.name
    if preferred.exists():
        if any(preferred.iterdir()):
            raise EmbeddedError(
                f"the {user.pw_name!r} account cannot enter {preferred.parent} and {preferred} already holds "
                f"data; move that folder to {moved} or give the account access (chmod o+x on each folder above)")
        preferred.rmdir()
    try:
        moved.mkdir(parents=True, exist_ok=True)
        for folder in (SHARED_STATE, moved.parent):
            folder.chmod(0o755)
        preferred.symlink_to(moved, target_is_directory=True)
    except OSError as err:
        raise EmbeddedError(
            f"the {user.pw_name!r} account cannot enter {preferred.parent} and {moved} cannot be created "
            f"({err.strerror}); set ELDERCARE_DATA_DIR to a folder that account can enter") from None
    return moved


def die_with_parent() -> None:
    # If the supervising Python process is killed, its services must not linger as orphans.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgrp()  # own process group: a Ctrl-C in the terminal reaches only the supervisor


def spawn(args: list[str], log: Path, user: pwd.struct_passwd | None) -> subprocess.Popen[bytes]:
    """Start a service in its own folder, as a child that dies with us and writes to its own log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    try:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - we spawn only from the main thread
            # Not our working directory: initdb returns to it after looking up its own path, and a
            # service account cannot enter a private folder the hub was started from.
            cwd=log.parent,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Ask a child to stop, then kill it if it does not."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
