# The lakehouse catalog (seed §2, ADR-002): Iceberg tables live here, created by the pipeline on
# first run. The location follows Iceberg's <warehouse>/<db>.db convention, so catalogs that derive
# table paths from the database and from the warehouse agree.
resource "aws_glue_catalog_database" "lakehouse" {
  name         = var.database_name
  description  = "Coat Tail Capital lakehouse: Iceberg tables of trades, alerts and module outputs."
  location_uri = "${local.warehouse_path}/${var.database_name}.db"
}

locals {
  warehouse_path  = "s3://${var.processed_bucket}/${var.warehouse_prefix}"
  warehouse_arn   = "${var.processed_bucket_arn}/${var.warehouse_prefix}"
  glue_arn_prefix = "arn:${var.partition}:glue:${var.region}:${var.account_id}"
  catalog_arn     = "${local.glue_arn_prefix}:catalog"
  database_arn    = "${local.glue_arn_prefix}:database/${var.database_name}"
  tables_arn      = "${local.glue_arn_prefix}:table/${var.database_name}/*"
}
