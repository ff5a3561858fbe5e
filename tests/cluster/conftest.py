"""The `cluster` tier: one local control plane per session (`coattail dev cluster up`'s code) that
every test shares, each test in namespaces of its own that the API server holds to ``restricted``."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coattail.devservices.cluster import LocalCluster, bin_dir
from coattail.devservices.cluster.manifests import restricted_namespace
from tests.charts.helpers import CHART, HELM, PROFILES, helm_env
from tests.sessionstate import session_state

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Kube:
    """kubectl and helm pointed at the session's cluster."""

    cluster: LocalCluster

    @property
    def env(self) -> dict[str, str]:
        return {
            **helm_env(),
            **self.cluster.env(),
            "PATH": f"{bin_dir()}:{REPO / '.tools' / 'bin'}:{os.environ['PATH']}",
        }

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(bin_dir() / "kubectl"), *args], input=stdin, capture_output=True, text=True,
            env=self.env, timeout=timeout, check=False,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr.strip()}"
        return done

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        extra = ["-l", selector] if selector else []
        return list(self.get(kind, "-n", namespace, *extra)["items"])

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(HELM), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
            cwd=REPO,
        )
        if check:
            assert done.returncode == 0, f"helm {' '.join(args[:2])} failed:\n{done.stderr.strip()}"
        return done

    def make(self, target: str, *, release: str, namespace: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", target, f"RELEASE={release}", f"NAMESPACE={namespace}"],
            capture_output=True, text=True, env=self.env, timeout=300, check=False, cwd=REPO,
        )  # fmt: skip

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(obj))

    def namespace(self) -> str:
        name = f"t-{uuid.uuid4().hex[:10]}"
        self.apply(restricted_namespace(name))
        wait_until(
            lambda: self.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0,
            what=f"{name}'s default service account",
        )
        return name

    def secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        args = [f"--from-literal={k}={v}" for k, v in data.items()]
        self.kubectl("-n", namespace, "create", "secret", "generic", name, *args)


def wait_until(check: Callable[[], object], *, what: str, timeout: float = 90, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    if not (bin_dir() / "kube-apiserver").is_file():
        pytest.fail("no control-plane binaries in .tools/cluster/bin: run `bash scripts/setup.sh cluster`")
    # Laid out as `coattail dev cluster` lays it out under COATTAIL_STATE_DIR, so the CLI can be asked too.
    state = session_state("cluster-state", tmp_path_factory)
    cluster = LocalCluster(state.path / "cluster")
    if state.fixed:
        cluster.down(wipe=True)  # what a killed run left running, and its etcd data
    try:
        cluster.up()
        yield Kube(cluster)
    finally:
        cluster.down(wipe=False)


# Secrets the profiles name but leave to the operator (Terraform, External Secrets, k8s-local/up.sh).
PROFILE_SECRETS: dict[str, dict[str, dict[str, str]]] = {
    "local": {"coattail-local-aws": {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local-secret"}},
    "eks": {"coattail-api-cursor": {"cursor-secret": "c" * 32}, "coattail-api-keys": {"api-keys": "k1"}},
}


def install(
    kube: Kube,
    namespace: str,
    *,
    profile: str,
    tier: str,
    release: str = "coattail",
    extra: tuple[str, ...] = (),
) -> None:
    """``helm install --wait`` of the chart with the profile's values files, after its Secrets."""
    for name, data in PROFILE_SECRETS.get(profile, {}).items():
        kube.secret(namespace, name, data)
    values: list[str] = []
    for name in PROFILES[profile]:
        values += ["-f", str(CHART / name)]
    sets = [f"--set={item}" for item in (f"tier={tier}", *extra)]
    kube.helm("install", release, str(CHART), "-n", namespace, *values, *sets, "--wait", "--timeout=180s")


@dataclass(frozen=True)
class Release:
    kube: Kube
    namespace: str
    name: str = "coattail"

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        selector = f"app.kubernetes.io/component={component}" if component else None
        found = self.kube.items(kind, self.namespace, selector)
        assert len(found) == 1, (
            f"expected one {kind} ({component}), found {[f['metadata']['name'] for f in found]}"
        )
        return found[0]


@pytest.fixture(scope="session")
def release(kube: Kube) -> Iterator[Release]:
    """The chart on the local profile, medium tier, for the tests that look at it or change it back."""
    ns = kube.namespace()
    install(kube, ns, profile="local", tier="medium")
    yield Release(kube, ns)
    kube.helm("uninstall", "coattail", "-n", ns, check=False)
