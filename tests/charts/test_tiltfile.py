"""The Tiltfile, evaluated by a real Starlark interpreter (starlark-rust via starlark-pyo3).

Tilt itself cannot be installed here (its module is not served by the Go module proxy), so Tilt's
builtins are stubbed with the same parameter names: an unknown builtin, a misspelt keyword, a
docker_build context/Dockerfile/target or a sync path that does not exist, a k8s_resource naming a
workload the chart does not render, or an image no workload uses all fail the test. helm() runs the
real `helm template`, so the chart must render with the Tiltfile's values and --set flags.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import starlark as sl
import yaml

from tests.charts.helpers import HELM, K8S_VERSION, REPO, helm_env, run

pytestmark = pytest.mark.charts


@dataclass
class TiltState:
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: list[dict[str, Any]] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    local_resources: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _path(rel: str, what: str) -> Path:
    path = REPO / rel
    if not path.exists():
        raise ValueError(f"{what}: {rel} does not exist")
    return path


def _stages(dockerfile: Path) -> set[str]:
    return {m.lower() for m in re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)}


def make_builtins(state: TiltState) -> dict[str, Callable[..., Any]]:
    def docker_build(
        ref: str,
        context: str,
        build_args: Any = None,
        dockerfile: str = "Dockerfile",
        dockerfile_contents: str = "",
        live_update: Any = None,
        match_in_env_vars: bool = False,
        ignore: Any = None,
        only: Any = None,
        entrypoint: Any = None,
        target: str = "",
        ssh: Any = None,
        network: str = "",
        secret: Any = None,
        extra_tag: Any = None,
        container_args: Any = None,
        cache_from: Any = None,
        pull: bool = False,
        platform: str = "",
        env_vars: Any = None,
    ) -> None:
        _path(context, f"docker_build({ref}) context")
        dfile = _path(dockerfile, f"docker_build({ref}) dockerfile")
        if target and target.lower() not in _stages(dfile):
            raise ValueError(f"docker_build({ref}): Dockerfile {dockerfile} has no stage {target!r}")
        for item in only or []:
            _path(str(Path(context) / item), f"docker_build({ref}) only")
        state.images[ref] = {"live_update": list(live_update or [])}

    def docker_build_with_restart(
        ref: str,
        context: str,
        entrypoint: Any,
        live_update: Any,
        base_suffix: str = "-tilt_restart_proc_base",
        restart_file: str = "",
        trigger: Any = None,
        exit_policy: str = "restart",
        **kwargs: Any,
    ) -> None:
        # ext://restart_process: builds `ref` and wraps its entrypoint with /tilt-restart-wrapper.
        if not entrypoint:
            raise ValueError("docker_build_with_restart needs an entrypoint")
        docker_build(ref, context, live_update=live_update, **kwargs)

    def sync(local_path: str, remote_path: str) -> str:
        _path(local_path, "sync")
        if not remote_path.startswith("/"):
            raise ValueError(f"sync remote path {remote_path!r} must be absolute")
        return f"sync:{local_path}"

    def fall_back_on(files: Any) -> str:
        for item in [files] if isinstance(files, str) else files:
            _path(item, "fall_back_on")
        return "fall_back_on"

    def run_step(cmd: Any, trigger: Any = None, echo_off: bool = False) -> str:
        return "run"

    def helm(
        pathToChartDir: str,  # noqa: N803 (Tilt's own parameter name)
        name: str = "",
        namespace: str = "",
        values: Any = None,
        set: Any = None,
        kube_version: str = "",
        skip_crds: bool = False,
    ) -> str:
        argv: list[str | Path] = [
            HELM,
            "template",
            name or "chart",
            _path(pathToChartDir, "helm chart"),
            "--kube-version",
            K8S_VERSION,
        ]
        if namespace:
            argv += ["--namespace", namespace]
        for item in [values] if isinstance(values, str) else values or []:
            argv += ["-f", _path(item, "helm values")]
        for item in [set] if isinstance(set, str) else set or []:
            argv += ["--set", item]
        result = run(argv, env=helm_env())
        if result.returncode != 0:
            raise ValueError(f"helm template failed: {result.stderr.strip()}")
        return result.stdout

    def k8s_yaml(yaml_text: Any, allow_duplicates: bool = False) -> None:
        state.objects += [d for d in yaml.safe_load_all(yaml_text) if d]

    def k8s_kind(
        kind: str,
        api_version: str = "",
        image_json_path: Any = None,
        image_object: Any = None,
        pod_readiness: str = "",
    ) -> None:
        state.kinds[kind] = str(image_json_path)

    def k8s_resource(
        workload: str = "",
        new_name: str = "",
        port_forwards: Any = None,
        extra_pod_selectors: Any = None,
        trigger_mode: int = 0,
        resource_deps: Any = None,
        objects: Any = None,
        auto_init: bool = True,
        pod_readiness: str = "",
        links: Any = None,
        labels: Any = None,
        discovery_strategy: str = "",
    ) -> None:
        state.resources[workload or new_name] = {
            "workload": workload,
            "new_name": new_name,
            "objects": list(objects or []),
            "resource_deps": list(resource_deps or []),
            "port_forwards": list(port_forwards or []),
        }

    def local_resource(
        name: str,
        cmd: Any = "",
        deps: Any = None,
        trigger_mode: int = 0,
        resource_deps: Any = None,
        ignore: Any = None,
        auto_init: bool = True,
        serve_cmd: Any = "",
        cmd_bat: Any = "",
        serve_cmd_bat: Any = "",
        labels: Any = None,
        links: Any = None,
        env: Any = None,
        serve_env: Any = None,
        dir: str = "",
        allow_parallel: bool = False,
        readiness_probe: Any = None,
    ) -> None:
        script = shlex.split(cmd)[0] if isinstance(cmd, str) and cmd else ""
        if script.startswith(("./", "k8s-local/", "scripts/")):
            _path(script, f"local_resource({name}) cmd")
        for item in [deps] if isinstance(deps, str) else deps or []:
            _path(item, f"local_resource({name}) deps")
        state.local_resources.append(name)

    def watch_file(path: str) -> None:
        _path(path, "watch_file")

    def allow_k8s_contexts(contexts: Any) -> None:
        pass

    def update_settings(
        max_parallel_updates: int = 3,
        k8s_upsert_timeout_secs: int = 30,
        suppress_unused_image_warnings: Any = None,
    ) -> None:
        pass

    def link(url: str, name: str = "") -> str:
        return url

    return {
        "docker_build": docker_build,
        "docker_build_with_restart": docker_build_with_restart,
        "sync": sync,
        "fall_back_on": fall_back_on,
        "run": run_step,
        "helm": helm,
        "k8s_yaml": k8s_yaml,
        "k8s_kind": k8s_kind,
        "k8s_resource": k8s_resource,
        "local_resource": local_resource,
        "watch_file": watch_file,
        "allow_k8s_contexts": allow_k8s_contexts,
        "update_settings": update_settings,
        "link": link,
    }


EXTENSIONS = {"ext://restart_process": ("docker_build_with_restart",)}


def evaluate(tiltfile: Path) -> TiltState:
    state = TiltState()
    builtins = make_builtins(state)
    dialect = sl.Dialect.extended()
    dialect.enable_top_level_stmt = True

    def load(module_id: str) -> sl.FrozenModule:
        if module_id not in EXTENSIONS:
            raise ValueError(f"load({module_id!r}): not a Tilt extension this test knows")
        module = sl.Module()
        for name in EXTENSIONS[module_id]:
            module.add_callable(name, builtins[name])
        return module.freeze()

    module = sl.Module()
    for name, fn in builtins.items():
        if name != "docker_build_with_restart":
            module.add_callable(name, fn)
    module["TRIGGER_MODE_AUTO"] = 0
    module["TRIGGER_MODE_MANUAL"] = 1
    ast = sl.parse("Tiltfile", tiltfile.read_text(), dialect)
    sl.eval(module, ast, sl.Globals.standard(), sl.FileLoader(load))
    return state


@pytest.fixture(scope="module")
def tilt() -> TiltState:
    return evaluate(REPO / "Tiltfile")


def test_tiltfile_builds_both_images_with_python_live_update(tilt: TiltState) -> None:
    assert set(tilt.images) == {"coattail/python", "coattail/spark"}
    assert any(str(step).startswith("sync:") for step in tilt.images["coattail/python"]["live_update"])


def test_tiltfile_deploys_the_local_profile_and_uses_every_image(tilt: TiltState) -> None:
    images: set[str] = set()
    for doc in tilt.objects:
        if doc["kind"] == "SparkApplication":
            images.add(doc["spec"]["image"])
        for c in re.findall(r"'image': '([^']+)'", str(doc)):
            images.add(c)
    for ref in tilt.images:
        assert any(i.split(":")[0].split("@")[0] == ref for i in images), f"no workload uses image {ref}"
    (env,) = [d for d in tilt.objects if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "coattail-env"]
    assert env["data"]["COATTAIL_PROFILE"] == "k8s-local"


def test_tiltfile_teaches_tilt_the_sparkapplication_image(tilt: TiltState) -> None:
    assert tilt.kinds == {"SparkApplication": "{.spec.image}"}


def test_tiltfile_resources_name_rendered_objects(tilt: TiltState) -> None:
    workloads = {
        d["metadata"]["name"]
        for d in tilt.objects
        if d["kind"] in ("Deployment", "Job", "CronJob", "SparkApplication", "StatefulSet")
    }
    named = {f"{d['metadata']['name']}:{d['kind'].lower()}" for d in tilt.objects}
    known = set(tilt.local_resources) | {r["new_name"] or r["workload"] for r in tilt.resources.values()}
    for name, res in tilt.resources.items():
        if res["workload"]:
            assert res["workload"] in workloads, f"k8s_resource({res['workload']!r}): no such workload"
        for obj in res["objects"]:
            assert obj in named, f"k8s_resource({name!r}) objects: {obj} is not rendered"
        for dep in res["resource_deps"]:
            assert dep in known, f"k8s_resource({name!r}) depends on unknown resource {dep!r}"
    api = next(r for r in tilt.resources.values() if r["workload"] == "coattail-api")
    assert "8000:8000" in api["port_forwards"]


def test_evaluator_catches_a_wrong_path(tmp_path: Path) -> None:
    """Guard: the stubs are not permissive — a bad Dockerfile path or a typo'd keyword fails."""
    text = (REPO / "Tiltfile").read_text()
    bad = tmp_path / "Tiltfile"
    bad.write_text(text.replace("images/spark/Dockerfile", "images/sparkk/Dockerfile"))
    with pytest.raises(sl.StarlarkError, match="does not exist"):
        evaluate(bad)
    bad.write_text(text.replace("port_forwards=", "port_forward="))
    with pytest.raises(sl.StarlarkError):
        evaluate(bad)
    bad.write_text(text.replace("k8s_kind(", "k8s_knd("))
    with pytest.raises(sl.StarlarkError):
        evaluate(bad)
