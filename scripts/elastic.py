#!/usr/bin/env python3
"""An elastic MiniCluster on one machine: 8 live Flux brokers, flux-metrics-api, an emulated HPA
and an emulated Flux Operator, driven by a seeded job trace. Used by scripts/bench-elastic.sh.

  elastic.py run --bin PATH --out FILE.json [options]   one configuration (see --help)
  elastic.py table FILE.json...                          the Markdown table of some runs
  elastic.py trace [--seed N] [--trace cores|exclusive]  print the job trace

How the pieces are emulated:
- The instance is `flux start --test-size=8 --test-hosts=fake[0-7] --test-exit-mode=leader`
  with a [bootstrap] config (TCP on 127.0.0.1, one port per rank) and resources given by
  configuration (4 cores per node, as the Flux Operator gives R), so that a broker can leave
  and join again like a MiniCluster's pod: a rank whose pod is removed is really offline.
- A pod removed by the operator is its broker getting SIGTERM (what Kubernetes sends when it
  deletes a pod); a job with a task on it fails ("lost"). A pod added is a new `flux broker`
  with that rank's hostname, started some seconds after the decision (--start-delay); it joins
  the instance again. Rank 0 is never removed (minReplicas 1).
- The HPA reads `minicluster_desired_size` from the server's external metrics API over HTTPS
  every --sync seconds, as `target: AverageValue 1` does: recommendation = the value, between 1
  and 8. Scale-up is immediate (stabilization 0, no rate policy); scale-down goes to the highest
  recommendation of the last --window seconds (scaleDown.stabilizationWindowSeconds). Its
  window starts full of the initial size, as an HPA that has watched a busy cluster.
- The operator applies a shrink --operator-delay seconds after the HPA decided it (the patch,
  the pod deletion, the broker's exit within the pod's termination grace); a pod being deleted
  cannot be kept, a pod wanted again after that is started after it is gone.
"""

import argparse
import json
import math
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SIZE = 8
CORES = 4
HOSTS = f"fake[0-{SIZE - 1}]"
EXTERNAL = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/"


# ---------------------------------------------------------------------------------------------
# The trace


TRACES = ("cores", "exclusive")


def trace(seed, kind="cores"):
    """The seeded job trace: (name, submit second, nodes or None, cores, seconds).

    - a burst at 0 needing all nodes: eight 1-node jobs and two 2-node jobs (12 nodes' worth);
    - a trickle needing two or three nodes, each job 20-60 s long:
      `cores` (the default): from 20 s to 800 s, a job every 4-10 s asking for 1, 2 or 3 cores
      (`flux submit -n1 -cC`), about 11 cores busy at a time; flux-core's scheduler puts each
      on the node with the most free cores (worst-fit), so they spread over every idle node;
      `exclusive`: from 20 s to 380 s, a job every 6-24 s, two in three asking for a whole node
      and one in three for two cores; the whole-node jobs go to the lowest idle node, so they
      stay on low ranks;
    - a smaller burst at 240 s: four 1-node jobs and one 2-node job (6 nodes' worth), 30-50 s.
    """
    if kind not in TRACES:
        raise SystemExit(f"elastic.py: no trace {kind!r} (one of {', '.join(TRACES)})")
    rng = random.Random(seed)
    jobs = []
    for _ in range(8):
        jobs.append((0.0, 1, CORES, rng.uniform(40, 70)))
    for _ in range(2):
        jobs.append((0.0, 2, CORES, rng.uniform(30, 50)))
    t = 20.0
    while True:
        if kind == "cores":
            t += rng.uniform(4, 10)
            if t > 800:
                break
            jobs.append((t, None, rng.choice((1, 2, 3)), rng.uniform(20, 60)))
            continue
        t += rng.uniform(6, 24)
        if t > 380:
            break
        if rng.random() < 2 / 3:
            jobs.append((t, 1, CORES, rng.uniform(20, 60)))
        else:
            jobs.append((t, None, 2, rng.uniform(20, 60)))
    for _ in range(4):
        jobs.append((240.0, 1, CORES, rng.uniform(30, 50)))
    jobs.append((240.0, 2, CORES, rng.uniform(30, 50)))
    jobs.sort(key=lambda j: j[0])
    return [(f"t{i:03d}", t, n, c, round(s, 1)) for i, (t, n, c, s) in enumerate(jobs)]


def submit_args(nodes, cores, secs):
    if nodes is None:
        return ["-n1", f"-c{cores}", "sleep", str(secs)]
    return [f"-N{nodes}", "--exclusive", "sleep", str(secs)]


# ---------------------------------------------------------------------------------------------
# Helpers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_quantity(text):
    text = text.strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    suffixes = {"k": 1e3, "M": 1e6, "G": 1e9}
    if text[-1:] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)


class Log:
    """Timestamped lines (seconds since the trace started) to a file and, with -v, stderr."""

    def __init__(self, path, verbose):
        self.file = open(path, "w", buffering=1)
        self.verbose = verbose
        self.t0 = time.time()
        self.lock = threading.Lock()

    def __call__(self, msg):
        line = f"{time.time() - self.t0:7.1f} {msg}"
        with self.lock:
            self.file.write(line + "\n")
            if self.verbose:
                print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The instance and its pods


class Instance:
    """`flux start --test-size=8` whose brokers bootstrap from a config, so that they can leave
    and join again."""

    def __init__(self, work, log):
        self.work = work
        self.log = log
        self.conf = os.path.join(work, "conf")
        os.makedirs(self.conf)
        cert = os.path.join(self.conf, "curve.cert")
        subprocess.run(["flux", "keygen", cert], check=True, capture_output=True)
        with open(os.path.join(self.conf, "instance.toml"), "w") as f:
            f.write(f'[bootstrap]\ncurve_cert = "{cert}"\n')
            for rank in range(SIZE):
                port = free_port()
                f.write(
                    f'[[bootstrap.hosts]]\nhost = "fake{rank}"\n'
                    f'bind = "tcp://127.0.0.1:{port}"\nconnect = "tcp://127.0.0.1:{port}"\n'
                )
            f.write(
                "[resource]\nnoverify = true\n"
                f'[[resource.config]]\nhosts = "{HOSTS}"\ncores = "0-{CORES - 1}"\n'
            )
        self.stop_file = os.path.join(work, "stop")
        uri_file = os.path.join(work, "uri")
        program = f'echo "$FLUX_URI" > {uri_file}; while [ ! -e {self.stop_file} ]; do sleep 1; done'
        env = dict(os.environ)
        env.pop("FLUX_URI", None)
        self.proc = subprocess.Popen(
            ["flux", "start", f"--test-size={SIZE}", f"--test-hosts={HOSTS}",
             "--test-exit-mode=leader", f"--config-path={self.conf}", "sh", "-c", program],
            cwd=work, env=env, stdout=open(os.path.join(work, "instance.log"), "w"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.uri_file = uri_file

    def wait_up(self):
        uri_file, work = self.uri_file, self.work
        deadline = time.time() + 120
        while not os.path.exists(uri_file) or not open(uri_file).read().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"elastic.py: the instance did not start (see {work}/instance.log)")
            time.sleep(0.2)
        self.uri = open(uri_file).read().strip()
        self.env = dict(os.environ, FLUX_URI=self.uri)
        self.rundir = self.flux("getattr", "rundir").strip()
        self.pids = {
            r: int(self.flux_at(r, "getattr", "broker.pid")) for r in range(1, SIZE)
        }
        self.flux("resource", "status")  # answers once the resource module is up

    def flux(self, *args, check=True):
        out = subprocess.run(["flux", *args], env=self.env, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"flux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def flux_at(self, rank, *args):
        env = dict(os.environ, FLUX_URI=f"local://{self.rundir}/local-{rank}")
        return subprocess.run(["flux", *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def start_broker(self, rank):
        env = dict(os.environ)
        env.pop("FLUX_URI", None)
        out = open(os.path.join(self.work, f"broker-{rank}.log"), "a")
        return subprocess.Popen(
            ["flux", "broker", f"--config-path={self.conf}", f"--setattr=rundir={self.rundir}",
             f"--setattr=hostname=fake{rank}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self, wait=90):
        """Stops the instance (its initial program ends); kills what is left after `wait`."""
        if self.proc.poll() is not None:
            return
        open(self.stop_file, "w").close()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


class Operator:
    """The Flux Operator's part: pods 1-7 follow the MiniCluster's size, a shrink applied
    `delay` seconds after its decision, a new pod started `start_delay` after it is wanted."""

    def __init__(self, inst, log, delay, start_delay):
        self.inst, self.log = inst, log
        self.delay, self.start_delay = delay, start_delay
        self.lock = threading.Lock()
        # rank -> {"state": running|terminating|absent, "pid", "proc", "remove_at", "start_at"}
        self.pods = {
            r: {"state": "running", "pid": pid, "proc": None, "remove_at": None, "start_at": None}
            for r, pid in inst.pids.items()
        }
        self.intervals = {r: [[0.0, None]] for r in range(SIZE)}  # pod lifetimes, trace seconds
        self.size = SIZE
        self.t0 = None
        self.removals = []  # (decided, applied, ranks)

    def now(self):
        return time.time() - self.t0

    def set_size(self, size):
        """The HPA patched the MiniCluster's size."""
        with self.lock:
            now = self.now()
            self.size = size
            for r, pod in self.pods.items():
                if r >= size and pod["state"] == "running" and pod["remove_at"] is None:
                    pod["remove_at"] = now + self.delay
                    pod["decided"] = now
                if r >= size and pod["state"] == "absent":
                    pod["start_at"] = None  # not created yet: nothing to start
                if r < size and pod["state"] == "absent" and pod["start_at"] is None:
                    pod["start_at"] = now + self.start_delay

    def tick(self):
        with self.lock:
            now = self.now()
            due = [r for r, p in self.pods.items()
                   if p["remove_at"] is not None and p["remove_at"] <= now]
            for r in due:
                pod = self.pods[r]
                pod["state"], pod["remove_at"] = "terminating", None
                self.removals.append((pod.get("decided"), now, r))
                threading.Thread(target=self.terminate, args=(r, pod["pid"], pod["proc"]),
                                 daemon=True).start()
            for r, pod in self.pods.items():
                if pod["state"] == "absent" and pod["start_at"] is not None and pod["start_at"] <= now:
                    if r < self.size:
                        proc = self.inst.start_broker(r)
                        pod.update(state="running", pid=proc.pid, proc=proc, start_at=None)
                        self.intervals[r].append([now, None])
                        self.log(f"operator: pod {r} started (broker pid {proc.pid})")
                    else:
                        pod["start_at"] = None
            if due:
                self.log(f"operator: removing pods {sorted(due)} (SIGTERM to their brokers)")

    def terminate(self, rank, pid, proc):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.time() + 30
        while (proc.poll() is None) if proc else alive(pid):
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.time() + 30
            time.sleep(0.1)
        with self.lock:
            now = self.now()
            self.intervals[rank][-1][1] = now
            pod = self.pods[rank]
            pod.update(state="absent", pid=None, proc=None)
            if rank < self.size:
                pod["start_at"] = now + self.start_delay  # wanted again meanwhile
        self.log(f"operator: pod {rank} gone")

    def pods_now(self):
        with self.lock:
            return 1 + sum(1 for p in self.pods.values() if p["state"] != "absent")

    def kill_all(self):
        with self.lock:
            for pod in self.pods.values():
                if pod["proc"] is not None and pod["proc"].poll() is None:
                    pod["proc"].terminate()
            for pod in self.pods.values():
                if pod["proc"] is not None:
                    try:
                        pod["proc"].wait(30)
                    except subprocess.TimeoutExpired:
                        pod["proc"].kill()


# ---------------------------------------------------------------------------------------------
# The server and the HPA


class Server:
    def __init__(self, args, inst, work):
        self.port = free_port()
        cmd = [args.bin, "start", "--quiet", "--host", "127.0.0.1", "--port", str(self.port),
               "--flux-uri", f"local://{inst.rundir}/local-0"]
        if args.drain_before_shrink:
            cmd += ["--drain-before-shrink", "--shrink-delay", f"{args.shrink_delay:g}s",
                    "--undrain-grace", f"{args.undrain_grace:g}s"]
        self.cmd = cmd
        self.log_path = os.path.join(work, "server.log")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)

    def wait_up(self):
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        deadline = time.time() + 60
        while True:
            try:
                self.get("/readyz")
                break
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"elastic.py: the server did not start (see {self.log_path})")
                time.sleep(0.2)

    def get(self, path):
        url = f"https://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, context=self.ctx, timeout=5) as r:
            return r.read().decode()

    def external(self, metric):
        v = json.loads(self.get(EXTERNAL + metric))
        return parse_quantity(v["items"][0]["value"])

    def metrics(self):
        return json.loads(self.get("/api/v1/metrics"))["metrics"]

    def stop(self):
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Hpa:
    """The HPA's size decision (see the module's help)."""

    def __init__(self, window, size):
        self.window = window
        self.size = size
        self.recs = [(0.0, size)]  # as if the window so far had been all at the initial size
        self.events = []

    def step(self, now, value):
        rec = max(1, min(SIZE, math.ceil(value - 1e-9)))
        self.recs.append((now, rec))
        self.recs = [(t, r) for t, r in self.recs if t >= now - self.window]
        down = max(r for _, r in self.recs)
        new = rec if rec > self.size else min(self.size, down)
        if new != self.size:
            self.events.append((now, self.size, new))
            self.size = new
            return new
        return None


# ---------------------------------------------------------------------------------------------
# One run


def run(args):
    """One configuration; whatever it started is stopped however it ends (SIGTERM included)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    undo = []
    try:
        measure(args, undo)
    finally:
        for fn in reversed(undo):
            try:
                fn()
            except Exception as e:
                print(f"elastic.py: cleaning up: {e}", file=sys.stderr)


def measure(args, undo):
    work = tempfile.mkdtemp(prefix="elastic-")
    log = Log(args.out.replace(".json", "") + ".log", args.verbose)
    log(f"work directory {work}")
    inst = Instance(work, log)
    undo.append(lambda: inst.stop(wait=20))
    inst.wait_up()
    log(f"instance up: {inst.uri}")
    operator = Operator(inst, log, args.operator_delay, args.start_delay)
    undo.append(operator.kill_all)
    server = Server(args, inst, work)
    undo.append(server.stop)
    server.wait_up()
    log(f"server up: {' '.join(server.cmd)}")
    hpa = Hpa(args.window, SIZE)
    jobs = trace(args.seed, args.trace)
    stop = threading.Event()
    undo.append(stop.set)
    timeline = []
    hpa_errors = [0]

    t0 = time.time()
    log.t0 = operator.t0 = t0

    def every(period, fn):
        def loop():
            k = 0
            while not stop.is_set():
                try:
                    fn()
                except Exception as e:  # a failed look is logged and tried again
                    log(f"{fn.__name__}: {e}")
                k += 1
                delay = t0 + k * period - time.time()
                if delay > 0:
                    stop.wait(delay)
        th = threading.Thread(target=loop, daemon=True)
        th.start()
        return th

    def hpa_sync():
        now = time.time() - t0
        try:
            value = server.external("minicluster_desired_size")
        except Exception as e:
            hpa_errors[0] += 1
            log(f"hpa: no value ({e}); size left alone")
            return
        new = hpa.step(now, value)
        if new is not None:
            log(f"hpa: desired {value:g} -> size {hpa.events[-1][1]} -> {new}")
            operator.set_size(new)

    def sample():
        now = time.time() - t0
        m = {}
        try:
            m = server.metrics()
        except Exception:
            pass
        timeline.append({
            "t": round(now, 1), "pods": operator.pods_now(), "size": hpa.size,
            **{k: m.get(k) for k in ("minicluster_desired_size", "minicluster_min_size",
                                     "minicluster_safe_size", "node_shrink_drained_count",
                                     "node_allocated_count", "job_pending_nodes_count")},
        })

    def submitter():
        for name, t, nodes, cores, secs in jobs:
            delay = t0 + t - time.time()
            if delay > 0 and stop.wait(delay):
                return
            cmd = ["submit", f"--job-name={name}", *submit_args(nodes, cores, secs)]
            threading.Thread(target=lambda c=cmd: inst.flux(*c), daemon=True).start()

    threads = [
        every(args.sync, hpa_sync),
        every(0.2, operator.tick),
        every(1.0, sample),
        threading.Thread(target=submitter, daemon=True),
    ]
    threads[-1].start()
    if args.horizon is None:
        # The last submission, its job (at most 60 s), then drains, the HPA window and the shrink.
        args.horizon = jobs[-1][1] + 280
    while time.time() - t0 < args.horizon:
        time.sleep(1)
    stop.set()
    for th in threads:
        th.join(10)
    horizon = time.time() - t0

    listed = json.loads(inst.flux("jobs", "-a", "--json"))["jobs"]
    eventlog = inst.flux("kvs", "eventlog", "get", "resource.eventlog", check=False)
    code = server.stop()
    drains_left = inst.flux("resource", "drain", "-no", "{ranks}\t{reason}", check=False)
    log(f"server exited {code}; drains after it stopped: {drains_left.strip() or 'none'}")
    operator.kill_all()
    inst.stop()

    result = summarize(args, jobs, listed, operator, hpa, horizon, t0, eventlog)
    result.update(
        server_cmd=" ".join(server.cmd[1:]).replace(str(server.port), "PORT"),
        server_exit=code, hpa_errors=hpa_errors[0],
        drains_left_after_stop=[l for l in drains_left.splitlines() if l.strip()],
        timeline=timeline,
    )
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(json.dumps({k: v for k, v in result.items() if k not in ("timeline",)}))
    print(row(result))


def summarize(args, trace_jobs, listed, operator, hpa, horizon, t0, eventlog):
    names = {j[0] for j in trace_jobs}
    jobs = [j for j in listed if j.get("name") in names]
    started = [j for j in jobs if j.get("t_run")]
    lost = [j for j in started if j.get("state") == "INACTIVE" and j.get("result") != "COMPLETED"]
    unfinished = [j for j in jobs if j.get("state") != "INACTIVE"]
    waits = [j["t_run"] - j["t_submit"] for j in started]
    # The node-seconds the jobs used: their cores over the cores of a node, so that two jobs
    # sharing a node count it once.
    used = 0.0
    for j in started:
        end = j.get("t_cleanup") or (t0 + horizon)
        nodes = j.get("ncores", CORES * j.get("nnodes", 1)) / CORES
        used += nodes * (min(end, t0 + horizon) - j["t_run"])
    provisioned = 0.0
    for spans in operator.intervals.values():
        for a, b in spans:
            provisioned += min(b if b is not None else horizon, horizon) - max(a, 0.0)
    ours = {"drain": 0, "undrain": 0}
    for line in eventlog.splitlines():
        if "flux-metrics-api" not in line:
            continue
        if " undrain " in line:
            ours["undrain"] += 1
        elif " drain " in line:
            ours["drain"] += 1
    ups = sum(1 for _, a, b in hpa.events if b > a)
    return {
        "flag": args.drain_before_shrink,
        "operator_delay": args.operator_delay,
        "start_delay": args.start_delay,
        "shrink_delay": args.shrink_delay if args.drain_before_shrink else None,
        "undrain_grace": args.undrain_grace if args.drain_before_shrink else None,
        "window": args.window,
        "sync": args.sync,
        "seed": args.seed,
        "trace": args.trace,
        "horizon": round(horizon, 1),
        "trace_jobs": len(trace_jobs),
        "jobs_seen": len(jobs),
        "lost": len(lost),
        "lost_jobs": [{"name": j["name"], "ranks": j.get("ranks"),
                       "note": (j.get("exception") or {}).get("note")} for j in lost],
        "unfinished": len(unfinished),
        "never_started": len(jobs) - len(started),
        "mean_wait": round(sum(waits) / len(waits), 1) if waits else None,
        "max_wait": round(max(waits), 1) if waits else None,
        "provisioned": round(provisioned),
        "used": round(used),
        "scale_ups": ups,
        "scale_downs": len(hpa.events) - ups,
        "hpa_events": [(round(t, 1), a, b) for t, a, b in hpa.events],
        "job_list": [{"name": j["name"], "nnodes": j.get("nnodes"), "ranks": j.get("ranks"),
                      "submit": round(j["t_submit"] - t0, 1),
                      "wait": round(j["t_run"] - j["t_submit"], 1) if j.get("t_run") else None,
                      "result": j.get("result")} for j in sorted(jobs, key=lambda j: j["name"])],
        "removals": [(round(d, 1) if d is not None else None, round(a, 1), r)
                     for d, a, r in operator.removals],
        "our_drain_events": ours,
    }


# ---------------------------------------------------------------------------------------------
# Tables


def row(r):
    flag = (f"on (--shrink-delay {r['shrink_delay']:g}s, --undrain-grace {r['undrain_grace']:g}s)"
            if r["flag"] else "off")
    util = f"{100 * r['used'] / r['provisioned']:.0f}%" if r["provisioned"] else "-"
    return (f"| {r.get('trace', 'exclusive')} | {flag} | {r['operator_delay']:g} s | {r['lost']} | {r['provisioned']} | "
            f"{r['used']} ({util}) | {r['mean_wait']} s (max {r['max_wait']}) | "
            f"{r['scale_ups']} up, {r['scale_downs']} down | "
            f"{r['our_drain_events']['drain']}/{r['our_drain_events']['undrain']} | "
            f"{r['unfinished']} |")


HEADER = ("| trace | --drain-before-shrink | operator delay | jobs lost | node-seconds provisioned | "
          "node-seconds used | mean wait | scale events | drains/undrains | unfinished |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def table(paths):
    print(HEADER)
    for p in paths:
        with open(p) as f:
            print(row(json.load(f)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one configuration")
    r.add_argument("--bin", required=True, help="the flux-metrics-api binary")
    r.add_argument("--out", required=True, help="result file (JSON); its .log beside it")
    r.add_argument("--drain-before-shrink", action="store_true")
    r.add_argument("--shrink-delay", type=float, default=60)
    r.add_argument("--undrain-grace", type=float, default=30)
    r.add_argument("--window", type=float, default=60, help="HPA scale-down stabilization (s)")
    r.add_argument("--sync", type=float, default=3, help="HPA sync period (s)")
    r.add_argument("--operator-delay", type=float, default=10,
                   help="seconds from the HPA's shrink to the brokers' exit")
    r.add_argument("--start-delay", type=float, default=5,
                   help="seconds from the HPA's growth to the new brokers' start")
    r.add_argument("--horizon", type=float,
                   help="seconds measured (default: the last submission + 280 s: about 660 s for "
                   "the exclusive trace, about 1080 s for cores)")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--trace", choices=TRACES, default="cores", help="which job trace")
    r.add_argument("-v", "--verbose", action="store_true")
    t = sub.add_parser("table", help="Markdown table of result files")
    t.add_argument("files", nargs="+")
    tr = sub.add_parser("trace", help="print the job trace")
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--trace", choices=TRACES, default="cores")
    args = p.parse_args()
    if args.cmd == "run":
        run(args)
    elif args.cmd == "table":
        table(args.files)
    else:
        total = 0.0
        jobs = trace(args.seed, args.trace)
        for name, t, nodes, cores, secs in jobs:
            total += (nodes if nodes else cores / CORES) * secs
            print(f"{name} {t:6.1f} s  flux submit {' '.join(submit_args(nodes, cores, secs))}")
        print(f"# {len(jobs)} jobs, {total:.0f} node-seconds of work")


if __name__ == "__main__":
    main()
