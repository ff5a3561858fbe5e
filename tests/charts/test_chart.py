"""Helm lint, helm-unittest, kubeconform (Kubernetes + SparkApplication schemas) and chart semantics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from coattail.settings import load_settings
from tests.charts.helpers import (
    CHART,
    CRD_SCHEMAS,
    HELM,
    K8S_SCHEMAS,
    K8S_VERSION,
    KUBECONFORM,
    PROFILES,
    REPO,
    SEED_ALARMS,
    TIERS,
    UNITTEST_GLOB,
    Doc,
    find,
    helm_env,
    pod_specs,
    render,
    render_text,
    run,
    value_args,
)

pytestmark = pytest.mark.charts

# Kinds kubeconform cannot validate offline: the prometheus-operator CRDs are not in any package of
# the registries this project uses (the Go module holds Go types, not the CRD YAML), so these three
# are skipped by name and checked structurally by test_monitoring_selects_real_targets instead.
SKIPPED_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
SCHEMA_LOCATIONS = (
    str(K8S_SCHEMAS) + "/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}"
    "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
    str(CRD_SCHEMAS) + "/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
)


def kubeconform(paths: list[Path]) -> tuple[int, str]:
    argv: list[str | Path] = [KUBECONFORM, "-strict", "-summary", "-kubernetes-version", K8S_VERSION]
    for location in SCHEMA_LOCATIONS:
        argv += ["-schema-location", location]
    argv += ["-skip", ",".join(SKIPPED_KINDS), *paths]
    result = run(argv)
    return result.returncode, result.stdout + result.stderr


def test_chart_config_is_the_repo_config() -> None:
    """One source of truth: the chart's files/config is a link to config/, not a copy."""
    link = CHART / "files" / "config"
    assert link.is_symlink(), "charts/coattail/files/config must be a symlink to ../../../config"
    assert link.resolve() == (REPO / "config").resolve()


@pytest.mark.parametrize("profile", list(PROFILES))
def test_helm_lint_strict(profile: str) -> None:
    result = run([HELM, "lint", "--strict", CHART, *value_args(profile)], env=helm_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


def test_helm_unittest_suites_pass() -> None:
    result = run([HELM, "unittest", "--color=false", "-f", UNITTEST_GLOB, CHART], env=helm_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Tests:\s+(\d+) passed, (\d+) total", result.stdout)
    assert match, result.stdout
    suites = len(list((CHART / "tests").glob("**/*_test.yaml")))
    assert re.search(rf"Test Suites:\s+{suites} passed, {suites} total", result.stdout), result.stdout
    assert int(match.group(1)) >= 62, "fewer helm-unittest tests than before the chart was split up"


TEMPLATES = CHART / "templates"
SUITES = CHART / "tests"


def template_files() -> list[Path]:
    return sorted(TEMPLATES.rglob("*.yaml"))


def test_templates_are_a_folder_per_component() -> None:
    """No manifest at the top of templates/, and every component folder has its own helpers."""
    assert not list(TEMPLATES.glob("*.yaml")), "templates/*.yaml: put each template in its component folder"
    folders = {p.parent for p in template_files()}
    assert len(folders) >= 6
    for folder in folders:
        # A folder that only holds a release-wide object (default-deny, alert rules) needs no helpers.
        if len(list(folder.glob("*.yaml"))) > 1:
            assert (folder / "_helpers.tpl").is_file(), f"{folder.relative_to(CHART)} has no _helpers.tpl"
            name = folder.name
            assert f'define "coattail.{name}.' in (folder / "_helpers.tpl").read_text(), (
                f"{folder.relative_to(CHART)}/_helpers.tpl defines no coattail.{name}.* helper"
            )


def test_every_template_has_its_mirrored_unittest_suite() -> None:
    """templates/<component>/<kind>.yaml is tested by tests/<component>/<kind>_test.yaml, and only there
    (NOTES.txt by tests/NOTES_test.yaml)."""
    tested = [*template_files(), TEMPLATES / "NOTES.txt"]
    for template in tested:
        rel = template.relative_to(TEMPLATES)
        suite = SUITES / rel.parent / f"{rel.stem}_test.yaml"
        assert suite.is_file(), f"templates/{rel} has no suite {suite.relative_to(CHART)}"
        assert yaml.safe_load(suite.read_text())["templates"] == [str(rel)], suite
    suites = {p.relative_to(SUITES) for p in SUITES.rglob("*_test.yaml")}
    mirrored = {t.relative_to(TEMPLATES).parent / f"{t.stem}_test.yaml" for t in tested}
    assert suites == mirrored, f"suites without a template: {suites - mirrored}"


def test_suites_select_documents_by_name_not_position() -> None:
    for suite in SUITES.rglob("*_test.yaml"):
        assert "documentIndex" not in suite.read_text(), f"{suite.relative_to(CHART)} selects by position"


def test_one_kind_per_template_file() -> None:
    """Across every profile and tier, each template file renders documents of one kind only."""
    kinds: dict[str, set[str]] = {}
    for profile in PROFILES:
        for tier in TIERS:
            for chunk in render_text(profile, tier).split("\n---\n"):
                source = re.search(r"^# Source: coattail/templates/(\S+)$", chunk, re.M)
                doc = yaml.safe_load(chunk)
                if source and doc:
                    kinds.setdefault(source.group(1), set()).add(doc["kind"])
    assert len(kinds) == len(template_files()), set(map(str, template_files())) ^ set(kinds)
    mixed = {path: sorted(found) for path, found in kinds.items() if len(found) > 1}
    assert not mixed, f"templates rendering more than one kind: {mixed}"
    misnamed = {
        path: kind
        for path, (kind,) in kinds.items()
        if Path(path).stem not in (kind.lower(), KIND_FILE_ABBREVIATIONS.get(kind))
    }
    assert not misnamed, f"template files not named after their kind: {misnamed}"


KIND_FILE_ABBREVIATIONS = {"HorizontalPodAutoscaler": "hpa"}


@pytest.mark.parametrize("profile", list(PROFILES))
def test_kubeconform_strict_every_tier(profile: str, tmp_path: Path) -> None:
    files = []
    for tier in TIERS:
        path = tmp_path / f"{profile}-{tier}.yaml"
        path.write_text(render_text(profile, tier))
        files.append(path)
    code, output = kubeconform(files)
    assert code == 0, output
    assert "Invalid: 0, Errors: 0" in output, output


def test_kubeconform_catches_a_typo(tmp_path: Path) -> None:
    """The offline schemas really are strict, for core kinds and for the SparkApplication CRD."""
    text = render_text("local", "small")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("revisionHistoryLimit:", "revisionHistoryLimt:", 1))
    code, output = kubeconform([bad])
    assert code != 0, output
    assert "revisionHistoryLimt" in output, output
    bad.write_text(text.replace("deleteOnTermination: true", "deleteOnTerminaton: true", 1))
    code, output = kubeconform([bad])
    assert code != 0, output
    assert "deleteOnTerminaton" in output, output


def test_k8s_local_manifests_validate() -> None:
    local = REPO / "k8s-local"
    code, output = kubeconform([*sorted((local / "manifests").glob("*.yaml")), local / "anvil.yaml"])
    assert code == 0, output


@pytest.mark.parametrize("tier", TIERS)
def test_spark_sizing_mirrors_the_tier_file(tier: str) -> None:
    """SparkApplication cores/memory/instances come from config/tiers (seed §10.1), not a copy."""
    sizing = load_settings(tier, env={}).spark
    (app,) = find(render("eks", tier), "SparkApplication")
    driver, executor = app["spec"]["driver"], app["spec"]["executor"]
    assert (driver["cores"], driver["memory"]) == (sizing.driver.cores, sizing.driver.memory)
    assert (executor["cores"], executor["memory"], executor["instances"]) == (
        sizing.executor.cores,
        sizing.executor.memory,
        sizing.executor.instances,
    )
    total_cores = driver["cores"] + executor["cores"] * executor["instances"]
    gigabytes = int(driver["memory"][:-1]) + int(executor["memory"][:-1]) * executor["instances"]
    assert (total_cores, gigabytes) == {"small": (4, 8), "medium": (6, 12), "large": (8, 16)}[tier]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_container_is_locked_down(profile: str) -> None:
    docs = render(profile)
    checked = 0
    for workload, spec in pod_specs(docs):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert container["resources"]["requests"], where
            assert container["resources"]["limits"], where
            checked += 1
    for app in find(docs, "SparkApplication"):
        for role in ("driver", "executor"):
            ctx = app["spec"][role]["securityContext"]
            assert ctx["readOnlyRootFilesystem"], role
            assert ctx["runAsNonRoot"], role
            assert app["spec"][role]["podSecurityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert checked >= 3


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_monitoring_selects_real_targets() -> None:
    """The skipped prometheus-operator kinds, checked by hand: selectors and ports exist."""
    docs = render("all-features")
    (service_monitor,) = find(docs, "ServiceMonitor")
    services = [
        s
        for s in find(docs, "Service")
        if _labels_match(service_monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert len(services) == 1
    assert service_monitor["spec"]["endpoints"][0]["port"] in {
        p["name"] for p in services[0]["spec"]["ports"]
    }
    pods: list[tuple[dict[str, str], set[str]]] = []
    for workload, spec in pod_specs(docs):
        if workload["kind"] == "Deployment":
            ports = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
            pods.append((workload["spec"]["template"]["metadata"]["labels"], ports))
    (app,) = find(docs, "SparkApplication")
    exporter = app["spec"]["monitoring"]["prometheus"]["portName"]  # added to both by the operator
    driver_ports = {p["name"] for p in app["spec"]["driver"].get("ports", [])}
    pods.append((app["spec"]["driver"]["labels"], {exporter, *driver_ports}))
    pods.append((app["spec"]["executor"]["labels"], {exporter}))
    for monitor in find(docs, "PodMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        targets = [ports for labels, ports in pods if _labels_match(selector, labels)]
        assert targets, f"PodMonitor {monitor['metadata']['name']} selects no pod"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert any(endpoint["port"] in ports for ports in targets), (
                f"PodMonitor {monitor['metadata']['name']}: no selected pod has port {endpoint['port']}"
            )
    (rule,) = find(docs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == SEED_ALARMS


def test_stop_switch() -> None:
    docs = render("stopped")
    connectors = [
        d
        for d in find(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "connectors"
    ]
    assert connectors
    assert all(d["spec"]["replicas"] == 0 for d in connectors)
    (app,) = find(docs, "SparkApplication")
    assert app["spec"]["suspend"] is True
    (api,) = find(docs, "Deployment", "coattail-api")
    assert api["spec"]["template"]["spec"]["containers"], "the API keeps serving stored alerts"


def test_makefile_start_stop_flip_the_switch() -> None:
    text = (REPO / "Makefile").read_text()
    for target, value in (("stop", "false"), ("start", "true")):
        match = re.search(rf"^{target}:.*\n\t(.+)$", text, re.MULTILINE)
        assert match, f"make {target} is missing"
        assert "helm upgrade" in match.group(1)
        assert "--reuse-values" in match.group(1)
        assert f"--set streaming.enabled={value}" in match.group(1)


def test_standard_labels_everywhere() -> None:
    for doc in render("all-features"):
        labels = doc["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks {key}"


CHAINS = ("ethereum", "solana")
# What an RPC URL with its API key looks like when pasted into the wrong place.
KEYED_URL = "https://eth-mainnet.g.alchemy.com/v2/SECRETKEY123"


def _chain_deployments(docs: list[Doc]) -> dict[str, Doc]:
    return {
        d["metadata"]["labels"]["coattail.io/chain"]: d
        for d in find(docs, "Deployment")
        if "coattail.io/chain" in d["metadata"]["labels"]
    }


def profile_chains(profile: str) -> dict[str, Doc]:
    """connectors.chains as a profile's values files set it (the chart default is empty)."""
    chains: dict[str, Doc] = {}
    for name in PROFILES[profile]:
        values = yaml.safe_load((CHART / name).read_text()) or {}
        for chain, settings in ((values.get("connectors") or {}).get("chains") or {}).items():
            chains.setdefault(chain, {}).update(settings)
    return chains


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("tier", TIERS)
def test_chain_connectors_follow_the_tier(profile: str, tier: str) -> None:
    """The large tier (connectors: [ethereum, solana]) gets a connector per chain, the others none;
    each reads its RPC URL from a Secret, never from a literal value or the settings ConfigMap."""
    docs = render(profile, tier)
    chains = _chain_deployments(docs)
    switched_on = {name for name, c in profile_chains(profile).items() if c.get("enabled")}
    expected = set(load_settings(tier, env={}).active_connectors) & set(CHAINS) | switched_on
    assert set(chains) == expected
    for chain, deployment in chains.items():
        secret = {"name": f"coattail-{chain}-rpc", "key": "rpc-url"}
        secret.update(profile_chains(profile).get(chain, {}).get("rpcUrlSecret", {}))
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["command"][-3:] == ["coattail", "connectors", "run"]
        assert container["args"][:2] == ["--exchange", chain]
        assert spec["serviceAccountName"] == "coattail-chains"
        env = {e["name"]: e for e in container["env"]}
        rpc = env[f"COATTAIL_CONNECTORS__{chain.upper()}__RPC_URL"]
        assert "value" not in rpc
        assert rpc["valueFrom"]["secretKeyRef"] == secret
    (settings,) = find(docs, "ConfigMap", "coattail-env")
    assert not [k for k in settings["data"] if k.endswith("RPC_URL")]
    if expected:
        (sa,) = find(docs, "ServiceAccount", "coattail-chains")
        assert sa["automountServiceAccountToken"] is False
    else:
        assert not find(docs, "ServiceAccount", "coattail-chains")


def test_pipeline_reads_the_onchain_topic_where_chains_run() -> None:
    """The SparkApplication's settings name the on-chain topic (kafka) / stream (kinesis), large tier."""
    for profile, key, value in (
        ("local", "COATTAIL_STREAM__KAFKA__ONCHAIN_TOPIC", "onchain"),
        ("eks", "COATTAIL_STREAM__KINESIS__ONCHAIN_STREAM_NAME", "coattail-onchain"),
    ):
        docs = render(profile, "large")
        (app,) = find(docs, "SparkApplication")
        for role in ("driver", "executor"):
            assert app["spec"][role]["envFrom"] == [{"configMapRef": {"name": "coattail-env"}}]
        (settings,) = find(docs, "ConfigMap", "coattail-env")
        assert settings["data"][key] == value
        (small_settings,) = find(render(profile, "small"), "ConfigMap", "coattail-env")
        assert key not in small_settings["data"]


@pytest.mark.parametrize(
    "bad",
    [
        f"connectors.chains.ethereum.rpcUrl={KEYED_URL}",
        f"connectors.chains.ethereum={KEYED_URL}",
        f"connectors.chains.ethereum.rpcUrlSecret={KEYED_URL}",
        f"connectors.chains.ethereum.rpcUrlSecret.name={KEYED_URL}",
        f"config.extra.connectors\\.solana\\.rpc_url={KEYED_URL}",
    ],
    ids=["rpcUrl", "chain-as-url", "secret-as-url", "secret-name-as-url", "config-extra"],
)
def test_a_literal_rpc_url_is_refused_without_echoing_it(bad: str) -> None:
    result = run(
        [HELM, "template", "coattail", CHART, "-n", "coattail", "--set", "tier=large", "--set", bad],
        env=helm_env(),
    )
    assert result.returncode != 0, f"--set {bad} rendered"
    errors = [line for line in result.stderr.splitlines() if line.startswith(("Error:", "- at "))]
    assert errors, result.stderr
    assert "SECRETKEY123" not in result.stderr, "the refusal repeats the API key"


@pytest.mark.parametrize("tier", ["small", "large"])
def test_eks_profile_from_terraform_outputs(tmp_path: Path, tier: str) -> None:
    """`coattail infra helm-values` output layered on values-eks.yaml renders, validates and wires IRSA."""
    outputs = json.loads((REPO / "tests" / "infra" / "fixtures" / "terraform-output.json").read_text())
    if tier == "large":  # Terraform creates the on-chain streams for the large tier
        outputs["feature_tier"]["value"] = "large"
        outputs["kinesis_onchain_stream_name"]["value"] = "coattail-dev-onchain"
        outputs["kinesis_onchain_dlq_stream_name"]["value"] = "coattail-dev-onchain-dlq"
    fixture = tmp_path / "terraform-output.json"
    fixture.write_text(json.dumps(outputs))
    values = tmp_path / "values-tf.yaml"
    result = run([REPO / ".venv" / "bin" / "coattail", "infra", "helm-values", fixture, "--out", values])
    assert result.returncode == 0, result.stderr
    rendered = run(
        [
            HELM,
            "template",
            "coattail",
            CHART,
            "-n",
            "coattail",
            "--kube-version",
            K8S_VERSION,
            "-f",
            CHART / "values-eks.yaml",
            "-f",
            values,
        ],
        env=helm_env(),
    )
    assert rendered.returncode == 0, rendered.stderr
    out = tmp_path / "eks-tf.yaml"
    out.write_text(rendered.stdout)
    code, output = kubeconform([out])
    assert code == 0, output
    docs: list[Doc] = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    generated = yaml.safe_load(values.read_text())
    components = ["connectors", "spark", "api", "batch"] + (["chains"] if tier == "large" else [])
    for component in components:
        (sa,) = find(docs, "ServiceAccount", f"coattail-{component}")
        assert sa["metadata"]["annotations"] == generated["serviceAccounts"][component]["annotations"]
    (env,) = find(docs, "ConfigMap", "coattail-env")
    kinesis = generated["stream"]["kinesis"]
    assert env["data"]["COATTAIL_STREAM__KINESIS__STREAM_NAME"] == kinesis["streamName"]
    assert env["data"]["COATTAIL_HOT_STORE__TABLE"] == generated["hotStore"]["table"]
    if tier == "large":
        assert env["data"]["COATTAIL_STREAM__KINESIS__ONCHAIN_STREAM_NAME"] == "coattail-dev-onchain"
        assert env["data"]["COATTAIL_STREAM__KINESIS__ONCHAIN_DLQ_STREAM_NAME"] == "coattail-dev-onchain-dlq"
        assert set(_chain_deployments(docs)) == set(CHAINS)
    else:
        assert "COATTAIL_STREAM__KINESIS__ONCHAIN_STREAM_NAME" not in env["data"]
