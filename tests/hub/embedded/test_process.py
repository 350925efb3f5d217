"""Private services: a clear message when a port is taken."""

from __future__ import annotations

import socket

import pytest

from hub.embedded import MosquittoInstance, PortInUseError, PostgresInstance


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_postgres_port_in_use_names_the_port_and_setting(tmp_path, busy_port):
    with pytest.raises(PortInUseError, match=rf"port {busy_port} .*ELDERCARE_EMBEDDED_PG_PORT"):
        PostgresInstance(tmp_path / "pg", busy_port).start()


def test_mosquitto_port_in_use_names_the_port_and_setting(tmp_path, busy_port):
    with pytest.raises(PortInUseError, match=rf"port {busy_port} .*ELDERCARE_EMBEDDED_MQTT_PORT"):
        MosquittoInstance(tmp_path / "mq", busy_port).start()


@pytest.fixture
def private_folder(tmp_path_factory):
    """A folder of mode 0700 like a home folder, and a shared state folder the services may enter."""
    import os
    import tempfile
    from pathlib import Path

    if os.geteuid() != 0:
        pytest.skip("the services run as their own accounts only under root")
    home = Path(tempfile.mkdtemp(prefix="eldercare-home-"))
    home.chmod(0o700)
    shared = Path(tempfile.mkdtemp(prefix="eldercare-state-"))
    shared.chmod(0o755)
    yield home, shared
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(shared, ignore_errors=True)


def test_postgres_starts_from_a_private_home_folder_as_root(private_folder, monkeypatch):
    from hub.embedded import free_port, process

    home, shared = private_folder
    monkeypatch.setattr(process, "SHARED_STATE", shared / "eldercare")
    user = process.service_user("postgres")
    assert user is not None and not process.reachable_by(home, user)
    root = process.service_dir(home / "clone" / "var" / "pg", user)
    assert root.parent.parent == shared / "eldercare"
    assert (home / "clone" / "var" / "pg").resolve() == root  # a symlink shows where the data went
    pg = PostgresInstance(root, free_port())
    pg.start()
    try:
        import psycopg

        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()
    # The next run finds the same folder through the symlink.
    assert process.service_dir(home / "clone" / "var" / "pg", user) == root


def test_a_folder_the_service_can_enter_is_used_as_is(tmp_path):
    from hub.embedded import process

    tmp_path.chmod(0o755)
    assert process.service_dir(tmp_path / "pg", None) == tmp_path / "pg"


def test_initdb_failure_says_why_in_one_line(tmp_path):
    from hub.embedded.process import last_error

    log = tmp_path / "initdb.log"
    log.write_text("The files belonging to this database system will be owned by user \"postgres\".\n"
                   "initdb: error: could not open file \"/x/password\" for reading: Permission denied\n\n")
    assert last_error(log) == 'initdb: error: could not open file "/x/password" for reading: Permission denied'
