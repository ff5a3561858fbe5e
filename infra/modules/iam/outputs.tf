output "role_arns" {
  description = "IAM role ARN per component (connectors, chains, spark, api, batch), for the eks.amazonaws.com/role-arn annotation."
  value       = { for component, role in aws_iam_role.this : component => role.arn }
}

output "role_names" {
  description = "IAM role name per component."
  value       = { for component, role in aws_iam_role.this : component => role.name }
}
