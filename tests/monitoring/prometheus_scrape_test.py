"""A real Prometheus scrapes real tuner_server, scheduler_server and worker_server processes
while an experiment runs on the worker (one trial process crashed on purpose, so a retry is
counted), and holds the monitoring files to what it sees:

- every PromQL query of k8s/monitoring/autocompress-dashboard.json (template variables
  substituted) returns a series with a value, through Prometheus's HTTP API;
- the rules of k8s/monitoring/alert-rules.yaml (a PrometheusRule; the plain rules file is
  made from its spec) pass `promtool check rules`, Prometheus evaluates each without error,
  none fires in this healthy run, and each expression returns a series once its
  threshold comparison is made a `bool` one;
- the metric families the three /metrics endpoints export are exactly those of
  docs/metrics.md, with the types and label names it lists.

Only the GPU memory series cannot exist on a machine without a GPU: there its query and its
catalog row are checked for what can be (the query parses, the row is marked "GPU workers
only"), and the test says so.

usage: prometheus_scrape_test.py RUNFILES_ROOT
"""
import json
import math
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
TMP = tempfile.mkdtemp(prefix="prometheus-scrape-", dir=os.environ.get("TEST_TMPDIR"))
LOGS = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", TMP)
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
DASHBOARD = f"{ROOT}/k8s/monitoring/autocompress-dashboard.json"
RULES = f"{ROOT}/k8s/monitoring/alert-rules.yaml"
CATALOG = f"{ROOT}/docs/metrics.md"
# Scrape job names as the k8s manifests name them (alert-rules.yaml matches them).
JOBS = {"scheduler": "autocompress-scheduler", "tuner": "autocompress-tuner",
        "worker": "autocompress-worker"}
# Grafana's built-in variables, as wide as the whole run so every sample is in range.
BUILTINS = {"$__rate_interval": "5m", "$__interval": "15s", "$__range": "5m",
            "${datasource}": "prometheus", "$datasource": "prometheus"}
GPU_ONLY_METRICS = {"autocompress_worker_device_memory_bytes"}
START = time.monotonic()


class TestFailure(Exception):
    pass


def log(message):
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def wait_for(what, condition, timeout, interval=0.2):
    """Polls `condition` until it returns a true value; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (OSError, ValueError, KeyError) as error:
            last_error = error
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}"
                      + (f" (last error: {last_error})" if last_error else ""))


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


# ---- processes ---------------------------------------------------------------------------


class Processes:
    """Children in their own process groups (a worker's trial processes are in its group);
    stop() ends every group, politely first, and is safe to call twice."""

    def __init__(self):
        self.children = []

    def start(self, name, argv, ready_prefix=None, timeout=60):
        """Starts `argv`; with `ready_prefix`, waits for the stdout line starting with it and
        returns it. stderr goes to LOGS/<name>.log."""
        err = open(os.path.join(LOGS, f"{name}.log"), "w")
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                   start_new_session=True)
        self.children.append((name, process, err))
        if ready_prefix is None:
            return None
        lines = queue.Queue()

        def read():
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise TestFailure(f"{name} exited with {process.wait()} before '{ready_prefix}' "
                                  f"(see {name}.log)")
            if line.startswith(ready_prefix):
                return line.strip()
        raise TestFailure(f"{name} printed no '{ready_prefix}' line in {timeout}s")

    def pid(self, name):
        return next(p.pid for n, p, _ in self.children if n == name)

    def exited(self, name):
        return next(p.poll() for n, p, _ in self.children if n == name) is not None

    def stop(self):
        for _, process, _ in reversed(self.children):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        for name, process, err in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM; killing its process group")
            try:
                os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group, if any
            except ProcessLookupError:
                pass
            process.wait()
            err.close()
        self.children = []


def ready_ports(line):
    match = re.match(r"READY service=\S+ grpc_port=(\d+) metrics_port=(\d+)", line)
    if not match:
        raise TestFailure(f"unexpected READY line: {line}")
    return int(match.group(1)), int(match.group(2))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command may hold spaces and parentheses: the fields follow the last ')'.
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return found


# ---- the monitoring files ----------------------------------------------------------------


def rules_file_from_prometheus_rule(path):
    """The plain Prometheus rules file of a PrometheusRule: its spec, de-indented."""
    with open(path) as f:
        lines = f.read().splitlines()
    body = [l for l in lines if l.strip() and not l.startswith("#")]
    for key, value in (("apiVersion", "monitoring.coreos.com/v1"), ("kind", "PrometheusRule")):
        if f"{key}: {value}" not in body:
            raise TestFailure(f"{path}: expected a top-level '{key}: {value}'")
    if "spec:" not in lines:
        raise TestFailure(f"{path}: no top-level 'spec:' line")
    spec = lines[lines.index("spec:") + 1:]
    out = []
    for number, line in enumerate(spec, start=lines.index("spec:") + 2):
        if line.strip() and not line.startswith("  "):
            raise TestFailure(f"{path}:{number}: a top-level key after spec: ({line!r}); "
                              "keep spec last")
        out.append(line[2:])
    return "\n".join(out) + "\n"


def dashboard_queries(dashboard):
    """(panel title, expr) of every target, nested row panels included."""
    found = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    found.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard.get("panels", []))
    return found


def check_dashboard_shape(dashboard, failures):
    if not 36 <= dashboard.get("schemaVersion", 0) <= 41:
        failures.append(f"dashboard: schemaVersion {dashboard.get('schemaVersion')}, want ~39")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        failures.append("dashboard: no 'datasource' template variable of Prometheus data sources")

    def walk(panels):
        for p in panels:
            if p.get("type") != "row" and p.get("datasource", {}).get("uid") != "${datasource}":
                failures.append(f"dashboard panel '{p.get('title')}': datasource is not "
                                "${datasource}")
            for t in p.get("targets", []):
                if t.get("datasource", {}).get("uid") != "${datasource}":
                    failures.append(f"dashboard panel '{p.get('title')}' target {t.get('refId')}:"
                                    " datasource is not ${datasource}")
            walk(p.get("panels", []))

    walk(dashboard.get("panels", []))


def substitute(expr, values):
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    return expr


def metric_names_in(expr):
    """Metric names an expression selects (plain names and __name__ regexes left out)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
    return set(re.findall(r"\b(autocompress_[a-z_]+|exposer_[a-z_]+)\b", without_ranges))


def parse_catalog(path):
    """{name: (type, frozenset(labels), row text)} from the catalog's table rows."""
    catalog = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) < 4 or not cells[0].startswith("`"):
                continue
            name = cells[0].strip("`")
            if name in catalog:
                raise TestFailure(f"{path}:{number}: {name} listed twice")
            labels = frozenset(re.findall(r"`([a-z_]+)`", cells[2]))
            catalog[name] = (cells[1], labels, line)
    return catalog


def parse_exposition(text):
    """{family: (type, set(label names))} of a /metrics text exposition."""
    types, labels = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
            labels.setdefault(name, set())
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        family = name
        if family not in types:
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[:-len(suffix)]
                if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
                    family = base
        if family not in types:
            raise TestFailure(f"sample {name} belongs to no # TYPE family")
        for label in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', line[len(name):]):
            if label not in ("le", "quantile"):
                labels[family].add(label)
    return {name: (types[name], labels[name]) for name in types}


# ---- Prometheus --------------------------------------------------------------------------


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = http_get(url)
        except urllib.error.HTTPError as error:
            body = error.read().decode()
        return json.loads(body)

    def query(self, expr):
        answer = self.api("query", query=expr)
        if answer.get("status") != "success":
            raise TestFailure(f"{answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]["result"]


def write_prometheus_config(targets, rules_path):
    lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
             "  evaluation_interval: 1s", "rule_files:", f"  - {rules_path}", "scrape_configs:"]
    for service, port in targets.items():
        lines += [f"  - job_name: {JOBS[service]}", "    static_configs:",
                  f"      - targets: ['127.0.0.1:{port}']"]
    path = os.path.join(TMP, "prometheus.yml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_prometheus(processes, config):
    for attempt in range(3):
        port = free_port()
        name = f"prometheus-{attempt}"
        processes.start(name, [PROMETHEUS, f"--config.file={config}",
                               f"--storage.tsdb.path={TMP}/prometheus-data",
                               f"--web.listen-address=127.0.0.1:{port}",
                               "--log.level=warn"])
        prometheus = Prometheus(port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not processes.exited(name):
            try:
                if "Ready" in http_get(f"{prometheus.base}/-/ready", timeout=2):
                    return prometheus
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        if not processes.exited(name):
            raise TestFailure(f"Prometheus on port {port} not ready in 30s (see {name}.log)")
        log(f"Prometheus exited at start (port {port} taken?); trying another port")
    raise TestFailure("Prometheus did not start (see prometheus-*.log)")


# ---- the scenario ------------------------------------------------------------------------


def run_experiment(scheduler_address, processes):
    """A small auto-compression experiment on the real worker (the baseline and three
    trials); one running trial process is killed, so its attempt is retried. Returns the
    experiment id."""
    from autocompress import AutoCompressionExperiment, AutoCompressionSearchSpaceGenerator

    g = AutoCompressionSearchSpaceGenerator()
    g.add_config("level", [{"sparsity": {"_type": "uniform", "_value": [0.3, 0.8]},
                            "op_types": ["default"]}])
    e = AutoCompressionExperiment(server=scheduler_address)
    e.config.experiment_name = "prometheus scrape test"
    e.config.trial_concurrency = 1
    e.config.max_trial_number = 3
    e.config.search_space = g.dumps()
    e.config.tuner.name = "tpe"
    e.config.tuner.class_args["optimize_mode"] = "maximize"
    e.config.model = f"{ROOT}/worker/testdata/fashion_model.pt"
    e.config.data = {"format": "idx", "train": f"{ROOT}/worker/testdata/fashion_train.tar",
                     "eval": f"{ROOT}/worker/testdata/fashion_test.tar",
                     "mean": [0.286], "std": [0.353], "batch_size": 32}
    e.config.training = {"optimizer": {"name": "sgd", "learning_rate": 0.02},
                         "finetune_epochs": 1}
    e.config.seed = 7
    experiment_id = e.start()
    log(f"experiment {experiment_id} created")

    # SIGKILL the worker's trial processes once per running attempt until one attempt is
    # seen retried (a kill can land between two trials, or on the spare process only).
    killed, retried = set(), False
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and e.status()["state"] == "EXPERIMENT_STATE_RUNNING":
        trials = e.trials()
        retried = retried or any(t.get("attempt", 1) > 1 for t in trials)
        running = [(t["id"], t.get("attempt", 1)) for t in trials
                   if t["state"] == "TRIAL_STATE_RUNNING"]
        if not retried and running and running[0] not in killed:
            killed.add(running[0])
            children = children_of(processes.pid("worker"))
            for child in children:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            log(f"killed the worker's trial processes {children} while {running[0][0]} "
                f"(attempt {running[0][1]}) ran")
        time.sleep(0.1)
    retried = retried or any(t.get("attempt", 1) > 1 for t in e.trials())
    status = e.status()
    if status["state"] != "EXPERIMENT_STATE_DONE":
        raise TestFailure(f"experiment ended {status['state']}, not DONE in time: {status}")
    if not retried:
        raise TestFailure("no trial attempt was retried: the killed trial process was not seen "
                          "as a crash")
    trials = e.trials()
    succeeded = [t for t in trials if t["state"] == "TRIAL_STATE_SUCCEEDED"]
    log(f"experiment DONE: {len(succeeded)} of {len(trials)} trials succeeded, best "
        f"{status.get('best_trial_id')}")
    return experiment_id, e


def make_rpc_traffic(worker_grpc_port, e_factory):
    """One NOT_FOUND from the scheduler (the RPC errors panel) and one health check on the
    worker (its only service)."""
    import grpc

    from autocompress import AutoCompressError
    try:
        e_factory().status()
        raise TestFailure("GetExperiment of an unknown id did not fail")
    except AutoCompressError as error:
        if error.code != grpc.StatusCode.NOT_FOUND:
            raise TestFailure(f"GetExperiment of an unknown id: {error.code}, want NOT_FOUND")
    with grpc.insecure_channel(f"127.0.0.1:{worker_grpc_port}") as channel:
        # grpc.health.v1.HealthCheckRequest{} is the empty message; SERVING is field 1 = 1.
        answer = channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
        if answer != b"\x08\x01":
            raise TestFailure(f"worker health check answered {answer!r}")


def main():
    for tool in (PROMETHEUS, PROMTOOL):
        if not os.access(tool, os.X_OK):
            raise TestFailure(f"{tool} is missing: install Debian's 'prometheus' package "
                              "(`./dev test` installs it with its TEST_PACKAGES)")
    failures = []
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    check_dashboard_shape(dashboard, failures)
    catalog = parse_catalog(CATALOG)
    if not catalog:
        raise TestFailure(f"{CATALOG}: no metric rows found")

    rules_path = os.path.join(TMP, "alert-rules.rules.yaml")
    with open(rules_path, "w") as f:
        f.write(rules_file_from_prometheus_rule(RULES))
    check = subprocess.run([PROMTOOL, "check", "rules", rules_path], capture_output=True,
                           text=True, timeout=60)
    log("promtool check rules: " + (check.stdout + check.stderr).strip().replace("\n", " | "))
    if check.returncode != 0:
        raise TestFailure(f"promtool check rules failed on the PrometheusRule's spec:\n"
                          f"{check.stdout}{check.stderr}")

    processes = Processes()
    signal.signal(signal.SIGTERM, lambda *_: (processes.stop(), sys.exit(1)))
    try:
        tuner_grpc, tuner_metrics = ready_ports(processes.start(
            "tuner", [f"{ROOT}/tuner_service/tuner_server", "--host=127.0.0.1", "--port=0",
                      "--metrics_port=0"], "READY "))
        scheduler_grpc, scheduler_metrics = ready_ports(processes.start(
            "scheduler", [f"{ROOT}/scheduler_service/scheduler_server", "--host=127.0.0.1",
                          "--port=0", "--metrics_port=0", f"--data_dir={TMP}/scheduler",
                          f"--tuner_address=127.0.0.1:{tuner_grpc}",
                          "--heartbeat_interval=500ms", "--sqlite_synchronous=normal"],
            "READY "))
        worker_grpc, worker_metrics = ready_ports(processes.start(
            "worker", [f"{ROOT}/worker/worker_server", "--host=127.0.0.1", "--port=0",
                       "--metrics_port=0", f"--scheduler=127.0.0.1:{scheduler_grpc}",
                       "--worker_id=scrape-worker", "--cpu_slots=1", "--threads_per_trial=1",
                       f"--work_dir={TMP}/worker"], "READY "))
        endpoints = {"scheduler": scheduler_metrics, "tuner": tuner_metrics,
                     "worker": worker_metrics}
        log(f"servers up: metrics ports {endpoints}")

        prometheus = start_prometheus(processes, write_prometheus_config(endpoints, rules_path))

        def targets_up():
            active = prometheus.api("targets")["data"]["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active)

        wait_for("all three scrape targets up", targets_up, timeout=30)
        log("Prometheus scrapes the three targets")

        from autocompress import AutoCompressionExperiment
        address = f"127.0.0.1:{scheduler_grpc}"
        make_rpc_traffic(worker_grpc, lambda: AutoCompressionExperiment(
            server=address, experiment_id="no-such-experiment"))
        experiment_id, experiment = run_experiment(address, processes)
        # Three more scrapes of every target, so that each series born in the run's last
        # moments has samples enough for rate() and the rules have seen the final values.
        scrapes = lambda: {r["metric"]["job"]: float(r["value"][1]) for r in
                           prometheus.query("count_over_time(up[10m])")}
        before = scrapes()
        wait_for("three more scrapes of every target",
                 lambda: all(n >= before.get(job, 0) + 3 for job, n in scrapes().items()),
                 timeout=30)

        gpu = prometheus.query('sum(autocompress_scheduler_slots{kind="gpu"})')
        has_gpu = bool(gpu) and float(gpu[0]["value"][1]) > 0
        if not has_gpu:
            log("no GPU offered here: GPU-only series (autocompress_worker_device_memory_bytes)"
                " are checked for syntax and catalog marking only")

        check_best_metric(prometheus, experiment, failures)
        check_dashboard_queries(prometheus, dashboard, experiment_id, has_gpu, failures)
        check_alert_rules(prometheus, failures)
        check_catalog(endpoints, catalog, has_gpu, failures)
    finally:
        processes.stop()

    if failures:
        print("\nFAILURES:\n  " + "\n  ".join(failures), flush=True)
        raise TestFailure(f"{len(failures)} check(s) failed")


def check_best_metric(prometheus, experiment, failures):
    """The best-metric gauge, as Prometheus has it, is the best trial's accuracy."""
    best_id = experiment.status()["best_trial_id"]
    best = next(t for t in experiment.trials() if t["id"] == best_id)
    result = prometheus.query(f'autocompress_scheduler_experiment_best_metric'
                              f'{{experiment="{experiment.id}",metric="accuracy"}}')
    if len(result) != 1 or not math.isclose(float(result[0]["value"][1]),
                                            best["metrics"]["accuracy"], rel_tol=1e-9):
        failures.append(f"best metric gauge {result} is not the best trial's accuracy "
                        f"{best['metrics']['accuracy']}")
    else:
        log(f"ok best metric gauge = accuracy of {best_id} ({best['metrics']['accuracy']})")


def check_dashboard_queries(prometheus, dashboard, experiment_id, has_gpu, failures):
    values = dict(BUILTINS)
    values["$experiment"] = re.escape(experiment_id)
    values["${experiment}"] = re.escape(experiment_id)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        definition = variable.get("definition", "")
        match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]+)\)", definition)
        if not match:
            failures.append(f"dashboard variable {variable['name']}: unexpected query "
                            f"{definition!r}")
            continue
        expr, label = match.groups()
        result = prometheus.query(f"count by ({label}) ({expr})")
        found = {r["metric"].get(label) for r in result}
        if variable["name"] == "experiment" and experiment_id not in found:
            failures.append(f"dashboard variable experiment: {definition} lacks {experiment_id}"
                            f" (has {sorted(found)})")
        log(f"variable ${variable['name']}: {definition} -> {sorted(found)}")
    queries = dashboard_queries(dashboard)
    if not queries:
        failures.append("dashboard: no queries")
    for title, raw in queries:
        expr = substitute(raw, values)
        if "$" in expr:
            failures.append(f"panel '{title}': unknown template variable in {raw}")
            continue
        try:
            result = prometheus.query(expr)
        except TestFailure as error:
            failures.append(f"panel '{title}': {expr}: {error}")
            continue
        finite = [r for r in result if not math.isnan(float(r["value"][1]))]
        gpu_only = metric_names_in(expr) and metric_names_in(expr) <= GPU_ONLY_METRICS
        if gpu_only and not has_gpu:
            log(f"ok (parses; no GPU here)  {title}: {expr}")
        elif not result:
            failures.append(f"panel '{title}': no series for {expr}")
        elif not finite:
            failures.append(f"panel '{title}': only NaN values for {expr}")
        else:
            log(f"ok ({len(result)} series)  {title}: {expr}")


def threshold_as_bool(expr):
    """The expression with each comparison against a number made a `bool` one, so that it
    returns its series whether or not the condition holds."""
    return re.sub(r"(==|!=|>=|<=|>|<)(\s*)(?=-?[0-9.])", r"\1 bool\2", expr)


def check_alert_rules(prometheus, failures):
    def all_evaluated():
        groups = prometheus.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(not r.get("lastEvaluation", "").startswith("0001") for r in rules):
            return rules
        return None

    rules = wait_for("every rule evaluated once", all_evaluated, timeout=20)
    alerts = [r for r in rules if r["type"] == "alerting"]
    if len(alerts) < 4:
        failures.append(f"alert rules: {len(alerts)} alerts, expected at least 4")
    for rule in alerts:
        name, expr = rule["name"], rule["query"]
        if rule["health"] != "ok" or rule.get("lastError"):
            failures.append(f"alert {name}: health {rule['health']}: {rule.get('lastError')}")
        if rule["state"] == "firing":
            failures.append(f"alert {name} fires in a healthy run")
        try:
            firing_now = prometheus.query(expr)
            series = prometheus.query(threshold_as_bool(expr))
        except TestFailure as error:
            failures.append(f"alert {name}: {error}")
            continue
        if firing_now:
            failures.append(f"alert {name}: its condition holds in a healthy run: {firing_now}")
        if not series:
            failures.append(f"alert {name}: no series for {threshold_as_bool(expr)}")
        else:
            log(f"ok alert {name} ({rule['state']}, {len(series)} series): "
                f"{threshold_as_bool(expr)}")


def check_catalog(endpoints, catalog, has_gpu, failures):
    exported = {}
    for service, port in endpoints.items():
        families = parse_exposition(http_get(f"http://127.0.0.1:{port}/metrics"))
        for name, info in families.items():
            if not (name.startswith(f"autocompress_{service}_") or name.startswith("exposer_")):
                failures.append(f"{service} /metrics exports {name}, outside its prefix "
                                f"autocompress_{service}_")
            kind, labels = exported.get(name, (info[0], set()))
            exported[name] = (kind, labels | info[1])
    for name in sorted(set(exported) - set(catalog)):
        failures.append(f"catalog: {name} ({exported[name][0]}) is exported but not in "
                        "docs/metrics.md")
    for name in sorted(set(catalog) - set(exported)):
        if name in GPU_ONLY_METRICS and not has_gpu:
            if "GPU workers only" not in catalog[name][2]:
                failures.append(f"catalog: {name} is GPU-only but its row does not say "
                                "'GPU workers only'")
            continue
        failures.append(f"catalog: {name} is in docs/metrics.md but no server exported it")
    for name in sorted(set(catalog) & set(exported)):
        kind, labels, _ = catalog[name]
        if kind != exported[name][0]:
            failures.append(f"catalog: {name} is a {exported[name][0]}, the catalog says {kind}")
        if labels != exported[name][1]:
            failures.append(f"catalog: {name} has labels {sorted(exported[name][1])}, the "
                            f"catalog says {sorted(labels)}")
    log(f"catalog: {len(catalog)} rows; exported {len(exported)} families")


if __name__ == "__main__":
    try:
        main()
    except TestFailure as error:
        where = ("bazel-testlogs/tests/monitoring/prometheus_scrape_test/test.outputs"
                 if "TEST_UNDECLARED_OUTPUTS_DIR" in os.environ else LOGS)
        print(f"\nFAIL: {error}\n(server and Prometheus logs: {where})", flush=True)
        sys.exit(1)
    log("PASS")
