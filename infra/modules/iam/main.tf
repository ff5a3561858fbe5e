# One role per Kubernetes service account (IRSA). Each role trusts exactly one namespace/service
# account through the cluster's OIDC provider and may touch only the resources its component uses.

locals {
  # arn:aws:iam::<account>:oidc-provider/<issuer host/path> -> <issuer host/path>
  oidc_issuer = element(split(":oidc-provider/", var.oidc_provider_arn), 1)

  components = {
    connectors = "Exchange connectors: put trade events and dead letters to Kinesis."
    chains     = "Chain connectors: put on-chain events and dead letters to Kinesis, read trades for prices."
    spark      = "Detector pipeline (driver and executors): read trades, write lake, checkpoints and alerts."
    api        = "Alert API: read the alerts table and its indexes."
    batch      = "Batch workflow: backfill raw data, reprocess with time travel, upkeep the catalog."
  }

  policies = {
    connectors = data.aws_iam_policy_document.connectors.json
    chains     = data.aws_iam_policy_document.chains.json
    spark      = data.aws_iam_policy_document.spark.json
    api        = data.aws_iam_policy_document.api.json
    batch      = data.aws_iam_policy_document.batch.json
  }

  kms_keys = var.kms_key_arn == null ? [] : [var.kms_key_arn]
}

data "aws_iam_policy_document" "trust" {
  for_each = local.components

  statement {
    sid     = "EksServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_accounts[each.key]}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.components

  name                 = "${var.name}-${each.key}"
  description          = each.value
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "this" {
  for_each = local.components

  name   = "${each.key}-least-privilege"
  role   = aws_iam_role.this[each.key].id
  policy = local.policies[each.key]
}
