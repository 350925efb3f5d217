"""Structured JSON logs on stderr; messages carry ids, never personal data."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from types import TracebackType


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record."""
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level: str, json_logs: bool = True) -> None:
    """Configure the root logger once."""
    handler = logging.StreamHandler(sys.stderr)
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(JsonFormatter() if json_logs else plain)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Whatever else would write to stderr goes through the same formatter: warnings and crashes in the
    # main thread or in paho's network thread, so every line an operator's log shipper reads is JSON.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_crash


def _log_uncaught(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("hub").critical("uncaught %s", kind.__name__, exc_info=(kind, err, tb))


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("hub").critical("thread %s crashed: %s", name, args.exc_type.__name__,
                                      exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))
