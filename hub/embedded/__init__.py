"""Private PostgreSQL+TimescaleDB and Mosquitto instances for `make run` and the test suite."""

from hub.embedded.mosquitto import MosquittoInstance
from hub.embedded.postgres import PostgresInstance
from hub.embedded.process import EmbeddedError, PortInUseError, free_port

__all__ = ["EmbeddedError", "MosquittoInstance", "PortInUseError", "PostgresInstance", "free_port"]
