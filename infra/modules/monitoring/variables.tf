variable "name" {
  description = "Name prefix; the topic is <name>-alarms."
  type        = string
}

variable "account_id" {
  description = "AWS account id, for the topic policy."
  type        = string
}

variable "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov)."
  type        = string
}

variable "billing_region" {
  description = "Region that holds the AWS/Billing metrics (us-east-1 in the commercial partition)."
  type        = string
  default     = "us-east-1"
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic; empty for none (the subscription must be confirmed from the mail)."
  type        = string
  default     = ""
}

variable "billing_threshold_usd" {
  description = "Estimated month-to-date charges (USD) that raise the billing alarm (seed §10.3: 25)."
  type        = number
  default     = 25
}

variable "kms_key_arn" {
  description = "Customer managed KMS key for the topic, in the billing region; its key policy must let cloudwatch.amazonaws.com use it. Null leaves the topic unencrypted."
  type        = string
  default     = null
}
