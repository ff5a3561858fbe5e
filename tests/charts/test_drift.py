"""Drift between the chart and the code: every command, env var and setting the chart renders must be
one the code reads. Commands run with --help through .venv/bin/coattail (a missing one fails), and
`coattail config check` runs with exactly each container's rendered environment and config folder."""

from __future__ import annotations

import functools
import os
import re
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.charts.helpers import COATTAIL, PROFILES, REPO, TIERS, Doc, find, pod_specs, render, run

pytestmark = pytest.mark.charts

SITE = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
# Variables outside COATTAIL_* the chart may set, each with the source that reads it (checked below).
EXTERNAL_ENV: dict[str, tuple[Path, str]] = {
    "SYMBOLS": (REPO / "connectors", '"SYMBOLS"'),
    "AWS_REGION": (SITE / "botocore", "AWS_REGION"),
    "AWS_DEFAULT_REGION": (SITE / "botocore", "AWS_DEFAULT_REGION"),
    "AWS_ENDPOINT_URL_S3": (SITE / "botocore", "AWS_ENDPOINT_URL"),  # AWS_ENDPOINT_URL_<SERVICE>
    "AWS_SHARED_CREDENTIALS_FILE": (SITE / "botocore", "AWS_SHARED_CREDENTIALS_FILE"),
    "COATTAIL_CONFIG_DIR": (REPO / "coattail" / "settings", '"COATTAIL_CONFIG_DIR"'),
    "COATTAIL_STATE_DIR": (REPO / "coattail" / "settings", '"COATTAIL_STATE_DIR"'),
    "COATTAIL_JARS_DIR": (REPO / "coattail" / "devservices", '"COATTAIL_JARS_DIR"'),
}
RENDERS = [(p, t) for p in PROFILES for t in TIERS]


@functools.cache
def image_env(image: str) -> dict[str, str]:
    """ENV of the last stage of images/<image>/Dockerfile (and the stages it is built FROM)."""
    text = (REPO / "images" / image / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for stage in re.split(r"^FROM\s+", text, flags=re.M)[1:]:
        head = stage.split("\n", 1)[0]
        if not re.search(r"\sAS\s+(base|dev|runtime)\b", head) and " AS " in head:
            continue  # build stages do not reach the runtime image
        for line in re.findall(r"^ENV\s+(.+)$", stage, re.M):
            env.update(dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line)))
    return env


@functools.cache
def source_mentions(folder: Path, needle: str) -> bool:
    return any(needle in path.read_text(errors="ignore") for path in folder.rglob("*.py"))


def secret_placeholder(name: str) -> str:
    """What a secretKeyRef variable holds in the check: a URL where the setting is one (RPC URLs)."""
    return "https://placeholder.invalid/secret" if name.endswith("_URL") else "placeholder-secret"


def container_envs(docs: list[Doc]) -> list[tuple[str, list[str], dict[str, str], dict[str, str]]]:
    """(where, argv, env, config files) per container, with envFrom resolved from rendered ConfigMaps."""
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in find(docs, "ConfigMap")}
    out = []

    def resolve(
        where: str,
        argv: list[str],
        env_from: list[Doc],
        env: list[Doc],
        volumes: list[Doc],
        mounts: list[Doc],
    ) -> None:
        # What the image sets comes first (the container's own env wins), and is checked the same way.
        image = "spark" if where.startswith("SparkApplication") else "python"
        values: dict[str, str] = {k: v for k, v in image_env(image).items() if k.startswith("COATTAIL_")}
        for source in env_from:
            assert "configMapRef" in source, f"{where}: envFrom {source} (secrets go in as files)"
            values.update(configmaps[source["configMapRef"]["name"]])
        for item in env:
            values[item["name"]] = item.get("value", secret_placeholder(item["name"]))
        files: dict[str, str] = {}
        config_dir = values.get("COATTAIL_CONFIG_DIR", "")
        for mount in mounts:
            if mount["mountPath"] != config_dir:
                continue
            volume = next(v for v in volumes if v["name"] == mount["name"])
            data = configmaps[volume["configMap"]["name"]]
            for item in volume["configMap"]["items"]:
                files[item["path"]] = data[item["key"]]
        assert files, f"{where}: nothing mounted at COATTAIL_CONFIG_DIR={config_dir!r}"
        out.append((where, argv, values, files))

    for workload, spec in pod_specs(docs):
        for c in spec["containers"]:
            resolve(
                f"{workload['kind']}/{workload['metadata']['name']}",
                [*c["command"], *c.get("args", [])],
                c.get("envFrom") or [],
                c.get("env") or [],
                spec.get("volumes") or [],
                c.get("volumeMounts") or [],
            )
    for app in find(docs, "SparkApplication"):
        spec = app["spec"]
        main_file = spec["mainApplicationFile"]
        assert main_file == "local:///opt/coattail/jobs/spark_main.py", main_file
        for role in ("driver", "executor"):
            r = spec[role]
            resolve(
                f"SparkApplication/{role}",
                ["coattail", "pipeline", "run", *spec.get("arguments", [])],
                r.get("envFrom") or [],
                r.get("env") or [],
                spec["volumes"],
                r.get("volumeMounts") or [],
            )
    return out


def all_containers() -> list[tuple[str, list[str], dict[str, str], dict[str, str]]]:
    found = []
    for profile, tier in RENDERS:
        found += [(f"{profile}/{tier} {w}", a, e, f) for w, a, e, f in container_envs(render(profile, tier))]
    return found


def test_spark_entry_file_is_in_the_image() -> None:
    dockerfile = (REPO / "images" / "spark" / "Dockerfile").read_text()
    assert re.search(r"^COPY jobs/spark_main\.py /opt/coattail/jobs/spark_main\.py$", dockerfile, re.M)
    text = (REPO / "jobs" / "spark_main.py").read_text()
    assert '"pipeline", "run"' in text


def test_every_rendered_command_exists() -> None:
    """`<command> <args> --help` succeeds for every distinct container command line."""
    argvs = {tuple(argv) for _, argv, _, _ in all_containers()}
    assert argvs, "no containers rendered"
    failures = []

    def check(argv: tuple[str, ...]) -> str | None:
        assert argv[0] == "coattail", f"container runs {argv[0]!r}, not the coattail CLI"
        result = run([COATTAIL, *argv[1:], "--help"], timeout=120)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return f"{shlex.join(argv)} --help -> exit {result.returncode}: {' | '.join(tail)}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(check, sorted(argvs)) if f]
    assert not failures, "commands the chart runs that the CLI does not have:\n" + "\n".join(failures)


def test_every_rendered_env_var_is_read_by_the_code() -> None:
    for where, _, env, _ in all_containers():
        for name in env:
            if name.startswith("COATTAIL_") and name not in EXTERNAL_ENV:
                continue  # validated by `coattail config check` below
            assert name in EXTERNAL_ENV, f"{where}: env {name} is read by nothing we know of"
            folder, needle = EXTERNAL_ENV[name]
            assert source_mentions(folder, needle), f"{where}: {name}: {needle} not found under {folder}"


def test_config_check_accepts_every_rendered_environment(tmp_path: Path) -> None:
    """`coattail config check` with each container's exact env and mounted config (deduplicated)."""
    # Every distinct container environment once (the tier aside), and every profile x tier once: the
    # tier only reaches the code through the shared env ConfigMap, so this covers the whole matrix
    # with a third of the processes.
    chosen: dict[tuple[tuple[str, str], ...], tuple[str, dict[str, str], dict[str, str]]] = {}
    for where, _, env, files in all_containers():
        without_tier = tuple(sorted((k, v) for k, v in env.items() if k != "COATTAIL_TIER"))
        profile_tier = (("__render__", where.split(" ", 1)[0]),)
        for key in (without_tier + tuple(sorted(files.items())), profile_tier):
            chosen.setdefault(key, (where, env, files))
    cases: dict[tuple[tuple[str, str], ...], tuple[str, dict[str, str]]] = {}
    for where, env, files in chosen.values():
        key = tuple(sorted(env.items())) + tuple(sorted(files.items()))
        cases.setdefault(key, (where, {**env, **{f"__file__{k}": v for k, v in files.items()}}))
    assert len(cases) >= len(RENDERS)

    def check(index: int, where: str, combined: dict[str, str]) -> str | None:
        root = tmp_path / str(index)
        config = root / "config"
        env = {k: v for k, v in combined.items() if not k.startswith("__file__")}
        for name, text in combined.items():
            if name.startswith("__file__"):
                path = config / name.removeprefix("__file__")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        env["COATTAIL_CONFIG_DIR"] = str(config)
        env["COATTAIL_STATE_DIR"] = str(root / "state")
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        env["HOME"] = str(root)
        result = run([COATTAIL, "config", "check"], env=env, timeout=120)
        if result.returncode != 0:
            return f"{where}: {(result.stderr or result.stdout).strip()}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda item: check(item[0], *item[1]), enumerate(cases.values()))
        failures = [r for r in results if r]
    assert not failures, "settings the code rejects:\n" + "\n".join(failures)


def test_config_check_really_rejects_an_unknown_setting(tmp_path: Path) -> None:
    """Guard for the test above: an unknown COATTAIL_ key in the rendered env does fail the check."""
    docs = render("local", "small", ("config.extra.stream\\.kafka\\.bogus_key=1",))
    (where, _, env, files), *_ = container_envs(docs)
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {
        **env,
        "COATTAIL_CONFIG_DIR": str(tmp_path),
        "COATTAIL_STATE_DIR": str(tmp_path / "s"),
        "PATH": os.environ.get("PATH", ""),
    }
    result = run([COATTAIL, "config", "check"], env=env)
    assert result.returncode == 2, (where, result.stdout, result.stderr)
    assert "stream.kafka.bogus_key" in result.stderr + result.stdout


def test_spark_catalog_name_is_the_pipelines() -> None:
    """The chart's Iceberg sparkConf configures the catalog the pipeline actually uses."""
    from jobs.session import CATALOG

    (app,) = find(render("local", "small"), "SparkApplication")
    assert f"spark.sql.catalog.{CATALOG}" in app["spec"]["sparkConf"]


def test_batch_spark_entry_file_is_in_the_image() -> None:
    from coattail.settings.models import BatchSparkApplication

    main_file = BatchSparkApplication().main_application_file.removeprefix("local://")
    dockerfile = (REPO / "images" / "spark" / "Dockerfile").read_text()
    assert re.search(rf"^COPY jobs/batch/spark_main\.py {re.escape(main_file)}$", dockerfile, re.M)


# Metrics the alert rules need that no component exports yet (reported to the pipeline owner): the
# rule is kept so it fires once the metric exists; everything else must exist in the code today.
PENDING_METRICS = {"coattail_pipeline_stream_lag_seconds"}


def test_alert_rules_use_metrics_the_code_exports() -> None:
    (rule,) = find(render("all-features"), "PrometheusRule")
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    names = set(re.findall(r"\b(coattail_[a-z_]+)\b", exprs))
    assert names
    for name in sorted(names - PENDING_METRICS):
        base = name.removesuffix("_total")
        assert any(
            source_mentions(REPO / folder, needle)
            for folder in ("connectors", "api", "jobs")
            for needle in (f'"{name}"', f'"{base}"', f'_{base.split("_", 2)[-1]}"')
        ), f"PrometheusRule uses {name}, which no component exports"
