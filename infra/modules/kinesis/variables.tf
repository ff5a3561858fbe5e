variable "name" {
  description = "Name prefix, e.g. coattail-dev; streams are <name>-trades and <name>-trades-dlq."
  type        = string
}

variable "trades_retention_hours" {
  description = "Retention of the trades stream in hours (24 is the free tier of retention)."
  type        = number
  default     = 24
}

variable "dlq_retention_hours" {
  description = "Retention of the dead-letter stream in hours (seed: 48 h to investigate bad records)."
  type        = number
  default     = 48
}

variable "dlq_shard_count" {
  description = "Shards of the dead-letter stream. It carries a trickle, and one provisioned shard costs less than an idle on-demand stream."
  type        = number
  default     = 1
}

variable "kms_key_id" {
  description = "KMS key for server-side encryption: a customer managed key ARN, or the AWS managed alias/aws/kinesis."
  type        = string
  default     = "alias/aws/kinesis"
}
