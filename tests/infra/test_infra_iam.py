"""IAM: one IRSA role per service account, each trusting exactly one namespace/service account, and
least-privilege permissions with no wildcard resources on anything that writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.infra.conftest import as_list, as_map, block, blocks_of, squash

pytestmark = pytest.mark.infra

Loader = Callable[[str], dict[str, Any]]
COMPONENTS = {"connectors", "chains", "spark", "api", "batch"}
KINESIS_READ = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
}
# Actions that AWS only grants on "*" and that read or vend nothing beyond what other grants allow.
STAR_ONLY_READS = {"lakeformation:GetDataAccess"}


def _documents(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(tree.get("data", {}).get("aws_iam_policy_document", {}))


def _statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from blocks_of(document, "statement")
    for dynamic in blocks_of(document, "dynamic"):
        if "statement" in dynamic:  # dynamic "statement" { for_each = ... content { ... } }
            yield from blocks_of(_labelled(dynamic["statement"]), "content")


def _labelled(value: Any) -> dict[str, Any]:
    """The body of a labelled nested block (dynamic "statement")."""
    return as_map(value)


def _permission_statements(all_dirs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement (trust and resource policies excluded)."""
    for tree in all_dirs:
        for name, document in _documents(tree).items():
            for statement in _statements(document):
                if "principals" in statement:
                    continue  # trust / resource policies: principals, not resources, are the scope
                yield name, statement


def _unscoped(resource: str) -> bool:
    """'*' or an ARN whose resource part is only a wildcard (arn:aws:s3:::*, arn:aws:kinesis:r:a:*)."""
    return resource == "*" or resource.endswith((":*", ":::*"))


def _policy(module: Loader, component: str) -> list[dict[str, Any]]:
    return list(_statements(_documents(module("iam"))[component]))


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in as_list(s["actions"])}


def test_one_role_per_service_account(module: Loader) -> None:
    tree = module("iam")
    assert set(as_map(tree["locals"]["components"])) == COMPONENTS
    role = tree["resource"]["aws_iam_role"]["this"]
    assert role["for_each"] == "${local.components}"
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.trust[each.key].json}"
    assert set(as_map(tree["locals"]["policies"])) == COMPONENTS
    sa_type = tree["variable"]["service_accounts"]["type"]
    assert all(c in sa_type for c in COMPONENTS)


def test_trust_is_bound_to_one_namespace_and_service_account(module: Loader) -> None:
    trust = _documents(module("iam"))["trust"]
    assert trust["for_each"] == "${local.components}"
    statements = blocks_of(trust, "statement")
    assert len(statements) == 1
    statement = statements[0]
    assert statement["effect"] == "Allow"
    assert as_list(statement["actions"]) == ["sts:AssumeRoleWithWebIdentity"]
    principal = block(statement, "principals")
    assert principal == {"type": "Federated", "identifiers": ["${var.oidc_provider_arn}"]}
    conditions = {c["variable"]: c for c in blocks_of(statement, "condition")}
    assert set(conditions) == {"${local.oidc_issuer}:sub", "${local.oidc_issuer}:aud"}
    for condition in conditions.values():
        assert condition["test"] == "StringEquals", "StringLike would admit other service accounts"
    sub = as_list(conditions["${local.oidc_issuer}:sub"]["values"])
    assert sub == ["system:serviceaccount:${var.namespace}:${var.service_accounts[each.key]}"]
    assert as_list(conditions["${local.oidc_issuer}:aud"]["values"]) == ["sts.amazonaws.com"]


def test_oidc_issuer_is_derived_from_the_provider_arn(module: Loader) -> None:
    issuer = "".join(module("iam")["locals"]["oidc_issuer"].split())
    assert issuer == '${element(split(":oidc-provider/",var.oidc_provider_arn),1)}'


def test_no_wildcard_resources_on_write_actions(all_dirs: list[dict[str, Any]]) -> None:
    checked = 0
    for name, statement in _permission_statements(all_dirs):
        checked += 1
        actions = set(as_list(statement["actions"]))
        for action in actions:
            assert "*" not in action.split(":")[-1], f"{name}: wildcard action {action}"
        resources = as_list(statement.get("resources", []))
        assert resources, f"{name}/{statement.get('sid')}: statement without resources"
        if statement.get("effect", "Allow") == "Allow" and any(_unscoped(r) for r in resources):
            assert actions <= STAR_ONLY_READS, f"{name}/{statement.get('sid')}: {sorted(actions)} on '*'"
    assert checked >= 15


def test_connectors_only_put_to_the_streams(module: Loader) -> None:
    statements = _policy(module, "connectors")
    assert _actions(statements) <= {
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "kinesis:PutRecord",
        "kinesis:PutRecords",
        "kms:GenerateDataKey",
    }
    put = next(s for s in statements if "kinesis:PutRecords" in as_list(s["actions"]))
    assert set(as_list(put["resources"])) == {"${var.trades_stream_arn}", "${var.dlq_stream_arn}"}


def _by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["sid"]: s for s in statements}


def _onchain_dynamic(module: Loader, component: str, sid: str) -> dict[str, Any]:
    """The dynamic statement `sid` of a policy, which must exist only where the on-chain streams do."""
    document = _documents(module("iam"))[component]
    for dynamic in blocks_of(document, "dynamic"):
        body = _labelled(dynamic["statement"])
        if block(body, "content")["sid"] == sid:
            assert body["for_each"] == "${local.onchain}", f"{component}/{sid} is not gated on the streams"
            return block(body, "content")
    raise AssertionError(f"{component} has no statement {sid}")


def test_onchain_grants_exist_only_with_the_streams(module: Loader) -> None:
    onchain = module("iam")["locals"]["onchain"]
    # Both hcl2 parsers' renderings compare equal once quotes are normalised.
    assert squash(onchain).replace("'", '"') == squash('${var.onchain_enabled ? ["onchain"] : []}')


def test_chain_connectors_put_onchain_and_only_read_trades(module: Loader) -> None:
    statements = _policy(module, "chains")
    assert _actions(statements) <= {*KINESIS_READ, "kinesis:PutRecord", "kinesis:PutRecords"} | {
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    read = _by_sid(statements)["ReadTradesForPrices"]
    assert set(as_list(read["actions"])) == KINESIS_READ
    assert as_list(read["resources"]) == ["${var.trades_stream_arn}"]
    put = _onchain_dynamic(module, "chains", "PutOnchainEvents")
    assert {"kinesis:PutRecord", "kinesis:PutRecords"} <= set(as_list(put["actions"]))
    assert as_list(put["resources"]) == ["${var.onchain_stream_arn}", "${var.onchain_dlq_stream_arn}"]
    # Nothing else: no trades put, no lake, no table.
    for statement in statements:
        resources = set(as_list(statement["resources"]))
        if any(a.startswith("kinesis:Put") for a in as_list(statement["actions"])):
            assert resources <= {"${var.onchain_stream_arn}", "${var.onchain_dlq_stream_arn}"}
        assert not any(a.split(":")[0] in ("s3", "glue", "dynamodb") for a in as_list(statement["actions"]))


def test_exchange_connectors_get_no_onchain_grant(module: Loader) -> None:
    for statement in _policy(module, "connectors"):
        assert not any("onchain" in r for r in as_list(statement["resources"]))


def test_spark_reads_onchain_and_dead_letters_it(module: Loader) -> None:
    read = _onchain_dynamic(module, "spark", "ReadOnchain")
    assert set(as_list(read["actions"])) == KINESIS_READ
    assert as_list(read["resources"]) == ["${var.onchain_stream_arn}"]
    dlq = _onchain_dynamic(module, "spark", "DeadLetterOnchain")
    assert as_list(dlq["resources"]) == ["${var.onchain_dlq_stream_arn}"]
    assert not {a for a in as_list(dlq["actions"]) if a.startswith("kinesis:Get")}


KINESIS_PUT = {
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
    "kinesis:PutRecord",
    "kinesis:PutRecords",
}
ALERTS_STREAM = "${var.alerts_stream_arn}"


def _gated_dynamic(module: Loader, component: str, sid: str, gate: str) -> dict[str, Any] | None:
    """The content of dynamic statement `sid` of a policy (its for_each must be `gate`), or None."""
    document = _documents(module("iam"))[component]
    for dynamic in blocks_of(document, "dynamic"):
        body = _labelled(dynamic["statement"])
        if block(body, "content")["sid"] == sid:
            assert body["for_each"] == gate, f"{component}/{sid} is not gated on {gate}"
            return block(body, "content")
    return None


def test_alerts_grant_exists_only_with_the_stream(module: Loader) -> None:
    tree = module("iam")
    gate = tree["locals"]["alerts_out"]
    assert squash(gate).replace("'", '"') == squash('${var.alerts_out_enabled ? ["alerts"] : []}')
    assert tree["variable"]["alerts_out_enabled"]["default"] is False
    assert tree["variable"]["alerts_stream_arn"]["default"] is None


def test_spark_publishes_alerts_to_the_alerts_stream_only(module: Loader) -> None:
    publish = _gated_dynamic(module, "spark", "PublishAlerts", "${local.alerts_out}")
    assert publish is not None, "spark has no PublishAlerts statement"
    assert set(as_list(publish["actions"])) == KINESIS_PUT
    assert as_list(publish["resources"]) == [ALERTS_STREAM]
    # No other spark statement names the stream, and none reads it.
    others = [s for s in _policy(module, "spark") if s["sid"] != "PublishAlerts"]
    assert not any(ALERTS_STREAM in as_list(s["resources"]) for s in others)


@pytest.mark.parametrize("component", sorted(COMPONENTS - {"spark"}))
def test_no_other_role_touches_the_alerts_stream(module: Loader, component: str) -> None:
    assert _gated_dynamic(module, component, "PublishAlerts", "${local.alerts_out}") is None
    for statement in _policy(module, component):
        resources = as_list(statement["resources"])
        assert not any("alerts_stream" in r for r in resources), f"{component}/{statement['sid']}"


def test_api_only_reads_the_alerts_table(module: Loader) -> None:
    statements = _policy(module, "api")
    actions = _actions(statements)
    assert {"dynamodb:Query", "dynamodb:GetItem"} <= actions
    assert not {
        a
        for a in actions
        if a.startswith("dynamodb:")
        and not a.split(":")[1].startswith(("Get", "Query", "Scan", "BatchGet", "Describe"))
    }
    read = next(s for s in statements if "dynamodb:Query" in as_list(s["actions"]))
    assert set(as_list(read["resources"])) == {"${var.alerts_table_arn}", "${var.alerts_table_arn}/index/*"}


def test_spark_reads_the_stream_and_writes_lake_and_alerts(module: Loader) -> None:
    statements = {s["sid"]: s for s in _policy(module, "spark")}
    assert as_list(statements["ReadTrades"]["resources"]) == ["${var.trades_stream_arn}"]
    assert not any(a.startswith("kinesis:Put") for a in as_list(statements["ReadTrades"]["actions"]))
    assert as_list(statements["DeadLetter"]["resources"]) == ["${var.dlq_stream_arn}"]
    assert as_list(statements["WriteAlerts"]["resources"]) == ["${var.alerts_table_arn}"]
    # What the pipeline's hot store calls on eks: BatchWriteItem, and DescribeTable while it waits at start.
    assert {"dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:PutItem"} <= set(
        as_list(statements["WriteAlerts"]["actions"])
    )
    assert statements["LakehouseCatalog"]["resources"] == "${local.glue_resources}"
    assert "glue:DeleteTable" not in as_list(statements["LakehouseCatalog"]["actions"])
    assert statements["ReadWriteObjects"][
        "resources"
    ] == '${[for arn in local.spark_buckets : "${arn}/*"]}' or (
        "local.spark_buckets" in statements["ReadWriteObjects"]["resources"]
    )


def test_glue_access_is_one_database(module: Loader) -> None:
    glue_resources = as_list(module("iam")["locals"]["glue_resources"])
    assert glue_resources == ["${var.glue_catalog_arn}", "${var.glue_database_arn}", "${var.glue_tables_arn}"]
    tables = module("glue")["locals"]["tables_arn"]
    assert tables.endswith(":table/${var.database_name}/*")


def test_bucket_scopes(module: Loader) -> None:
    local = module("iam")["locals"]
    assert "raw" in local["spark_buckets"]
    assert "checkpoint" in local["spark_buckets"]
    assert "query-results" not in local["spark_buckets"]
    assert "checkpoint" not in local["batch_buckets"]


def test_batch_publishes_alarms_only_when_monitoring_is_on(module: Loader) -> None:
    batch = _documents(module("iam"))["batch"]
    dynamics = [_labelled(d["statement"]) for d in blocks_of(batch, "dynamic")]
    sns = [d for d in dynamics if block(d, "content")["sid"] == "NotifyFailures"]
    assert len(sns) == 1
    assert "var.enable_alarm_publish ?" in sns[0]["for_each"]
    assert "var.alarm_topic_arn" in sns[0]["for_each"]
    content = block(sns[0], "content")
    assert as_list(content["actions"]) == ["sns:Publish"]
    assert as_list(content["resources"]) == ["${statement.value}"]
    assert not any("sns:" in a for s in blocks_of(batch, "statement") for a in as_list(s["actions"]))


def test_batch_publishes_the_wallet_store_on_the_alerts_table_only(module: Loader) -> None:
    statements = {s["sid"]: s for s in _policy(module, "batch")}
    wallets = statements["WriteWalletStore"]
    assert as_list(wallets["resources"]) == ["${var.alerts_table_arn}"]
    assert set(as_list(wallets["actions"])) == {
        "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable",
    }  # fmt: skip
    # No other statement of the batch role touches DynamoDB (no deletes of the table, no scans).
    others = [s for sid, s in statements.items() if sid != "WriteWalletStore"]
    assert not any(a.startswith("dynamodb:") for s in others for a in as_list(s["actions"]))
