"""Command lines of the control plane's processes, all on 127.0.0.1, in the order they start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coattail.devservices.cluster.manifests import (
    OPERATOR_NAMESPACE,
    WEBHOOK_CONFIG,
    WEBHOOK_SECRET,
    WEBHOOK_SERVICE,
)
from coattail.devservices.cluster.pki import Pki

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the `kubernetes` Service: first address of the range
POD_CIDR = "10.244.0.0/16"
PORT_NAMES = (
    "etcd",
    "etcd_peer",
    "apiserver",
    "controller_manager",
    "scheduler",
    "kwok",
    "webhook",
    "operator_health",
    "webhook_health",
)


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its files and which ports it listens on."""

    root: Path
    bin: Path
    ports: dict[str, int]

    @property
    def pki(self) -> Pki:
        return Pki(self.root / "pki")

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def tool(self, name: str) -> str:
        return str(self.bin / name)

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"


def etcd(lay: Layout) -> list[str]:
    client, peer = f"http://127.0.0.1:{lay.ports['etcd']}", f"http://127.0.0.1:{lay.ports['etcd_peer']}"
    return [
        lay.tool("etcd"), "--name=local", f"--data-dir={lay.root / 'etcd'}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
        # A throw-away cluster: no fsync (etcd's fsyncs are most of a test cluster's disk wait).
        "--unsafe-no-fsync", "--quota-backend-bytes=2147483648", "--log-level=warn",
    ]  # fmt: skip


def apiserver(lay: Layout) -> list[str]:
    pki = lay.pki
    return [
        lay.tool("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{lay.ports['etcd']}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={lay.ports['apiserver']}",
        f"--tls-cert-file={pki.path('apiserver.crt')}", f"--tls-private-key-file={pki.path('apiserver.key')}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-key-file={pki.path('sa.pub')}",
        f"--service-account-signing-key-file={pki.path('sa.key')}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        # PodSecurity is on by default; namespaces opt into `restricted` with their labels.
        "--enable-admission-plugins=NodeRestriction,PodSecurity",
        # No kube-proxy or real node network: nothing should publish the API server's address as endpoints.
        "--endpoint-reconciler-type=none",
        f"--cert-dir={lay.root / 'apiserver-certs'}",
    ]  # fmt: skip


def controller_manager(lay: Layout) -> list[str]:
    return [
        lay.tool("kube-controller-manager"),
        f"--kubeconfig={lay.kubeconfig}", "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={lay.ports['controller_manager']}",
        f"--service-account-private-key-file={lay.pki.path('sa.key')}",
        f"--root-ca-file={lay.pki.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # kwok renews the node's Lease; a loaded 2-core machine gets slack before the node counts as lost.
        "--node-monitor-grace-period=2m",
        # Fast reactions for tests: sync jobs and garbage-collect promptly.
        "--concurrent-deployment-syncs=10", "--concurrent-gc-syncs=20",
        "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
    ]  # fmt: skip


def scheduler(lay: Layout) -> list[str]:
    return [
        lay.tool("kube-scheduler"),
        f"--kubeconfig={lay.kubeconfig}", "--leader-elect=false",
        "--bind-address=127.0.0.1", f"--secure-port={lay.ports['scheduler']}",
    ]  # fmt: skip


def kwok(lay: Layout) -> list[str]:
    return [
        lay.tool("kwok"),
        f"--kubeconfig={lay.kubeconfig}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        # Heartbeats through a node Lease (as a kubelet does), renewed every 10 s; without it the node
        # goes Unknown after the grace period and its pods lose Ready for good.
        "--node-lease-duration-seconds=40",
        "--node-ip=127.0.0.1", f"--cidr={POD_CIDR}",
        f"--server-address=127.0.0.1:{lay.ports['kwok']}",
    ]  # fmt: skip


def operator_controller(lay: Layout) -> list[str]:
    return [
        lay.tool("spark-operator"), "controller", "start",
        "--namespaces=", "--enable-ui-service=false", "--leader-election=false",
        f"--health-probe-bind-address=127.0.0.1:{lay.ports['operator_health']}",
        "--driver-pod-creation-grace-period=30s",
    ]  # fmt: skip


def operator_webhook(lay: Layout) -> list[str]:
    return [
        lay.tool("spark-operator"), "webhook", "start",
        "--namespaces=", "--leader-election=false",
        f"--webhook-port={lay.ports['webhook']}", f"--webhook-cert-dir={lay.root / 'webhook-certs'}",
        f"--webhook-secret-name={WEBHOOK_SECRET}", f"--webhook-secret-namespace={OPERATOR_NAMESPACE}",
        f"--webhook-svc-name={WEBHOOK_SERVICE}", f"--webhook-svc-namespace={OPERATOR_NAMESPACE}",
        f"--mutating-webhook-name={WEBHOOK_CONFIG}", f"--validating-webhook-name={WEBHOOK_CONFIG}",
        f"--health-probe-bind-address=127.0.0.1:{lay.ports['webhook_health']}",
    ]  # fmt: skip
