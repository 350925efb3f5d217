"""`python -m simulators.bench ingest`: the hub's end-to-end ingest rate against a bare paho floor, side by side.

Both consumers drain the same pre-filled broker queue (persistent sessions), so the publisher's own
speed does not enter the figures: the raw floor is a paho subscriber that only JSON-decodes, the hub
figure runs from the first message received to the last row committed. The drain rate is an upper
bound: with the publisher sharing the machine the hub cannot reach it, so the benchmark also
measures the live maximum, the rate the hub commits while the publisher offers more than it takes.
SOS latency is then measured with SOS presses interleaved in a stream paced at 80% of that live
maximum (`--latency-basis drain`: of the drain rate, as before). While the hub drains, the CPU each
process group spends per message (workers, escalation, PostgreSQL, Mosquitto) is read from /proc:
on a machine they all share, that says what bounds the rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from devices.credentials import CredentialStore, acl_text
from hub.embedded import MosquittoInstance, PostgresInstance, free_port
from hub.embedded.process import die_with_parent
from hub.storage.migrations import migrate

ROOT = "eldercare/v1"
DEVICES_PER_RESIDENT = 5  # a wristband and four home sensors


@dataclass
class Workload:
    """The messages of one run, pre-built so every consumer sees the same bytes."""

    messages: list[tuple[str, bytes]]
    counts: dict[str, int]


def progress(label: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r{label:<14} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def parse_mix(text: str) -> dict[str, float]:
    """'imu=0.2,heartbeat=0.5,sensor=0.3' → shares summing to 1."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in {"imu", "heartbeat", "sensor"}:
            raise SystemExit(f"--mix: unknown kind {key!r} (imu, heartbeat, sensor)")
        mix[key] = float(value)
    total = sum(mix.values())
    if total <= 0:
        raise SystemExit("--mix: shares must add up to more than 0")
    return {k: v / total for k, v in mix.items()}


def device_ids(devices: int) -> tuple[list[str], list[str]]:
    """Wristband ids and sensor ids for `devices` devices."""
    residents = max(1, devices // DEVICES_PER_RESIDENT)
    wristbands = [f"BW{r:06d}" for r in range(residents)]
    sensors = [f"BS{r:06d}{k}" for r in range(residents) for k in range(DEVICES_PER_RESIDENT - 1)]
    return wristbands, sensors


def build(n: int, devices: int, mix: dict[str, float], sos_every: int, rng: random.Random, t0: float,
          id_prefix: str = "b") -> Workload:
    """n messages in the given mix, an SOS every `sos_every`, timestamps just before now."""
    wristbands, sensors = device_ids(devices)
    kinds = list(mix)
    weights = [mix[k] for k in kinds]
    out: list[tuple[str, bytes]] = []
    counts = {"imu": 0, "heartbeat": 0, "sensor": 0, "sos": 0}
    imu = {"rate_hz": 25, "scale": 0.001, "x": [0] * 25, "y": [0] * 25, "z": [1000] * 25}
    for i in range(n):
        ts = t0 + i * 1e-3
        if sos_every and i % sos_every == sos_every - 1:
            device = wristbands[counts["sos"] % len(wristbands)]
            body: dict[str, Any] = {"location": {"lat": 22.5, "lon": 114.0, "acc_m": 10}}
            topic, kind = f"{ROOT}/wristband/{device}/sos", "sos"
        else:
            kind = rng.choices(kinds, weights)[0]
            if kind == "sensor":
                device = rng.choice(sensors)
                topic, body = f"{ROOT}/motion/{device}/state", {"motion": rng.random() < 0.5, "battery": 80}
            else:
                device = rng.choice(wristbands)
                topic = f"{ROOT}/wristband/{device}/{kind}"
                body = dict(imu) if kind == "imu" else {"battery": 70, "signal": -70, "worn": True}
        counts[kind] += 1
        payload = {"v": 1, "id": f"{id_prefix}{i}", "ts": ts, **body}
        out.append((topic, json.dumps(payload, separators=(",", ":")).encode()))
    return Workload(out, counts)


def seed(db_url: str, devices: int) -> None:
    """Register regions, residents and `devices` devices with COPY (100,000 take seconds)."""
    wristbands, sensors = device_ids(devices)
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO regions VALUES ('bench', 'city', 'bench', NULL), "
                    "('bench/d', 'district', 'd', NULL), ('bench/d/c', 'community', 'c', NULL) ON CONFLICT DO NOTHING")
        if cur.execute("SELECT count(*) FROM devices").fetchone() == (len(wristbands) + len(sensors),):
            return
        with cur.copy("COPY households (id, region_path) FROM STDIN") as cp:
            for r in range(len(wristbands)):
                cp.write_row((f"BH{r:06d}", "bench/d/c"))
        with cur.copy("COPY residents (id, household_id, name) FROM STDIN") as cp:
            for r in range(len(wristbands)):
                cp.write_row((f"BR{r:06d}", f"BH{r:06d}", f"bench resident {r}"))
        with cur.copy("COPY devices (id, type, resident_id, household_id, room) FROM STDIN") as cp:
            for r, w in enumerate(wristbands):
                cp.write_row((w, "wristband", f"BR{r:06d}", f"BH{r:06d}", None))
            for s in sensors:
                r = int(s[2:8])
                cp.write_row((s, "motion", f"BR{r:06d}", f"BH{r:06d}", "living_room"))


class Publisher:
    """Publishes a workload at QoS 1, as fast as the broker takes it or at a paced rate."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: list[tuple[str, bytes]], rate: float | None = None,
                sent_at: dict[int, float] | None = None, label: str = "publishing") -> None:
        """Publish all and wait for every PUBACK."""
        infos = []
        start = time.perf_counter()
        for i, (topic, payload) in enumerate(messages):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if sent_at is not None:
                sent_at[i] = time.time()
            infos.append(self.client.publish(topic, payload, qos=1))
            if i % 2000 == 0:
                progress(label, i, len(messages))
        for info in infos:
            info.wait_for_publish(60)
        progress(label, len(messages), len(messages))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def raw_floor(port: int, user: str, password: str, publisher: Publisher, work: Workload) -> float:
    """Messages per second a bare paho subscriber decodes from a pre-filled persistent session."""
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        json.loads(msg.payload)
        now = time.perf_counter()
        if received == 0:
            first = now
        received += 1
        last = now
        if received >= len(work.messages):
            done.set()

    def client() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-floor", clean_session=False)
        c.username_pw_set(user, password)
        c.on_message = on_message
        c.connect("127.0.0.1", port)
        c.subscribe(f"{ROOT}/#", qos=1)
        return c

    sub = client()
    sub.loop(1.0)
    sub.disconnect()  # the session persists and queues what follows
    publisher.publish(work.messages, label="prefill (raw)")
    sub = client()
    sub.loop_start()
    done.wait(600)
    sub.disconnect()
    sub.loop_stop()
    return received / (last - first) if last > first else 0.0


def start_workers(n: int, env: dict[str, str], log_dir: Path,
                  profile: Path | None = None) -> list[subprocess.Popen[bytes]]:
    """Start n hub worker processes and, as `make run` does, the escalation process; workers optionally profiled."""
    procs = []
    for i in range(n):
        log = (log_dir / f"worker{i}.log").open("ab")
        wrap = ["-m", "cProfile", "-o", str(profile / f"worker{i}.prof")] if profile else []
        procs.append(subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, *wrap, "-m", "hub", "worker"], stdout=log, stderr=log,
            preexec_fn=die_with_parent,  # noqa: PLW1509
            env={**env, "ELDERCARE_WORKERS": str(n), "ELDERCARE_WORKER_INDEX": str(i)}))
    if env.get("ELDERCARE_ESCALATION_PROCESS", "true").lower() not in ("false", "0", "no", "off"):
        log = (log_dir / "escalation.log").open("ab")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "hub", "escalation"], stdout=log, stderr=log,
            preexec_fn=die_with_parent, env=env))  # noqa: PLW1509
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM and wait: a clean stop keeps each worker's persistent session at the broker."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)


class CpuMeter:
    """CPU seconds, from /proc, of each process group of the run: hub workers, escalation, PostgreSQL, Mosquitto.

    A group is its processes and their direct children (PostgreSQL's backends), plus what reaped
    children used, so the figures say where a message's CPU goes on a machine all of them share.
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._tick = os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> dict[str, float]:
        """Seconds of CPU (user + system) per group so far."""
        stats: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, own ticks, reaped children's ticks)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue  # exited meanwhile
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                          int(fields[13]) + int(fields[14]))
        out = {}
        for name, roots in self.groups.items():
            ticks = 0
            for pid, (ppid, own, reaped) in stats.items():
                if pid in roots:
                    ticks += own + reaped
                elif ppid in roots:
                    ticks += own
            out[name] = ticks / self._tick
        return out


def cpu_per_message(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    """Microseconds of CPU per committed message, per process group, between two snapshots."""
    per = {k: round((after[k] - before[k]) / messages * 1e6, 1) for k in before} if messages > 0 else {}
    per["total"] = round(sum(per.values()), 1)
    return per


def rss_mb(procs: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """Resident and peak memory of the hub's processes (workers and escalation), from /proc."""
    now = peak = 0
    for p in procs:
        for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now += int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1])
    return {"total": round(now / 1024, 1), "peak": round(peak / 1024, 1),
            "per_process": round(now / 1024 / len(procs), 1), "processes": len(procs)}


def counts(conn: psycopg.Connection[Any], since: float) -> tuple[int, int, int, float | None]:
    """Rows committed for this run: IMU batches, events, heartbeat readings, first receipt time."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM imu_batches WHERE ts >= to_timestamp(%(s)s)),"
        " (SELECT count(*) FROM device_events WHERE ts >= to_timestamp(%(s)s)),"
        " (SELECT count(*) FROM readings WHERE metric = 'signal' AND ts >= to_timestamp(%(s)s)),"
        " (SELECT extract(epoch FROM min(received_at)) FROM device_events WHERE ts >= to_timestamp(%(s)s))",
        {"s": since}).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), (float(row[3]) if row[3] is not None else None)


def shed_telemetry(conn: psycopg.Connection[Any], since: float) -> int:
    """Telemetry the workers started after `since` shed, from their worker_stats snapshots (every 5 s)."""
    row = conn.execute(
        "SELECT coalesce(sum((counters->>'shed_telemetry')::bigint), 0) FROM worker_stats"
        " WHERE process LIKE 'worker-%%' AND started_at >= to_timestamp(%s)", (since,)).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Drain:
    """How one drain went: first receipt, last commit, rows committed and shed, and CPU per message."""

    first: float
    last: float
    committed: int
    shed: int
    cpu_us_per_msg: dict[str, float]


def wait_committed(db_url: str, work: Workload, since: float, label: str,
                   workers_started: float, meter: CpuMeter | None = None) -> Drain:
    """Poll until every message is committed or shed; CPU is counted from the first commit seen to the last."""
    want = (work.counts["imu"], work.counts["sensor"] + work.counts["sos"], work.counts["heartbeat"])
    total = sum(want)
    deadline = time.time() + 900
    last_count, last_growth = -1, time.time()
    cpu_start: tuple[int, dict[str, float]] | None = None  # rows committed then, CPU then

    def cpu(done: int) -> dict[str, float]:
        if meter is None or cpu_start is None:
            return {}
        return cpu_per_message(cpu_start[1], meter.snapshot(), done - cpu_start[0])

    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.time() < deadline:
            imu, events, beats, first = counts(conn, since)
            done = imu + events + beats
            progress(label, done, total)
            if done != last_count:
                last_count, last_growth = done, time.time()
            if cpu_start is None and done > 0 and meter is not None:
                # From here on the workers are past start-up (imports, connecting): steady draining only.
                cpu_start = (done, meter.snapshot())
            if (imu, events, beats) >= want and first is not None:
                return Drain(first, time.time(), done, 0, cpu(done))
            # A backlog larger than the hub's telemetry queue (ELDERCARE_INGEST_QUEUE_MAX) is partly shed, by
            # design: then the count stops short. Shed messages show in the workers' snapshots.
            if first is not None and time.time() - last_growth > 3.0:
                shed = shed_telemetry(conn, workers_started)
                if done + shed >= total:
                    return Drain(first, last_growth, done, shed, cpu(done))
            time.sleep(0.05)
    raise SystemExit(f"{label}: not all messages were committed or counted as shed within 15 minutes")


def warm_up(db_url: str, publisher: Publisher, workers: int, devices: int, rng: random.Random,
            since: float) -> None:
    """Publish probes until the workers have subscribed and committed one (their sessions then exist)."""
    deadline = time.time() + 120
    with psycopg.connect(db_url, autocommit=True) as conn:
        while time.time() < deadline:
            # Probes are stamped an hour back, outside the window the measured run counts.
            probe = build(workers * 8, devices, {"sensor": 1.0}, 0, rng, time.time() - 3600, id_prefix="probe")
            publisher.publish(probe.messages, label="warm-up")
            time.sleep(1.0)
            if counts(conn, since)[1] > 0:
                time.sleep(1.0)  # let every worker finish subscribing
                return
    raise SystemExit("warm-up: the hub workers did not start consuming within 120 s")


def live_max(db_url: str, publisher: Publisher, drain_rate: float, devices: int, mix: dict[str, float],
             rng: random.Random, seconds: float = 6.0) -> float:
    """Messages per second the hub commits while the publisher, on the same machine, offers 1.5x its drain rate."""
    offered = 1.5 * drain_rate
    t0 = time.time() - 1
    work = build(int(offered * seconds), devices, mix, 0, rng, t0, id_prefix="live")
    publishing = threading.Thread(target=publisher.publish, args=(work.messages,),
                                  kwargs={"rate": offered, "label": "live maximum"}, daemon=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        publishing.start()
        time.sleep(seconds / 3)  # past the start-up transient: both sides busy, the broker queue growing
        a, ta = sum(counts(conn, t0 - 0.5)[:3]), time.time()
        publishing.join()
        b, tb = sum(counts(conn, t0 - 0.5)[:3]), time.time()
        # Drain the backlog before the latency phase. Offered more than it takes, the hub may shed
        # telemetry (counted, by design), so wait for the count to stop growing, not for every row.
        last, still = b, time.time()
        while last < len(work.messages) and time.time() - still < 3.0:
            time.sleep(0.2)
            now = sum(counts(conn, t0 - 0.5)[:3])
            progress("live backlog", now, len(work.messages))
            if now != last:
                last, still = now, time.time()
    return (b - a) / (tb - ta) if tb > ta else 0.0


def sos_latency(db_url: str, publisher: Publisher, devices: int, rate: float, seconds: float,
                rng: random.Random, sos_every: int, mix: dict[str, float]) -> dict[str, Any]:
    """p50/p99 ms from SOS publish to its first notification, in a stream paced at `rate`."""
    n = max(sos_every * 5, int(rate * seconds))
    work = build(n, devices, mix, sos_every, rng, time.time() - 5, id_prefix="lat")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE alerts SET closed_at = now() WHERE closed_at IS NULL")  # fresh alerts for every SOS
    sent: dict[int, float] = {}
    publisher.publish(work.messages, rate=rate, sent_at=sent, label="paced (80%)")
    sos_index = {json.loads(p)["id"]: i for i, (t, p) in enumerate(work.messages) if t.endswith("/sos")}
    time.sleep(3)
    with psycopg.connect(db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT e.msg_id, extract(epoch FROM min(ev.ts)), extract(epoch FROM min(e.received_at)),"
            " extract(epoch FROM min(a.created_at)) FROM device_events e"
            " JOIN alerts a ON a.source_device = e.device_id AND a.type = 'sos' AND a.first_ts = e.ts"
            " JOIN alert_events ev ON ev.alert_id = a.id AND ev.kind = 'notification'"
            " WHERE e.kind = 'sos' AND e.msg_id = ANY(%s) GROUP BY e.msg_id", (list(sos_index),)).fetchall()
    if not rows:
        return {"p50": None, "p99": None, "n": 0, "sent": len(sos_index)}

    def quantiles(values: list[float]) -> tuple[float, float]:
        values = sorted(values)
        return (round(values[len(values) // 2], 1), round(values[min(len(values) - 1, int(0.99 * len(values)))], 1))

    total = [(float(t) - sent[sos_index[m]]) * 1000 for m, t, _, _ in rows]
    to_hub = [(float(r) - sent[sos_index[m]]) * 1000 for m, _, r, _ in rows]
    to_alert = [(float(c) - float(r)) * 1000 for _, _, r, c in rows]
    to_notice = [(float(t) - float(c)) * 1000 for _, t, _, c in rows]
    p50, p99 = quantiles(total)
    return {"p50": p50, "p99": p99, "n": len(rows), "sent": len(sos_index), "rate_msgs_per_s": round(rate, 1),
            "p50_p99_publish_to_received": quantiles(to_hub), "p50_p99_received_to_alert": quantiles(to_alert),
            "p50_p99_alert_to_notification": quantiles(to_notice)}


def private_postgres(stack: ExitStack, prefix: str) -> tuple[Path, PostgresInstance]:
    """A temporary folder the services may enter, and a private PostgreSQL in it, stopped with the stack."""
    base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    base.chmod(0o755)  # PostgreSQL and Mosquitto run as their own accounts under root
    pg = PostgresInstance(base / "pg", free_port())
    pg.start()
    stack.callback(pg.stop)
    return base, pg


def private_broker(stack: ExitStack, base: Path) -> MosquittoInstance:
    """A private Mosquitto with the hub's account (password hub-bench) and a publisher `bench` on ROOT."""
    broker = MosquittoInstance(base / "mosquitto", free_port())
    broker.root.mkdir(parents=True)
    broker.acl_file.write_text(acl_text(ROOT, "hub", {"bench": f"{ROOT}/#"}))
    CredentialStore(broker.passwd_file, broker.pid_file).set_many({"hub": "hub-bench", "bench": "bench"})
    broker.start()
    stack.callback(broker.stop)
    return broker


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole benchmark and return its figures."""
    rng = random.Random(args.seed)
    mix = parse_mix(args.mix)
    with ExitStack() as stack:
        base, pg = private_postgres(stack, "eldercare-bench-")
        broker = private_broker(stack, base)
        migrate(pg.url)
        sys.stderr.write(f"seeding {args.devices} devices\n")
        seed(pg.url, args.devices)
        publisher = Publisher(broker.port, "bench", "bench")
        stack.callback(publisher.close)

        work_t0 = time.time() - 30
        work = build(args.messages, args.devices, mix, args.sos_every, rng, work_t0)
        floor = raw_floor(broker.port, "bench", "bench", publisher, work)

        env = {**os.environ, "ELDERCARE_DB_URL": pg.url, "ELDERCARE_LOG_LEVEL": "WARNING",
               "ELDERCARE_MQTT_URL": f"mqtt://hub:hub-bench@127.0.0.1:{broker.port}",
               "ELDERCARE_MQTT_CLIENT_ID": "hub-bench", "ELDERCARE_WATCH_GATEWAY_PORT": "0"}
        procs = start_workers(args.workers, env, base)
        stack.callback(stop_workers, procs)
        warm_up(pg.url, publisher, args.workers, args.devices, rng, work_t0 - 7200)
        stop_workers(procs)  # sessions persist; the queue fills while the hub is away
        publisher.publish(work.messages, label="prefill (hub)")
        started = time.time() - 1  # worker_stats.started_at is the process start, to the second
        procs[:] = start_workers(args.workers, env, base, args.profile)
        meter = CpuMeter({"workers": [p.pid for p in procs[:args.workers]],
                          "escalation": [p.pid for p in procs[args.workers:]],
                          "postgres": [pg.pid or 0], "mosquitto": [broker.pid or 0]})
        drain = wait_committed(pg.url, work, work_t0 - 0.5, "hub", started, meter)
        committed, shed = drain.committed, drain.shed
        if shed:
            sys.stderr.write(f"warning: the hub shed {shed} telemetry messages of the backlog (its queue bound is"
                             " ELDERCARE_INGEST_QUEUE_MAX); hub_msgs_per_s counts committed messages only\n")
        hub_rate = committed / (drain.last - drain.first)
        memory = rss_mb(procs)
        live = live_max(pg.url, publisher, hub_rate, args.devices, mix, rng)
        basis = live if args.latency_basis == "live" else hub_rate
        latency = sos_latency(pg.url, publisher, args.devices, args.latency_load * basis, args.latency_seconds,
                              rng, args.sos_every, mix)
        latency["basis"] = args.latency_basis
    return {
        "raw_floor_msgs_per_s": round(floor, 1),
        "hub_msgs_per_s": round(hub_rate, 1),
        "ratio": round(hub_rate / floor, 3) if floor else None,
        "live_max_msgs_per_s": round(live, 1),
        "workers": args.workers,
        "committed": committed,
        "shed_telemetry": shed,
        "cpu_us_per_msg": drain.cpu_us_per_msg,
        "sos_latency_ms": latency,
        "rss_mb": memory,
        "messages": len(work.messages),
        "devices": args.devices,
        "mix": {k: round(v, 3) for k, v in mix.items()},
        "message_counts": work.counts,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m simulators.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="measure end-to-end ingest against the raw paho floor")
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--devices", type=int, default=10000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--mix", default="imu=0.2,heartbeat=0.5,sensor=0.3")
    p.add_argument("--sos-every", type=int, default=500, help="one SOS press per this many messages")
    p.add_argument("--latency-seconds", type=float, default=10.0, help="length of the paced latency phase")
    p.add_argument("--latency-load", type=float, default=0.8,
                   help="paced rate as a share of the hub's maximum (see --latency-basis)")
    p.add_argument("--latency-basis", choices=["live", "drain"], default="live",
                   help="live: the rate the hub commits while the publisher runs beside it; drain: its rate on "
                        "a pre-filled queue (unreachable while the publisher shares the machine)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--profile", type=Path, help="write each worker's cProfile output to this folder")
    from simulators import bench_flood, bench_import, bench_storage

    bench_import.add_parser(sub)
    bench_storage.add_parser(sub)
    bench_flood.add_arguments(sub.add_parser("flood", help="one device floods alarms: another device's SOS latency"))
    args = parser.parse_args(argv)
    runners = {"import": bench_import.bench, "storage": bench_storage.storage, "flood": bench_flood.run}
    result = runners.get(args.command, ingest)(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
