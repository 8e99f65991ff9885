"""Scale-out benchmark of `labeler autolabel --ray` on a local Ray cluster of one-CPU nodes, and the
model of where a bigger cluster saturates (issue 37).

    python scripts/bench/bench_scale.py [--images 1000] [--nodes 1,2] [--db URL] [--fs-mbps 1000] [--fs-rps 5500]

The image set: --images files copied from ../shared/data into a temporary folder (60% real web
photos from web_pool/images, 30.7% dev/images: web photos, group photos, 48 px FER2013 crops and
350 px crops, the rest 48 px FER2013 train crops, seeded), the same for every node count. For each
node count N: a Ray cluster started here, `ray start --head --num-cpus 1` plus N-1 `ray start
--address ... --num-cpus 1` (all on this machine, one CPU each: the head's address is this host),
a fresh database (SQLite in the temporary folder, or a new database on the PostgreSQL server of
--db), and the driver as a user runs it, one process: `python -m labeler autolabel SET --ray
ADDRESS --db URL -q`. Measured per run: wall time and images/s (Ray's start is not in it: the
cluster is up before; the driver's connection and the workers' model loading are), the driver's CPU
(getrusage of the child) and its share of the wall time, the CPU of the Ray workers and of Ray's
services (raylets, GCS, agents: /proc, at the end), the bytes the driver sent with its tasks (the
pickled arguments, as the driver's report prints them, in all and besides the path) and the TCP
bytes the driver process sent on all its sockets but the database's (`ss -tinp`, sampled every
second: every message of Ray's, task descriptions and control included), the bytes of the results (crops, in the
database), the load average before and after. Every Ray process started here is stopped at the
end of each node count, also on failure or Ctrl-C (by process id, never `ray stop`, which would
stop other people's Ray too).

Ray's task timeline says how much of the run each worker had a task (whether the driver kept them
fed: under CPU contention tasks run slower, but a fed worker stays busy).

Then the model: the measured per-image costs (worker CPU, driver CPU, the driver's database time,
bytes read and returned) extrapolated to 10, 100 and 1,000 nodes: which of the driver, the database
writes and the file system saturates first. The file system's capacity is not measured here (the
set sits in this machine's page cache): --fs-mbps and --fs-rps state it (defaults: 1,000 MB/s, a
good NFS server; 5,500 reads/s, S3's stated rate per prefix).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
TICK = os.sysconf("SC_CLK_TCK")
#: Ray's helper processes (not workers running tasks)
SERVICES = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


# ---------------------------------------------------------------- the image set
def build_set(dest: Path, n: int, seed: int = 0) -> dict:
    web = sorted(p for p in (SHARED / "web_pool" / "images").iterdir() if p.is_file())
    dev = sorted(p for p in (SHARED / "dev" / "images").rglob("*") if p.is_file())
    fer = sorted((SHARED / "fer2013" / "train").rglob("*.jpg"))
    n_web = min(len(web), round(0.6 * n))
    n_dev = min(len(dev), round(0.307 * n))
    n_fer = n - n_web - n_dev
    rng = random.Random(seed)
    picks = {"web_pool": _spread(web, n_web), "dev": _spread(dev, n_dev), "fer2013": sorted(rng.sample(fer, n_fer))}
    size = 0
    for kind, files in picks.items():
        for p in files:
            if kind == "dev":
                out = dest / kind / p.relative_to(SHARED / "dev" / "images")
            elif kind == "fer2013":  # the class folder is left out: file names must not give the label away
                out = dest / kind / p.name
            else:
                out = dest / kind / p.name
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out)
            size += out.stat().st_size
    return {"files": sum(len(v) for v in picks.values()), "bytes": size, **{k: len(v) for k, v in picks.items()}}


def _spread(files: list, k: int) -> list:
    """``k`` of ``files`` spread evenly over the sorted list (all of them when k is their number)."""
    if k >= len(files):
        return list(files)
    return [files[int(i * len(files) / k)] for i in range(k)]


# ---------------------------------------------------------------- the cluster
def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(d)] = (ppid, cmd)
    return out


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK  # utime + stime
    except OSError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    nodes: int
    temp: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="lbray", dir="/tmp"))
    port: int = field(default_factory=_free_port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict:
        """This cluster's own token (Ray's default file, ~/.ray/auth_token, is shared by everyone on
        the machine), for the nodes and every process that connects."""
        token = Path(self.temp) / "auth_token"
        if not token.exists():
            import secrets

            token.write_text(secrets.token_hex(32))
            token.chmod(0o600)
        return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))

    def start(self) -> None:
        common = ["--num-cpus", "1", "--num-gpus", "0", "--node-ip-address", "127.0.0.1", "--object-store-memory",
                  str(100 << 20), "--disable-usage-stats"]
        ray = [sys.executable, "-m", "ray.scripts.scripts", "start"]  # this interpreter: the workers run this labeler
        env = self.env
        head = ray + ["--head", "--port", str(self.port), "--include-dashboard", "false", "--temp-dir", self.temp] + common
        subprocess.run(head, check=True, capture_output=True, timeout=300, env=env, cwd=self.temp)
        for _ in range(self.nodes - 1):
            subprocess.run(ray + ["--address", self.address] + common, check=True, capture_output=True, timeout=300, env=env,
                           cwd=self.temp)
        check = ("import ray; ray.init(address=%r, log_to_driver=False); "
                 "print(sum(1 for n in ray.nodes() if n['Alive']), int(ray.cluster_resources().get('CPU', 0)))") % self.address
        out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, cwd=self.temp, env=env)
        got = out.stdout.split()
        if got[-2:] != [str(self.nodes), str(self.nodes)]:
            raise RuntimeError(f"expected {self.nodes} nodes of one CPU, found {got[-2:]}: {out.stderr[-3000:]}")

    def pids(self) -> dict[int, str]:
        """Every process of this cluster: those naming its temporary folder, and their descendants."""
        procs = _procs()
        mine = {p for p, (_, cmd) in procs.items() if self.temp in cmd}
        grew = True
        while grew:
            kids = {p for p, (pp, _) in procs.items() if pp in mine and p not in mine}
            mine |= kids
            grew = bool(kids)
        return {p: procs[p][1] for p in mine}

    def stop(self) -> None:
        pids = self.pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        t = time.time()
        while time.time() - t < 15 and any(_alive(p) for p in pids):
            time.sleep(0.3)
        for p in pids:
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.temp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- one driver run
class Sampler(threading.Thread):
    """Every second: the bytes sent on each TCP socket of ``pid`` and the CPU time of each process
    of the cluster (the largest value seen per socket and per process: Ray ends idle workers)."""

    def __init__(self, pid: int, cluster: Cluster, skip_port: int = 0):
        super().__init__(daemon=True)
        self.pid, self.cluster, self.sent, self.stop_flag = pid, cluster, {}, threading.Event()
        self.skip = f":{skip_port}" if skip_port else None  # the database server's sockets: not Ray's traffic
        self.cpu: dict[int, tuple[bool, float]] = {}  # pid -> (a worker, CPU seconds)
        self.cpu0 = self._cluster_cpu()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.sample()
            self.cpu.update({p: (w, max(c, self.cpu.get(p, (w, 0.0))[1])) for p, (w, c) in self._cluster_cpu().items()})
            self.stop_flag.wait(1.0)

    def _cluster_cpu(self) -> dict[int, tuple[bool, float]]:
        return {p: (cmd.startswith("ray::") and not cmd.startswith(SERVICES), _cpu(p)) for p, cmd in self.cluster.pids().items()}

    def top(self, n: int = 8) -> list[tuple[float, str]]:
        """The cluster's processes that took the most CPU since the start: (seconds, command)."""
        names = self.cluster.pids()
        got = [(c - self.cpu0.get(p, (w, 0.0))[1], names.get(p, f"pid {p} (ended)")[:90]) for p, (w, c) in self.cpu.items()]
        return sorted(got, reverse=True)[:n]

    def cluster_cpu(self) -> tuple[float, float]:
        """(CPU seconds of the Ray workers, of Ray's services) since the start."""
        self.cpu.update({p: (w, max(c, self.cpu.get(p, (w, 0.0))[1])) for p, (w, c) in self._cluster_cpu().items()})
        out = [0.0, 0.0]
        for p, (w, c) in self.cpu.items():
            out[0 if w else 1] += c - self.cpu0.get(p, (w, 0.0))[1]
        return out[0], out[1]

    def sample(self) -> None:
        try:
            out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if f"pid={self.pid}," not in line or i + 1 >= len(lines):
                continue
            key = " ".join(line.split()[3:5])  # local and peer address (state, Recv-Q, Send-Q first)
            if self.skip and key.split()[-1].endswith(self.skip):
                continue
            m = re.search(r"bytes_sent:(\d+)", lines[i + 1])
            if m:
                self.sent[key] = max(self.sent.get(key, 0), int(m.group(1)))

    def total(self) -> int:
        return sum(self.sent.values())


@dataclass
class Run:
    nodes: int
    images: int = 0
    faces: int = 0
    wall: float = 0.0
    driver_cpu: float = 0.0
    worker_cpu: float = 0.0
    service_cpu: float = 0.0
    sent_per_file: float = 0.0
    sent_besides_path: float = 0.0
    tcp_sent: int = 0
    crop_bytes: int = 0
    run_cpu: float = 0.0  # the driver's CPU from the start of the run (imports, models, Ray connection left out)
    end_cpu: float = 0.0  # ... of it after the images (re-propose check, regroup, text check, re-route)
    waiting: float = 0.0
    recording: float = 0.0
    storing: float = 0.0
    finishing: float = 0.0
    load: tuple = ()
    top: list = field(default_factory=list)  # the Ray processes that took the most CPU
    busy: list = field(default_factory=list)  # per worker, the share of the run it had a task (Ray's timeline)


def _url(db: str, tag: str, temp: Path) -> str:
    if not db:
        return f"sqlite:///{temp / f'scale-{tag}.db'}"
    import sqlalchemy as sa

    admin = sa.create_engine(db, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "bench_scale_{tag}" WITH (FORCE)'))
        c.execute(sa.text(f'CREATE DATABASE "bench_scale_{tag}"'))
    admin.dispose()
    return db.rsplit("/", 1)[0] + f"/bench_scale_{tag}"


def drive(cluster: Cluster, folder: Path, url: str, logs: Path) -> Run:
    run = Run(cluster.nodes)
    load0 = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "labeler", "autolabel", str(folder), "--ray", cluster.address, "--db", url, "-q"]
    out_path, err_path = logs / f"driver-{cluster.nodes}.out", logs / f"driver-{cluster.nodes}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t = time.perf_counter()
        from sqlalchemy.engine import make_url

        sampler = Sampler(0, cluster, make_url(url).port or 0 if not url.startswith("sqlite") else 0)
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=cluster.env)
        sampler.pid = p.pid
        sampler.start()
        _, status, ru = os.wait4(p.pid, 0)
        run.wall = time.perf_counter() - t
        sampler.stop_flag.set()
        sampler.join()
    if status != 0:
        raise RuntimeError(f"the driver failed (status {status}): {err_path.read_text()[-2000:]}")
    run.load = (load0, os.getloadavg()[0])
    run.driver_cpu = ru.ru_utime + ru.ru_stime
    (run.worker_cpu, run.service_cpu), run.tcp_sent = sampler.cluster_cpu(), sampler.total()
    run.top = sampler.top()
    text = out_path.read_text()
    run.images = int(re.search(r"images detected:\s+(\d+)", text).group(1))
    run.faces = int(re.search(r"faces:\s+(\d+)", text).group(1))
    m = re.search(r"sent (\d+) B per file, (-?\d+) B besides the path", text)
    run.sent_per_file, run.sent_besides_path = (float(m.group(1)), float(m.group(2))) if m else (float("nan"),) * 2
    m = re.search(r"driver: CPU ([\d.]+) s \(([\d.]+) s at the end\); waiting ([\d.]+) s, recording files ([\d.]+) s, "
                  r"storing faces ([\d.]+) s, end of run ([\d.]+) s", text)
    run.run_cpu, run.end_cpu, run.waiting, run.recording, run.storing, run.finishing = (float(x) for x in m.groups())
    run.crop_bytes = _crop_bytes(url)
    return run


def busy(cluster: Cluster, temp: Path) -> list[float]:
    """How busy each Ray worker was with labeler's tasks, from Ray's task timeline: the sum of its
    tasks' durations over the span from the first task's start to the last one's end (the rest:
    waiting for work, starting up, the tail). Under CPU contention tasks run slower but a worker
    that always has a task stays busy, so this says whether the driver kept the workers fed."""
    import json

    out = temp / f"timeline-{cluster.nodes}.json"
    code = "import ray; ray.init(address=%r, log_to_driver=False); ray.timeline(filename=%r)" % (cluster.address, str(out))
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, env=cluster.env, cwd=cluster.temp)
    try:
        events = [e for e in json.loads(out.read_text()) if e.get("cat", "").startswith("task::") and e.get("ph") == "X"]
    except (OSError, ValueError):
        return []
    if not events:
        return []
    t0, t1 = min(e["ts"] for e in events), max(e["ts"] + e["dur"] for e in events)
    per: dict[str, float] = {}
    for e in events:
        per[e["tid"]] = per.get(e["tid"], 0.0) + e["dur"]
    return sorted((v / (t1 - t0) for v in per.values()), reverse=True)


def _crop_bytes(url: str) -> int:
    from sqlalchemy import func, select

    from labeler.store import Face, Store

    s = Store(url)
    with s.session() as x:
        n = x.scalar(select(func.sum(func.length(Face.crop)))) or 0
    s.engine.dispose()
    return int(n)


# ---------------------------------------------------------------- report and model
def report(runs: list[Run], files: int, set_bytes: int, args) -> None:
    base = runs[0]
    print(f"\n{'nodes':>5} {'images':>6} {'wall s':>7} {'img/s':>6} {'speed-up':>8} {'driver CPU':>10} {'driver share':>12} "
          f"{'Ray services':>12} {'workers CPU':>11} {'B/file sent':>11} {'besides path':>12} {'TCP B/image':>11} {'load':>11}  workers busy")
    for r in runs:
        rate = r.images / r.wall
        print(f"{r.nodes:5d} {r.images:6d} {r.wall:7.1f} {rate:6.2f} {rate / (base.images / base.wall):7.2f}x "
              f"{r.driver_cpu:9.1f}s {r.driver_cpu / r.wall:11.1%} {r.service_cpu / r.wall:11.1%} {r.worker_cpu:10.1f}s "
              f"{r.sent_per_file:11.0f} {r.sent_besides_path:12.0f} {r.tcp_sent / max(1, r.images):11.0f} "
              f"{r.load[0]:5.2f}>{r.load[1]:5.2f}  {' '.join(f'{b:.0%}' for b in r.busy) or '?'}")
    last = runs[-1]
    # per image: worker CPU from all runs together (the steadiest), the driver's from the largest cluster
    t_w = sum(r.worker_cpu for r in runs) / sum(r.images for r in runs)
    # the driver per image while images flow; its start (imports, models, connecting to Ray) and the end of
    # the run (over the whole database) are costs per run, not per second
    t_d = (last.run_cpu - last.end_cpu) / last.images
    t_db = (last.recording + last.storing) / last.images
    t_fin = last.finishing / last.images
    per_file = set_bytes / files
    result = last.crop_bytes / last.images
    print(f"\ndriver start (imports, models, connecting to Ray): {last.driver_cpu - last.run_cpu:.1f} s CPU, once per driver")
    print(f"per image (measured): worker CPU {t_w * 1e3:.0f} ms; driver CPU {t_d * 1e3:.2f} ms while images flow "
          f"(its database writes took {t_db * 1e3:.2f} ms of wall time: files {last.recording / last.images * 1e3:.2f}, faces "
          f"{last.storing / last.images * 1e3:.2f}), end of run {last.end_cpu / last.images * 1e3:.2f} ms CPU "
          f"({t_fin * 1e3:.2f} ms wall); read {per_file / 1e3:.0f} kB; "
          f"crops back {result / 1e3:.1f} kB ({last.faces / last.images:.2f} faces); sent {last.sent_besides_path:.0f} B "
          "besides the path")
    fs_rate = min(args.fs_mbps * 1e6 / per_file, args.fs_rps)
    limits = {"driver CPU (one core)": 1 / t_d, "database writes (one writer)": 1 / t_db if t_db else float("inf"),
              "file system": fs_rate}
    print(f"\nmodel: nodes of one CPU each, as here; a worker CPU labels {1 / t_w:.2f} images/s")
    print(f"  capacities (images/s): " + "; ".join(f"{k} {v:,.0f} (saturated at {v * t_w:,.0f} nodes)"
                                                 for k, v in limits.items()))
    for n in (10, 100, 1000):
        demand = n / t_w
        first = min(limits, key=limits.get)
        over = [k for k, v in limits.items() if demand > v]
        print(f"  {n:5d} nodes: demand {demand:8,.0f} images/s; driver {demand * t_d:6.2f} CPUs, writer busy "
              f"{demand * t_db:6.2f} of its time, file system {demand * per_file / 1e6:8,.0f} MB/s "
              f"({demand:,.0f} reads/s), crops to the driver {demand * result / 1e6:6.1f} MB/s; "
              f"saturated: {', '.join(over) if over else 'nothing'}" + (f" (first: {first})" if over else ""))
    print(f"  end of run (re-propose check, regroup, text check, re-route over the whole database): {t_fin * 1e3:.1f} ms per "
          f"image stored, so about {t_fin * 5e6 / 60:,.0f} min at 5 million images if it stays linear, once per driver run")
    at100 = 100 / t_w
    first = min(limits, key=limits.get)
    print(f"  first bottleneck at 100 nodes: {first if at100 > limits[first] else 'none'} (it saturates at "
          f"{limits[first] * t_w:,.0f} nodes); then: {REMEDY[first]}")
    two = runs[1] if len(runs) > 1 and runs[1].nodes == 2 else None
    if two is not None:
        up = (two.images / two.wall) / (base.images / base.wall)
        print(f"\ncriteria (issue 37), measured on {os.cpu_count()} cores, load {two.load[0]:.2f} -> {two.load[1]:.2f}:")
        print(f"  2 nodes / 1 node images/s: {up:.2f}x (wanted >= 1.8x) {'met' if up >= 1.8 else 'NOT met'}")
        share = max(r.driver_cpu / r.wall for r in runs)
        print(f"  driver CPU share: {share:.1%} at most (wanted < 25%) {'met' if share < 0.25 else 'NOT met'}")
        besides = max(r.sent_besides_path for r in runs)
        print(f"  bytes to the tasks per image besides the path: {besides:.0f} (wanted < 1024) {'met' if besides < 1024 else 'NOT met'}")
        print(f"  on this machine the CPUs are the limit: {two.nodes} one-CPU nodes, the driver and Ray's services share "
              f"{os.cpu_count()} cores (services {two.service_cpu / two.wall:.1%} of a core)")


#: what to do when one of the model's limits is reached first
REMEDY = {
    "driver CPU (one core)": "several drivers, one per part of the folder (`autolabel --part K/N`), against one PostgreSQL "
                             "database; each adds a core of listing, recording and routing, until the database saturates",
    "database writes (one writer)": "PostgreSQL on a machine of its own (not SQLite), several drivers writing at once "
                                    "(--part), larger batches (`[model] batch_images`)",
    "file system": "an object store read by many clients (a URI root), the files spread over prefixes or servers; the "
                   "listing split across drivers (--part)",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--nodes", default=None, help="node counts, e.g. 1,2 (default: 1,2, and 4 with 4 cores or more)")
    ap.add_argument("--db", default="", help="a PostgreSQL server's URL (its maintenance database); default SQLite files")
    ap.add_argument("--fs-mbps", type=float, default=1000.0, help="file system bandwidth assumed by the model, MB/s")
    ap.add_argument("--fs-rps", type=float, default=5500.0, help="file system reads per second assumed by the model")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    nodes = [int(x) for x in args.nodes.split(",")] if args.nodes else ([1, 2, 4] if cores >= 4 else [1, 2])
    temp = Path(tempfile.mkdtemp(prefix="bench-scale-", dir="/tmp"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    runs, cluster = [], None
    try:
        info = build_set(temp / "set", args.images)
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')}; {cores} cores; load {os.getloadavg()}; "
              f"set: {info['files']} files, {info['bytes'] / 1e6:.1f} MB (web_pool photos {info['web_pool']}, "
              f"dev images {info['dev']}, FER2013 train crops {info['fer2013']}); database: {args.db or 'SQLite'}")
        for n in nodes:
            cluster = Cluster(n)
            cluster.start()
            runs.append(drive(cluster, temp / "set", _url(args.db, str(n), temp), temp))
            runs[-1].busy = busy(cluster, temp)
            cluster.stop()
            cluster = None
            r = runs[-1]
            print(f"  {n} node(s): {r.images} images in {r.wall:.1f} s, driver CPU {r.driver_cpu:.1f} s; Ray's processes by CPU: "
                  + "; ".join(f"{c:.1f} s {cmd.split(' --')[0]}" for c, cmd in r.top), flush=True)
        report(runs, info["files"], info["bytes"], args)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
