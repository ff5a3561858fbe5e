# Service discovery in SSM (seed §2): names of what Terraform created, so scripts and operators can
# find them without reading Terraform state. On EKS the pods get the same values from Helm.
resource "aws_ssm_parameter" "value" {
  #checkov:skip=CKV2_AWS_34:Resource names and the feature tier are not secrets; SecureString would only add KMS calls. No secrets are stored here.
  for_each = var.values

  name        = "/${var.name}/${each.key}"
  description = "Coat Tail Capital ${each.key} (managed by Terraform)."
  type        = "String"
  value       = each.value
}

resource "aws_ssm_parameter" "list" {
  #checkov:skip=CKV2_AWS_34:Trading symbols are public market identifiers, not secrets.
  for_each = var.string_lists

  name        = "/${var.name}/${each.key}"
  description = "Coat Tail Capital ${each.key} (managed by Terraform)."
  type        = "StringList"
  value       = join(",", each.value)
}
