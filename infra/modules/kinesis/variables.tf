variable "name" {
  description = "Name prefix, e.g. coattail-dev; streams are <name>-trades, <name>-trades-dlq, <name>-onchain, <name>-onchain-dlq and <name>-alerts."
  type        = string
}

variable "trades_retention_hours" {
  description = "Retention of the trades stream in hours (24 is the free tier of retention)."
  type        = number
  default     = 24
}

variable "onchain_enabled" {
  description = "Create the on-chain events stream and its dead-letter stream (a tier with chain connectors)."
  type        = bool
  default     = false
}

variable "onchain_retention_hours" {
  description = "Retention of the on-chain events stream in hours."
  type        = number
  default     = 24
}

variable "alerts_enabled" {
  description = "Create the alerts-out stream <name>-alerts that the pipeline publishes new alerts to (alerts_out.enabled)."
  type        = bool
  default     = false
}

variable "alerts_retention_hours" {
  description = "Retention of the alerts-out stream in hours (24 is the free tier of retention)."
  type        = number
  default     = 24
}

variable "alerts_shard_count" {
  description = "Shards of the alerts-out stream. Alerts are a trickle: one provisioned shard is plenty and costs less than an idle on-demand stream."
  type        = number
  default     = 1
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
