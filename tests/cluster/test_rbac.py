"""Least privilege, asked of the API server itself: each service account of the release can do exactly
what its component needs (SelfSubjectRulesReview as that account) and none of a list of things no
component may do (SubjectAccessReview through `kubectl auth can-i --as`)."""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import Release

pytestmark = pytest.mark.cluster

SPARK_DRIVER = {
    ("", "pods"): {"create", "get", "list", "watch", "delete", "deletecollection", "patch"},
    ("", "services"): {"create", "get", "list", "watch", "delete", "deletecollection"},
    ("", "configmaps"): {"create", "get", "list", "watch", "delete", "deletecollection"},
    ("", "persistentvolumeclaims"): {"create", "get", "list", "watch", "delete", "deletecollection"},
}
BATCH = {
    ("sparkoperator.k8s.io", "sparkapplications"): {"create", "get", "list", "watch", "delete"},
    ("sparkoperator.k8s.io", "sparkapplications/status"): {"get"},
}
# What each component's account needs in its namespace; the API, connectors and chains need nothing.
NEEDS: dict[str, dict[tuple[str, str], set[str]]] = {
    "coattail-spark": SPARK_DRIVER,
    "coattail-batch": BATCH,
    "coattail-api": {},
    "coattail-connectors": {},
    "coattail-chains": {},
}
# Granted to every authenticated user by the bootstrap policy: asking who you are and what you may do.
EVERYONE = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"}
# (verb, resource, where) no component may do; "other" is a namespace outside the release.
FORBIDDEN = [
    ("get", "secrets", "own"),
    ("list", "secrets", "own"),
    ("create", "pods/exec", "own"),
    ("create", "pods/attach", "own"),
    ("create", "pods/portforward", "own"),
    ("create", "serviceaccounts/token", "own"),
    ("create", "rolebindings", "own"),
    ("escalate", "roles", "own"),
    ("impersonate", "serviceaccounts", "own"),
    ("update", "sparkapplications.sparkoperator.k8s.io", "own"),
    ("list", "pods", "other"),
    ("create", "sparkapplications.sparkoperator.k8s.io", "other"),
    ("list", "nodes", "cluster"),
    ("list", "namespaces", "cluster"),
]


def _rules(release: Release, account: str) -> dict[tuple[str, str], set[str]]:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": release.namespace},
    }
    done = release.kube.kubectl(
        "create",
        "--validate=false",  # client-side validation would list CRDs, which these accounts may not
        "-f",
        "-",
        "-o",
        "json",
        f"--as=system:serviceaccount:{release.namespace}:{account}",
        stdin=json.dumps(review),
    )
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in json.loads(done.stdout)["status"]["resourceRules"]:
        for group in rule.get("apiGroups", [""]):
            for resource in rule.get("resources", []):
                if resource not in EVERYONE:
                    granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def _can(release: Release, account: str, verb: str, resource: str, where: str) -> bool:
    ns = {"own": ["-n", release.namespace], "other": ["-n", "kube-system"], "cluster": []}[where]
    # `can-i create pods/exec` would ask about a pod *named* exec: subresources go in their own flag.
    kind, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    done = release.kube.kubectl(
        "auth",
        "can-i",
        verb,
        kind,
        *extra,
        *ns,
        f"--as=system:serviceaccount:{release.namespace}:{account}",
        check=False,
    )
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def test_the_release_has_exactly_these_service_accounts(release: Release) -> None:
    found = {a["metadata"]["name"] for a in release.kube.items("serviceaccounts", release.namespace)} - {
        "default"
    }
    assert found == set(NEEDS)


@pytest.mark.parametrize("account", sorted(NEEDS))
def test_each_account_has_exactly_what_its_component_needs(release: Release, account: str) -> None:
    assert _rules(release, account) == NEEDS[account]


@pytest.mark.parametrize("account", sorted(NEEDS))
def test_no_account_can_reach_secrets_exec_or_other_namespaces(release: Release, account: str) -> None:
    allowed = [
        f"{verb} {resource} ({where})"
        for verb, resource, where in FORBIDDEN
        if _can(release, account, verb, resource, where)
    ]
    assert not allowed, f"{account} may: {allowed}"


def test_the_checks_see_a_grant_when_there_is_one(release: Release) -> None:
    # The negative checks above are only worth something if can-i says yes where RBAC grants.
    assert _can(release, "coattail-batch", "create", "sparkapplications.sparkoperator.k8s.io", "own")
    assert _can(release, "coattail-spark", "delete", "pods", "own")
    assert _can(release, "coattail-batch", "get", "sparkapplications.sparkoperator.k8s.io/status", "own")
