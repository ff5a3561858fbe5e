"""A local Kubernetes control plane: etcd, the API server, controller manager, scheduler, kwok's fake
nodes and the kubeflow spark-operator (controller and mutating webhook), as background processes.

Everything listens on 127.0.0.1 with certificates from our own CA, RBAC on, and the API server's
PodSecurity admission holding the app namespace to ``restricted``. kwok runs no containers: pods on its
nodes go Running (Jobs' pods complete), which is what tests of manifests and controllers need.
The spark-operator really runs spark-submit (pyspark's, from the venv) against this API server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from coattail.devservices.cluster import components, manifests, pki
from coattail.devservices.cluster.components import Layout
from coattail.devservices.jars import MissingDependencyError
from coattail.devservices.process import alive, free_port, log_tail, read_pid, spawn, stop
from coattail.errors import CoattailError
from coattail.settings.paths import REPO_ROOT

APP_NAMESPACE = "coattail"
NODE_NAME = "kwok-node-0"
Argv = Callable[[Layout], list[str]]
# Start order; `down` stops them in reverse.
COMPONENTS: tuple[tuple[str, Argv], ...] = (
    ("etcd", components.etcd),
    ("kube-apiserver", components.apiserver),
    ("kube-controller-manager", components.controller_manager),
    ("kube-scheduler", components.scheduler),
    ("kwok", components.kwok),
    ("spark-operator-webhook", components.operator_webhook),
    ("spark-operator-controller", components.operator_controller),
)


class ClusterError(CoattailError, RuntimeError):
    """The local control plane did not come up; the message says which part and ends with its log tail."""


@dataclass(frozen=True)
class ComponentInfo:
    name: str
    pid: int | None
    answering: bool
    log: str


def bin_dir() -> Path:
    """Where k8s-local/cluster/build.sh put the binaries (COATTAIL_CLUSTER_BIN overrides)."""
    explicit = os.environ.get("COATTAIL_CLUSTER_BIN")
    return Path(explicit).expanduser() if explicit else REPO_ROOT / ".tools" / "cluster" / "bin"


def spark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise MissingDependencyError("pyspark is not installed: the spark-operator needs its spark-submit")
    return Path(spec.origin).parent


class LocalCluster:
    """One control plane under ``root`` (pid files, logs, etcd data, certificates, kubeconfig)."""

    def __init__(self, root: Path, *, binaries: Path | None = None, start_timeout: float = 90.0):
        self.root = root
        self.bin = binaries or bin_dir()
        self.start_timeout = start_timeout

    # --- layout ---------------------------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.root / "cluster.json"

    def _ports(self) -> dict[str, int]:
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(self._state_file.read_text())["ports"]
            if set(saved) == set(components.PORT_NAMES):
                return {k: int(v) for k, v in saved.items()}
        return {name: free_port() for name in components.PORT_NAMES}

    @property
    def layout(self) -> Layout:
        return Layout(self.root, self.bin, self._ports())

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def env(self) -> dict[str, str]:
        """What a shell needs to talk to this cluster with kubectl and helm."""
        return {"KUBECONFIG": str(self.kubeconfig)}

    def _pid_path(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"

    def _log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    # --- commands -------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done

    def apply(self, objects: list[dict[str, object]]) -> None:
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifests.as_list(objects)
        )

    # --- lifecycle ------------------------------------------------------------------------------
    def up(self) -> dict[str, ComponentInfo]:
        """Start whatever is not running, wait until each part answers; safe to re-run."""
        self._check_binaries()
        lay = self.layout
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(json.dumps({"ports": lay.ports, "bin": str(self.bin)}, indent=2))
        keys = pki.create(lay.pki.root, service_ip=components.SERVICE_IP, webhook_dns=manifests.WEBHOOK_DNS)
        self._write_kubeconfig(lay)
        env = {
            "KUBECONFIG": str(self.kubeconfig),
            # spark-submit (run by the operator) finds the API server the way it would in a pod.
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(lay.ports["apiserver"]),
            "SPARK_HOME": str(spark_home()),
        }
        for name, argv in COMPONENTS:
            if name == "kube-controller-manager":
                self._bootstrap(keys, lay)
            if read_pid(self._pid_path(name)) is None:
                spawn(argv(lay), self._log_path(name), self._pid_path(name), env=env)
            self._wait(name, lambda n=name: self._answers(n, lay))  # type: ignore[misc]
        self._wait("kwok node", self._node_ready)
        self._wait(f"{APP_NAMESPACE} default service account", self._default_sa_exists)
        return self.status()

    def _bootstrap(self, keys: pki.Pki, lay: Layout) -> None:
        """Namespaces, CRDs, the fake node and the operator's webhook wiring (idempotent)."""
        self.apply(
            [
                manifests.restricted_namespace(APP_NAMESPACE),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": manifests.OPERATOR_NAMESPACE}},
                manifests.fake_node(NODE_NAME),
            ]
        )
        self.apply(
            [manifests.webhook_secret(keys), *manifests.webhook_configurations(keys, lay.ports["webhook"])]
        )
        crds = sorted((REPO_ROOT / ".cache" / "crds").glob("*.yaml"))
        if not crds:
            raise MissingDependencyError("no spark-operator CRDs in .cache/crds; run `scripts/setup.sh crds`")
        # prometheus-operator's (k8s-local/cluster/build.sh): our monitoring objects validate against them.
        crds += sorted((self.bin.parent / "crds").glob("*.yaml"))
        for crd in crds:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self._wait("CRDs established", self._crds_established)

    def down(self, *, wipe: bool = False) -> list[str]:
        stopped = []
        for name, _ in reversed(COMPONENTS):
            pid = read_pid(self._pid_path(name))
            if pid is not None:
                stop(pid, grace_seconds=10)
                stopped.append(name)
            self._pid_path(name).unlink(missing_ok=True)
        if wipe:
            shutil.rmtree(self.root, ignore_errors=True)
        return stopped

    def status(self) -> dict[str, ComponentInfo]:
        lay = self.layout
        infos = {}
        for name, _ in COMPONENTS:
            pid = read_pid(self._pid_path(name))
            answering = pid is not None and self._answers(name, lay)
            infos[name] = ComponentInfo(name, pid, answering, str(self._log_path(name)))
        return infos

    def as_dict(self) -> dict[str, object]:
        return {
            "kubeconfig": str(self.kubeconfig),
            "server": self.layout.apiserver_url,
            "components": {n: asdict(i) for n, i in self.status().items()},
        }

    # --- checks ---------------------------------------------------------------------------------
    def _check_binaries(self) -> None:
        missing = [
            b
            for b in ("etcd", "kube-apiserver", "kubectl", "kwok", "spark-operator")
            if not (self.bin / b).is_file()
        ]
        if missing:
            raise MissingDependencyError(
                f"no {', '.join(missing)} in {self.bin}; run `bash scripts/setup.sh cluster` "
                "(a cold build takes 10-25 min)"
            )

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if ready():
                return
            pid_path = self._pid_path(what)
            if pid_path.exists() and read_pid(pid_path) is None:
                raise ClusterError(
                    f"{what} exited while starting; its log ends:\n{log_tail(self._log_path(what))}"
                )
            time.sleep(0.3)
        raise ClusterError(
            f"{what} did not answer within {self.start_timeout:.0f} s; log:\n{log_tail(self._log_path(what))}"
        )

    def _answers(self, name: str, lay: Layout) -> bool:
        p = lay.ports
        checks: dict[str, Callable[[], bool]] = {
            "etcd": lambda: b'"health":"true"' in _get(f"http://127.0.0.1:{p['etcd']}/health"),
            "kube-apiserver": lambda: _get(f"{lay.apiserver_url}/readyz", self._admin_tls()) == b"ok",
            "kube-controller-manager": lambda: (
                _get(f"https://127.0.0.1:{p['controller_manager']}/healthz", _insecure()) == b"ok"
            ),
            "kube-scheduler": lambda: (
                _get(f"https://127.0.0.1:{p['scheduler']}/healthz", _insecure()) == b"ok"
            ),
            "kwok": lambda: _get(f"http://127.0.0.1:{p['kwok']}/healthz") == b"ok",
            "spark-operator-webhook": lambda: _get(f"http://127.0.0.1:{p['webhook_health']}/readyz") == b"ok",
            "spark-operator-controller": lambda: (
                _get(f"http://127.0.0.1:{p['operator_health']}/readyz") == b"ok"
            ),
        }
        return checks[name]()

    def _admin_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.layout.pki.ca_cert))
        ctx.load_cert_chain(str(self.layout.pki.path("admin.crt")), str(self.layout.pki.path("admin.key")))
        return ctx

    def _node_ready(self) -> bool:
        done = self.kubectl(
            "get",
            "node",
            NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )
        return done.stdout.strip() == "True"

    def _crds_established(self) -> bool:
        # Polled, not `kubectl wait`: that fails outright on a CRD whose status is not written yet.
        crds = json.loads(self.kubectl("get", "crd", "-o", "json").stdout)["items"]
        return bool(crds) and all(
            any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (crd.get("status") or {}).get("conditions") or []
            )
            for crd in crds
        )

    def _default_sa_exists(self) -> bool:
        return (
            self.kubectl("-n", APP_NAMESPACE, "get", "serviceaccount", "default", check=False).returncode == 0
        )

    def _write_kubeconfig(self, lay: Layout) -> None:
        keys = lay.pki
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "coattail-local",
                    "cluster": {"server": lay.apiserver_url, "certificate-authority": str(keys.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "coattail-admin",
                    "user": {
                        "client-certificate": str(keys.path("admin.crt")),
                        "client-key": str(keys.path("admin.key")),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "coattail-local",
                    "context": {
                        "cluster": "coattail-local",
                        "user": "coattail-admin",
                        "namespace": APP_NAMESPACE,
                    },
                }
            ],
            "current-context": "coattail-local",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)


def _insecure() -> ssl.SSLContext:
    # Controller manager and scheduler serve health on self-signed certificates of their own.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _get(url: str, context: ssl.SSLContext | None = None) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310 (loopback only)
            return bytes(resp.read()).strip()
    except (OSError, ValueError):
        return b""


__all__ = ["APP_NAMESPACE", "ClusterError", "ComponentInfo", "LocalCluster", "alive", "bin_dir"]
