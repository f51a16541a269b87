"""Checks of the deployment files with the real tools this machine has.

- helm/roomcast: linted by real Helm (helm-sdkpy bundles Helm's Go library; Lint renders every
  template with the values and parses the result), with the default values and with every
  option switched on; a chart broken on purpose must fail, so the check can fail. Then rendered
  offline by real Helm (helm-python-sdk, in a subprocess: render_chart.py) and the manifests
  checked: probes, preStop and grace period against the drain window, Secret references, HPA and
  ServiceMonitor targets, and the ConfigMap's TOML loaded by the real roomcast binary.
- deploy/docker: the compose file parses, has Redis, three nodes and nginx, and every ROOMCAST_*
  variable it sets is a gateway setting (the README's table, which tests/settings_names.rs holds
  equal to what the gateway reads), with values the real binary accepts; its nginx config passes
  `nginx -t` and its Prometheus config `promtool check config`; the Dockerfile is multi-stage,
  non-root and copies paths that exist.
- deploy/prometheus/alerts.yml passes `promtool check rules`.

Run by deploy/check/run.sh (inside the venv that has helm_sdkpy and yaml).
"""

import asyncio
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import helm_sdkpy
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "roomcast"
DOCKER = REPO / "deploy" / "docker"
ROOMCAST = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug" / "roomcast"
# Helm's lint severities: 1 info, 2 warning, 3 error.
ERROR = 3


def settings():
    """The `ROOMCAST_*` variables of the README's configuration table, by TOML key."""
    text = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| `(ROOMCAST_[A-Z_]+)` \|", text, re.M)
    assert len(rows) > 20, "the README's configuration table was not found"
    return dict(rows)


def lint(chart_dir):
    """Lints a chart directory with Helm; returns its messages as (severity, path)."""

    async def run():
        return await helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(chart_dir))

    result = asyncio.run(run())
    return [(m["Severity"], m["Path"]) for m in result.get("Messages") or []]


def deep_merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def lint_with(values, edit=None):
    """Lints a copy of the chart whose values.yaml is `values` (and whose files `edit` changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "roomcast"
        shutil.copytree(CHART, chart)
        (chart / "values.yaml").write_text(yaml.safe_dump(values))
        if edit:
            edit(chart)
        return lint(chart)


def errors(messages):
    return [path for severity, path in messages if severity >= ERROR]


def default_values():
    return yaml.safe_load((CHART / "values.yaml").read_text())


def compose():
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def resolve(value):
    """`${NAME:-default}` as compose resolves it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


class HelmChart(unittest.TestCase):
    def test_lints_clean_with_default_values(self):
        messages = lint(CHART)
        self.assertEqual(errors(messages), [], f"Helm lint failed in these files: {messages}")

    def test_lints_clean_with_every_option_on(self):
        values = deep_merge(
            default_values(),
            {
                "autoscaling": {"enabled": True},
                "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                "podDisruptionBudget": {"enabled": True},
                "preStopSleepSeconds": 0,
                "secrets": {"jwtSecret": {"name": ""}, "jwtPublicKey": {"name": "roomcast-jwt"}},
                "config": {"allowed_origins": ["https://app.example.com"], "redis_prefix": "rc:"},
                "imagePullSecrets": [{"name": "registry"}],
            },
        )
        messages = lint_with(values)
        self.assertEqual(errors(messages), [], f"Helm lint failed in these files: {messages}")

    def test_a_broken_template_fails_the_lint(self):
        def break_service(chart):
            with open(chart / "templates" / "service.yaml", "a") as f:
                f.write("  broken: [unclosed\n")

        self.assertEqual(errors(lint_with(default_values(), break_service)), ["templates/service.yaml"])

    def test_config_keys_are_gateway_settings(self):
        known = settings()
        config = default_values()["config"]
        for key in config:
            self.assertIn(key, known, f"values.yaml config.{key} is not a roomcast setting")
        commented = re.findall(r"^  # ([a-z_]+): ", (CHART / "values.yaml").read_text(), re.M)
        for key in commented:
            self.assertIn(key, known, f"values.yaml mentions config.{key}, which is not a roomcast setting")


def render(values=None):
    """The chart's manifests rendered by Helm with `values` (merged over values.yaml), by kind."""
    args = [sys.executable, str(Path(__file__).with_name("render_chart.py")), str(CHART)]
    if values is not None:
        args.append(json.dumps(values))
    run = subprocess.run(args, capture_output=True, text=True)
    out = json.loads(run.stdout or "{}")
    if run.returncode != 0:
        raise RenderError(out.get("error") or run.stderr)
    by_kind = {}
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


class RenderError(Exception):
    pass


def container(manifests):
    (deployment,) = manifests["Deployment"]
    (roomcast,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, roomcast


class RenderedChart(unittest.TestCase):
    def test_default_manifests(self):
        m = render()
        self.assertEqual(sorted(m), ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"])
        deployment, c = container(m)
        pod = deployment["spec"]["template"]
        self.assertEqual(deployment["spec"]["replicas"], 3)
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(c["lifecycle"]["preStop"]["sleep"]["seconds"], 5)
        # preStop sleep + drain window + roomcast's 10 s wait for sockets + 5 s margin.
        self.assertEqual(pod["spec"]["terminationGracePeriodSeconds"], 5 + 10 + 15)
        self.assertTrue(pod["spec"]["securityContext"]["runAsNonRoot"])
        env = {e["name"]: e for e in c["env"]}
        for name in ("ROOMCAST_JWT_SECRET", "ROOMCAST_API_KEY", "ROOMCAST_REDIS_URL"):
            self.assertIn("secretKeyRef", env[name]["valueFrom"], f"{name} comes from a Secret")
            self.assertNotIn("value", env[name])
        self.assertEqual(env["ROOMCAST_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        (service,) = m["Service"]
        self.assertEqual(service["spec"]["selector"], {k: v for k, v in pod["metadata"]["labels"].items()})
        (pdb,) = m["PodDisruptionBudget"]
        self.assertEqual(pdb["spec"]["selector"]["matchLabels"], service["spec"]["selector"])

    def test_the_config_map_is_a_configuration_roomcast_loads(self):
        m = render()
        (config_map,) = m["ConfigMap"]
        toml = config_map["data"]["roomcast.toml"]
        self.assertIn('drain_window = "10s"', toml)
        deployment, c = container(m)
        self.assertEqual(c["args"], ["--config", "/etc/roomcast/roomcast.toml"])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "roomcast.toml"
            path.write_text(toml)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
            env.update(ROOMCAST_JWT_SECRET="s", ROOMCAST_API_KEY="k", ROOMCAST_REDIS_URL="redis://redis:6379")
            ok = subprocess.run([str(ROOMCAST), "--config", str(path), "token", "--sub", "x"], env=env, capture_output=True, text=True)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            # And the check can fail: an unknown key in the file stops roomcast.
            path.write_text(toml + "no_such_setting = 1\n")
            bad = subprocess.run([str(ROOMCAST), "--config", str(path), "token", "--sub", "x"], env=env, capture_output=True, text=True)
            self.assertEqual(bad.returncode, 2, bad.stderr)

    def test_every_option_on(self):
        m = render(
            {
                "autoscaling": {"enabled": True, "minReplicas": 4},
                "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                "drainWindowSeconds": 30,
                "preStopSleepSeconds": 0,
                "secrets": {"jwtSecret": {"name": ""}, "jwtPublicKey": {"name": "jwt", "key": "key.pem"}},
                "config": {"allowed_origins": ["https://app.example.com"]},
            }
        )
        deployment, c = container(m)
        self.assertNotIn("replicas", deployment["spec"], "the HPA owns the replica count")
        self.assertNotIn("lifecycle", c)
        self.assertEqual(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 30 + 15)
        (config_map,) = m["ConfigMap"]
        self.assertIn('drain_window = "30s"', config_map["data"]["roomcast.toml"])
        self.assertIn('allowed_origins = ["https://app.example.com"]', config_map["data"]["roomcast.toml"])
        (hpa,) = m["HorizontalPodAutoscaler"]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"])
        self.assertEqual(hpa["spec"]["minReplicas"], 4)
        (monitor,) = m["ServiceMonitor"]
        (service,) = m["Service"]
        self.assertEqual(monitor["spec"]["selector"]["matchLabels"], service["spec"]["selector"])
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"])
        self.assertEqual(monitor["spec"]["endpoints"][0]["path"], "/metrics")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "prom")
        env = {e["name"]: e for e in c["env"]}
        self.assertNotIn("ROOMCAST_JWT_SECRET", env)
        mounts = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
        self.assertEqual(env["ROOMCAST_JWT_PUBLIC_KEY"]["value"], mounts["jwt-public-key"] + "/key.pem")

    def test_secrets_are_refused_in_config(self):
        with self.assertRaises(RenderError) as caught:
            render({"config": {"api_key": "oops"}})
        self.assertIn("config.api_key", str(caught.exception))


class Compose(unittest.TestCase):
    def test_redis_three_nodes_and_nginx(self):
        services = compose()["services"]
        for name in ("redis", "node-a", "node-b", "node-c", "nginx"):
            self.assertIn(name, services)
        ids = {services[n]["environment"]["ROOMCAST_NODE_ID"] for n in ("node-a", "node-b", "node-c")}
        self.assertEqual(len(ids), 3, "every node has its own id")
        for name in ("node-a", "node-b", "node-c"):
            self.assertEqual(services[name]["environment"]["ROOMCAST_REDIS_URL"], "redis://redis:6379")
        for volume in services["nginx"]["volumes"] + services["prometheus"]["volumes"]:
            self.assertTrue((DOCKER / volume.split(":")[0]).exists(), volume)

    def test_settings_are_gateway_settings_with_valid_values(self):
        known = set(settings().values())
        for name, service in compose()["services"].items():
            env = service.get("environment") or {}
            for key in env:
                if key.startswith("ROOMCAST_"):
                    self.assertIn(key, known | {"ROOMCAST_LOG"}, f"{name}: {key} is not a roomcast setting")
            if not name.startswith("node-"):
                continue
            # The real binary loads the settings (the token command stops after the config check).
            self.assertTrue(ROOMCAST.exists(), f"{ROOMCAST} missing: cargo build first (make test does)")
            clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
            clean.update({k: resolve(v) for k, v in env.items()})
            run = subprocess.run([str(ROOMCAST), "token", "--sub", "check"], env=clean, capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, f"{name}: {run.stderr}")

    def test_nginx_config_passes_nginx_t(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with tempfile.TemporaryDirectory() as tmp:
            conf = (DOCKER / "nginx.conf").read_text()
            # The compose service names only resolve on the compose network.
            conf = re.sub(r"node-[abc]:8080", "127.0.0.1:8080", conf).replace("/tmp/", f"{tmp}/")
            path = Path(tmp) / "nginx.conf"
            path.write_text(conf)
            run = subprocess.run([nginx, "-t", "-p", tmp, "-c", str(path)], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stderr)

    def test_prometheus_config_passes_promtool(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = (DOCKER / "prometheus.yml").read_text()
            conf = conf.replace("/etc/prometheus/alerts.yml", str(REPO / "deploy" / "prometheus" / "alerts.yml"))
            path = Path(tmp) / "prometheus.yml"
            path.write_text(conf)
            run = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


class Dockerfile(unittest.TestCase):
    def test_multi_stage_non_root_and_copies_what_exists(self):
        lines = [line.strip() for line in (DOCKER / "Dockerfile").read_text().splitlines()]
        stages = [line for line in lines if line.startswith("FROM ")]
        self.assertGreaterEqual(len(stages), 2, "multi-stage")
        self.assertIn("distroless", stages[-1])
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        self.assertTrue(users and users[-1].split(":")[0] not in ("0", "root"), "runs as non-root")
        for line in lines:
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    self.assertTrue((REPO / source).exists(), f"COPY {source}: not in the repository")
            if line.startswith("ENV ") or line.startswith("ROOMCAST_"):
                self.assertNotRegex(line, "SECRET|API_KEY", "no secret in the image")
        rust = re.search(r"FROM rust:(\d+\.\d+)", "\n".join(stages)).group(1)
        msrv = re.search(r'rust-version = "([\d.]+)"', (REPO / "Cargo.toml").read_text()).group(1)
        self.assertGreaterEqual(tuple(map(int, rust.split("."))), tuple(map(int, msrv.split("."))))


class AlertRules(unittest.TestCase):
    def test_rules_pass_promtool(self):
        path = REPO / "deploy" / "prometheus" / "alerts.yml"
        run = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"deploy: {result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed or not result.testsRun else 0)
