output "database_name" {
  description = "Glue database of the lakehouse."
  value       = aws_glue_catalog_database.lakehouse.name
}

output "warehouse_path" {
  description = "Iceberg warehouse, s3://<processed-bucket>/<prefix>."
  value       = local.warehouse_path
}

output "catalog_arn" {
  description = "ARN of the account's Glue catalog."
  value       = local.catalog_arn
}

output "database_arn" {
  description = "ARN of the lakehouse database."
  value       = local.database_arn
}

output "tables_arn" {
  description = "ARN pattern of every table in the lakehouse database."
  value       = local.tables_arn
}

output "analyst_role_arn" {
  description = "ARN of the analyst role, or null when Lake Formation is off."
  value       = var.enable_lake_formation ? aws_iam_role.analyst[0].arn : null
}

output "athena_workgroup" {
  description = "Athena workgroup of the analysts, or null when Lake Formation is off."
  value       = var.enable_lake_formation ? aws_athena_workgroup.analysts[0].name : null
}
