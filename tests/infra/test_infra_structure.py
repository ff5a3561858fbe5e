"""Structure of infra/: the resources the workloads depend on, read from the HCL itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coattail.hotstore import ALERTS_TABLE
from coattail.infra_values import ALERTS_OUTPUT, ONCHAIN_OUTPUTS, REQUIRED_OUTPUTS
from tests.infra.conftest import INFRA, MODULES, as_list, as_map, block, blocks_of, squash

pytestmark = pytest.mark.infra

Loader = Callable[[str], dict[str, Any]]


def _resource(tree: dict[str, Any], rtype: str, name: str) -> dict[str, Any]:
    body = tree.get("resource", {}).get(rtype, {}).get(name)
    assert body is not None, f"resource {rtype}.{name} is missing"
    return dict(body)


def _aws_pin(tree: dict[str, Any]) -> dict[str, Any]:
    terraform = tree["terraform"][0]
    providers = as_map(block(terraform, "required_providers"))
    return as_map(providers["aws"])


@pytest.mark.parametrize("name", ["<root>", *MODULES])
def test_every_directory_pins_the_aws_provider_major(root: dict[str, Any], module: Loader, name: str) -> None:
    tree = root if name == "<root>" else module(name)
    aws = _aws_pin(tree)
    assert aws["source"] == "hashicorp/aws"
    assert aws["version"] == "~> 6.0"


def test_root_composes_every_module(root: dict[str, Any]) -> None:
    sources = {body["source"] for body in root["module"].values()}
    assert sources == {f"./modules/{m}" for m in MODULES}


def test_backend_example_is_not_active() -> None:
    # A live backend block would make `init` need an existing state bucket.
    assert (INFRA / "backend.tf.example").is_file()
    assert not (INFRA / "backend.tf").exists()


# --- DynamoDB (seed §3.4): the Terraform table must be the one the code creates and queries -------


def test_alerts_table_keys_and_billing(module: Loader) -> None:
    table = _resource(module("dynamodb"), "aws_dynamodb_table", "alerts")
    assert table["billing_mode"] == ALERTS_TABLE.billing_mode
    assert table["hash_key"] == ALERTS_TABLE.hash_key
    assert table["range_key"] == ALERTS_TABLE.range_key
    attributes = {a["name"]: a["type"] for a in blocks_of(table, "attribute")}
    assert attributes == ALERTS_TABLE.attributes


def test_alerts_table_indexes(module: Loader) -> None:
    table = _resource(module("dynamodb"), "aws_dynamodb_table", "alerts")
    indexes = {
        i["name"]: (i["hash_key"], i["range_key"], i["projection_type"])
        for i in blocks_of(table, "global_secondary_index")
    }
    assert indexes == {i.name: (i.hash_key, i.range_key, i.projection) for i in ALERTS_TABLE.indexes}


def test_alerts_table_ttl_encryption_and_pitr(root: dict[str, Any], module: Loader) -> None:
    tree = module("dynamodb")
    table = _resource(tree, "aws_dynamodb_table", "alerts")
    ttl = block(table, "ttl")
    assert ttl == {"attribute_name": ALERTS_TABLE.ttl_attribute, "enabled": True}
    assert block(table, "server_side_encryption")["enabled"] is True
    assert block(table, "point_in_time_recovery")["enabled"] == "${var.point_in_time_recovery}"
    assert root["variable"]["point_in_time_recovery"]["default"] is True
    assert root["module"]["hot_store"]["point_in_time_recovery"] == "${var.point_in_time_recovery}"


# --- Kinesis ------------------------------------------------------------------------------------


def test_trades_stream_is_on_demand_and_kms_encrypted(module: Loader) -> None:
    stream = _resource(module("kinesis"), "aws_kinesis_stream", "trades")
    assert block(stream, "stream_mode_details")["stream_mode"] == "ON_DEMAND"
    assert stream["encryption_type"] == "KMS"
    assert stream["kms_key_id"] == "${var.kms_key_id}"


def test_dead_letter_stream_keeps_48_hours(module: Loader) -> None:
    tree = module("kinesis")
    dlq = _resource(tree, "aws_kinesis_stream", "dlq")
    assert dlq["retention_period"] == "${var.dlq_retention_hours}"
    assert tree["variable"]["dlq_retention_hours"]["default"] == 48
    assert dlq["encryption_type"] == "KMS"
    assert dlq["name"] == "${var.name}-trades-dlq"


@pytest.mark.parametrize(("name", "suffix"), [("onchain", "onchain"), ("onchain_dlq", "onchain-dlq")])
def test_onchain_streams_mirror_the_trades_streams(module: Loader, name: str, suffix: str) -> None:
    tree = module("kinesis")
    stream = _resource(tree, "aws_kinesis_stream", name)
    assert stream["name"] == f"${{var.name}}-{suffix}"
    assert stream["count"] == "${var.onchain_enabled ? 1 : 0}"
    assert stream["encryption_type"] == "KMS"
    assert stream["kms_key_id"] == "${var.kms_key_id}"
    mode = block(stream, "stream_mode_details")["stream_mode"]
    if name == "onchain":
        assert mode == "ON_DEMAND"
    else:
        assert mode == "PROVISIONED"
        assert stream["retention_period"] == "${var.dlq_retention_hours}"
        assert stream["shard_count"] == "${var.dlq_shard_count}"


def test_onchain_streams_follow_the_tier(root: dict[str, Any]) -> None:
    """On for the tiers whose connectors include a chain unless enable_onchain_streams says."""
    from coattail.infra_values import ONCHAIN_TIERS

    assert root["variable"]["enable_onchain_streams"]["default"] is None
    expr = squash(root["locals"]["onchain_enabled"])  # parsers render `null` differently
    assert expr.startswith("${var.enable_onchain_streams!=")
    tiers = ",".join(f"'{t}'" for t in ONCHAIN_TIERS)  # as the HCL parser renders a list
    assert expr.endswith(f"?var.enable_onchain_streams:contains([{tiers}],var.feature_tier)}}")
    assert root["module"]["streams"]["onchain_enabled"] == "${local.onchain_enabled}"
    irsa = root["module"]["irsa"]
    assert irsa["onchain_enabled"] == "${local.onchain_enabled}"
    assert irsa["onchain_stream_arn"] == "${module.streams.onchain_stream_arn}"
    assert irsa["onchain_dlq_stream_arn"] == "${module.streams.onchain_dlq_stream_arn}"


def test_alerts_stream_is_gated_encrypted_and_one_shard(module: Loader) -> None:
    tree = module("kinesis")
    stream = _resource(tree, "aws_kinesis_stream", "alerts")
    assert stream["count"] == "${var.alerts_enabled ? 1 : 0}"
    assert tree["variable"]["alerts_enabled"]["default"] is False
    assert stream["encryption_type"] == "KMS"
    assert stream["kms_key_id"] == "${var.kms_key_id}"
    # Alerts are a trickle: one provisioned shard, cheaper than an idle on-demand stream.
    assert block(stream, "stream_mode_details")["stream_mode"] == "PROVISIONED"
    assert stream["shard_count"] == "${var.alerts_shard_count}"
    assert tree["variable"]["alerts_shard_count"]["default"] == 1
    assert stream["retention_period"] == "${var.alerts_retention_hours}"
    assert tree["variable"]["alerts_retention_hours"]["default"] == 24
    outputs = tree["output"]
    assert squash(outputs["alerts_stream_name"]["value"]) == "${one(aws_kinesis_stream.alerts[*].name)}"
    assert squash(outputs["alerts_stream_arn"]["value"]) == "${one(aws_kinesis_stream.alerts[*].arn)}"


def test_alerts_stream_name_is_the_one_the_publisher_defaults_to(module: Loader) -> None:
    """<name>-alerts: `coattail-alerts` (alerts_out.kinesis_stream_name's default) for name=coattail."""
    from coattail.settings import load_settings

    name = _resource(module("kinesis"), "aws_kinesis_stream", "alerts")["name"]
    assert name == "${var.name}-alerts"
    default = load_settings("small").alerts_out.kinesis_stream_name
    assert name.replace("${var.name}", "coattail") == default


def test_alerts_stream_is_opt_in_at_the_root(root: dict[str, Any]) -> None:
    assert root["variable"]["alerts_out_enabled"]["default"] is False
    assert root["variable"]["alerts_out_retention_hours"]["default"] == 24
    streams = root["module"]["streams"]
    assert streams["alerts_enabled"] == "${var.alerts_out_enabled}"
    assert streams["alerts_retention_hours"] == "${var.alerts_out_retention_hours}"
    irsa = root["module"]["irsa"]
    assert irsa["alerts_out_enabled"] == "${var.alerts_out_enabled}"
    assert irsa["alerts_stream_arn"] == "${module.streams.alerts_stream_arn}"
    outputs = root["output"]
    assert outputs[ALERTS_OUTPUT]["value"] == "${module.streams.alerts_stream_name}"
    assert outputs["kinesis_alerts_stream_arn"]["value"] == "${module.streams.alerts_stream_arn}"
    # checkov's all-options run must see the gated stream too.
    all_features = (Path(__file__).parent / "fixtures" / "all-features.tfvars").read_text(encoding="utf-8")
    assert re.search(r"^alerts_out_enabled\s*=\s*true$", all_features, re.MULTILINE)


def test_streams_default_to_the_aws_managed_kinesis_key(root: dict[str, Any]) -> None:
    assert squash(root["module"]["streams"]["kms_key_id"]) == squash(
        '${coalesce(var.kms_key_arn,"alias/aws/kinesis")}'
    )


# --- S3 lakehouse (seed §2, §10.3) --------------------------------------------------------------

LIFECYCLE = {
    "raw": "raw",
    "processed": "processed",
    "checkpoint": "checkpoint",
    "query_results": "query-results",
}


def _lifecycle_rule(tree: dict[str, Any], name: str) -> dict[str, Any]:
    config = _resource(tree, "aws_s3_bucket_lifecycle_configuration", name)
    assert config["bucket"] == f'${{aws_s3_bucket.this["{LIFECYCLE[name]}"].id}}'
    rule = block(config, "rule")
    assert rule["status"] == "Enabled"
    return rule


def test_four_buckets(module: Loader) -> None:
    tree = module("s3-lakehouse")
    zones = as_list(tree["locals"]["zones"])
    assert zones == ["raw", "processed", "checkpoint", "query-results"]
    assert _resource(tree, "aws_s3_bucket", "this")["for_each"] == "${local.buckets}"


def test_raw_zone_tiers_at_30_days_and_expires_at_90(module: Loader) -> None:
    rule = _lifecycle_rule(module("s3-lakehouse"), "raw")
    assert block(rule, "transition") == {"days": 30, "storage_class": "STANDARD_IA"}
    assert block(rule, "expiration") == {"days": 90}


@pytest.mark.parametrize("name", ["checkpoint", "query_results"])
def test_scratch_buckets_expire_after_7_days(module: Loader, name: str) -> None:
    rule = _lifecycle_rule(module("s3-lakehouse"), name)
    assert block(rule, "expiration") == {"days": 7}


def test_longest_bucket_name_fits_63_characters(module: Loader) -> None:
    assert '=> "${var.name}-${zone}-${var.account_id}"' in module("s3-lakehouse")["locals"]["buckets"]
    # prefix (<= 16) - environment (<= 10) - zone - account id (12), per the root validations
    longest = 16 + 1 + 10 + 1 + len("query-results") + 1 + 12
    assert longest <= 63


@pytest.mark.parametrize("name", sorted(LIFECYCLE))
def test_every_bucket_aborts_stale_multipart_uploads(module: Loader, name: str) -> None:
    rule = _lifecycle_rule(module("s3-lakehouse"), name)
    assert 1 <= block(rule, "abort_incomplete_multipart_upload")["days_after_initiation"] <= 7


def test_processed_is_versioned_and_expires_old_versions(module: Loader) -> None:
    tree = module("s3-lakehouse")
    versioning = _resource(tree, "aws_s3_bucket_versioning", "processed")
    assert versioning["bucket"] == '${aws_s3_bucket.this["processed"].id}'
    assert block(versioning, "versioning_configuration")["status"] == "Enabled"
    rule = _lifecycle_rule(tree, "processed")
    assert "expiration" not in rule, "current Iceberg data must never expire"
    assert "noncurrent_version_expiration" in rule


def test_every_bucket_is_encrypted(module: Loader) -> None:
    tree = module("s3-lakehouse")
    sse = _resource(tree, "aws_s3_bucket_server_side_encryption_configuration", "this")
    assert sse["for_each"] == "${aws_s3_bucket.this}"
    default = block(block(sse, "rule"), "apply_server_side_encryption_by_default")
    algorithm = squash(default["sse_algorithm"])
    assert algorithm.startswith("${var.kms_key_arn==")
    assert '?"AES256":"aws:kms"' in algorithm


def test_public_access_is_blocked_on_every_bucket(module: Loader) -> None:
    tree = module("s3-lakehouse")
    pab = _resource(tree, "aws_s3_bucket_public_access_block", "this")
    assert pab["for_each"] == "${aws_s3_bucket.this}"
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert pab[flag] is True, flag
    ownership = _resource(tree, "aws_s3_bucket_ownership_controls", "this")
    assert block(ownership, "rule")["object_ownership"] == "BucketOwnerEnforced"


def test_bucket_policies_deny_plain_http(module: Loader) -> None:
    tree = module("s3-lakehouse")
    policy = _resource(tree, "aws_s3_bucket_policy", "tls_only")
    assert policy["for_each"] == "${aws_s3_bucket.this}"
    document = tree["data"]["aws_iam_policy_document"]["tls_only"]
    statements = {s["sid"]: s for s in blocks_of(document, "statement")}
    deny = statements["DenyInsecureTransport"]
    assert deny["effect"] == "Deny"
    assert as_list(deny["actions"]) == ["s3:*"]
    assert block(deny, "condition") == {
        "test": "Bool",
        "variable": "aws:SecureTransport",
        "values": ["false"],
    }


# --- Glue and Lake Formation (ADR-002, ADR-005) -------------------------------------------------


def test_glue_database_name_and_location(root: dict[str, Any], module: Loader) -> None:
    glue_database = squash(root["locals"]["glue_database"])
    assert '${replace(local.name,"-","_")}_lakehouse' in glue_database
    database = _resource(module("glue"), "aws_glue_catalog_database", "lakehouse")
    assert database["name"] == "${var.database_name}"
    assert database["location_uri"] == "${local.warehouse_path}/${var.database_name}.db"


def test_lake_formation_and_analyst_sit_behind_the_toggle(root: dict[str, Any], module: Loader) -> None:
    assert root["variable"]["enable_lake_formation"]["default"] is False
    tree = module("glue")
    gated = {
        ("aws_lakeformation_resource", "warehouse"): "count",
        ("aws_iam_role", "analyst"): "count",
        ("aws_athena_workgroup", "analysts"): "count",
        ("aws_lakeformation_permissions", "analyst_tables"): "count",
        ("aws_lakeformation_permissions", "writer_tables"): "for_each",
    }
    for (rtype, name), meta in gated.items():
        expected = "${local.lf_count}" if meta == "count" else "${local.lf_writers}"
        assert _resource(tree, rtype, name)[meta] == expected, f"{rtype}.{name}"
    assert _resource(tree, "aws_lakeformation_resource", "warehouse")["hybrid_access_enabled"] is True


def test_analyst_role_requires_mfa(module: Loader) -> None:
    trust = module("glue")["data"]["aws_iam_policy_document"]["analyst_trust"]
    statement = block(trust, "statement")
    assert as_list(statement["actions"]) == ["sts:AssumeRole"]
    assert block(statement, "condition") == {
        "test": "Bool",
        "variable": "aws:MultiFactorAuthPresent",
        "values": ["true"],
    }


# --- Monitoring and SSM (seed §10.3, §2) --------------------------------------------------------


def test_billing_alarm_is_25_usd_in_us_east_1(root: dict[str, Any], module: Loader) -> None:
    tree = module("monitoring")
    alarm = _resource(tree, "aws_cloudwatch_metric_alarm", "billing")
    assert alarm["namespace"] == "AWS/Billing"
    assert alarm["metric_name"] == "EstimatedCharges"
    assert alarm["region"] == "${var.billing_region}"
    assert tree["variable"]["billing_region"]["default"] == "us-east-1"
    assert root["variable"]["billing_alarm_threshold_usd"]["default"] == 25
    assert as_list(alarm["alarm_actions"]) == ["${aws_sns_topic.alarms.arn}"]
    assert _resource(tree, "aws_sns_topic", "alarms")["region"] == "${var.billing_region}"


def test_monitoring_is_optional(root: dict[str, Any]) -> None:
    assert root["module"]["monitoring"]["count"] == "${var.enable_monitoring ? 1 : 0}"
    assert root["module"]["irsa"]["enable_alarm_publish"] == "${var.enable_monitoring}"


def test_ssm_holds_the_seed_parameters(root: dict[str, Any]) -> None:
    parameters = root["module"]["parameters"]
    assert squash(parameters["values"]) == squash(
        "${merge(local.ssm_values, local.onchain_enabled ? local.ssm_onchain_values : {})}"
    )
    assert set(as_map(root["locals"]["ssm_onchain_values"])) == {
        "onchain-stream-name",
        "onchain-dlq-stream-name",
    }
    assert set(as_map(root["locals"]["ssm_values"])) == {
        "stream-name",
        "dlq-stream-name",
        "alerts-table",
        "glue-database",
        "feature-tier",
        "buckets/raw",
        "buckets/processed",
        "buckets/checkpoint",
        "buckets/query-results",
    }
    assert set(as_map(parameters["string_lists"])) == {"symbols"}


# --- Root variables and outputs -----------------------------------------------------------------

VALIDATED = (
    "prefix",
    "environment",
    "region",
    "feature_tier",
    "oidc_provider_arn",
    "namespace",
    "service_accounts",
    "symbols",
    "alarm_email",
    "billing_alarm_threshold_usd",
    "kms_key_arn",
    "trades_retention_hours",
    "onchain_retention_hours",
    "alerts_out_retention_hours",
)


@pytest.mark.parametrize("name", VALIDATED)
def test_inputs_are_validated(root: dict[str, Any], name: str) -> None:
    variable = root["variable"][name]
    assert blocks_of(variable, "validation"), f"variable {name} has no validation"
    for validation in blocks_of(variable, "validation"):
        assert validation["error_message"].endswith("."), "error messages are full sentences"


def test_every_variable_and_output_is_documented(all_dirs: list[dict[str, Any]]) -> None:
    for tree in all_dirs:
        for kind in ("variable", "output"):
            for name, body in tree.get(kind, {}).items():
                assert body.get("description"), f"{kind} {name} has no description"


def _validation_regex(root: dict[str, Any], name: str) -> re.Pattern[str]:
    condition = block(root["variable"][name], "validation")["condition"]
    found = re.search(r'regex\(\\?"(.+?)\\?",', condition)
    assert found, condition
    return re.compile(found.group(1).replace("\\\\", "\\"))


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("prefix", ["coattail", "ctc-2"], ["Coattail", "c", "-x", "coattail-", "a" * 17]),
        ("environment", ["dev", "prod", "qa1"], ["Dev", "d", "prod-eu", "1dev"]),
        ("region", ["us-west-2", "eu-central-1", "us-gov-west-1"], ["uswest2", "us-west", "US-WEST-2"]),
        (
            "oidc_provider_arn",
            ["arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABCDEF0123456789"],
            ["arn:aws:iam::12345:oidc-provider/x", "oidc.eks.us-west-2.amazonaws.com/id/ABC", ""],
        ),
        ("namespace", ["coattail", "prod-1"], ["Coattail", "-x", "a_b", "a" * 64]),
    ],
)
def test_validation_patterns(root: dict[str, Any], name: str, good: list[str], bad: list[str]) -> None:
    pattern = _validation_regex(root, name)
    for value in good:
        assert pattern.match(value), f"{name} should accept {value!r}"
    for value in bad:
        assert not pattern.match(value), f"{name} should reject {value!r}"


def test_tier_choices(root: dict[str, Any]) -> None:
    condition = block(root["variable"]["feature_tier"], "validation")["condition"]
    assert all(tier in condition for tier in ("small", "medium", "large"))
    assert root["variable"]["feature_tier"]["default"] == "small"


def test_outputs_cover_what_the_chart_needs(root: dict[str, Any]) -> None:
    missing = {*REQUIRED_OUTPUTS, *ONCHAIN_OUTPUTS, ALERTS_OUTPUT} - set(root["output"])
    assert not missing, f"outputs.tf lacks {sorted(missing)}, which `coattail infra helm-values` reads"


def test_checkov_skips_carry_a_reason() -> None:
    skip = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
    found = 0
    for path in INFRA.rglob("*.tf"):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = skip.search(line)
            if match:
                found += 1
                assert match.group(1).startswith("CKV"), line
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 20, f"{path.name}: skip without reason: {line.strip()}"
    assert found, "expected the justified checkov skips to be found"
