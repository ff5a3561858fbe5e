variable "prefix" {
  description = "Project prefix of every resource name; with the environment it forms <prefix>-<environment>."
  type        = string
  default     = "coattail"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.prefix))
    error_message = "prefix must be 3-16 characters of lower-case letters, digits and hyphens, starting with a letter (it goes into S3 bucket names)."
  }
}

variable "environment" {
  description = "Environment name, e.g. dev, staging, prod."
  type        = string
  default     = "dev"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment must be 2-10 lower-case letters or digits, starting with a letter (e.g. dev, staging, prod)."
  }
}

variable "region" {
  description = "AWS region of the backing services; the EKS cluster should be in the same region."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-west-2 or eu-central-1."
  }
}

variable "feature_tier" {
  description = "Feature tier (seed ADR-007): small, medium or large. Selects config/tiers/<tier>.yaml in the chart."
  type        = string
  default     = "small"

  validation {
    condition     = contains(["small", "medium", "large"], var.feature_tier)
    error_message = "feature_tier must be one of small, medium, large."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider, e.g. arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE (aws eks describe-cluster --query cluster.identity.oidc.issuer)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/[A-Za-z0-9.-]+(/[A-Za-z0-9._-]+)*$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must look like arn:aws:iam::<12-digit account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>."
  }
}

variable "namespace" {
  description = "Kubernetes namespace the chart is installed into; every IAM role trusts service accounts of this namespace only."
  type        = string
  default     = "coattail"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label (lower-case letters, digits and hyphens, at most 63 characters)."
  }
}

variable "service_accounts" {
  description = "Kubernetes service account name per component; must match the service accounts the chart creates."
  type = object({
    connectors = string
    chains     = string
    spark      = string
    api        = string
    batch      = string
  })
  default = {
    connectors = "coattail-connectors"
    chains     = "coattail-chains"
    spark      = "coattail-spark"
    api        = "coattail-api"
    batch      = "coattail-batch"
  }

  validation {
    condition = alltrue([
      for sa in values(var.service_accounts) : can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", sa))
    ])
    error_message = "every service account name must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')."
  }

  validation {
    condition     = length(distinct(values(var.service_accounts))) == length(values(var.service_accounts))
    error_message = "each component needs its own service account, so that each role stays least-privilege."
  }
}

variable "symbols" {
  description = "Instruments the connectors stream, normalised BASE-QUOTE (e.g. BTC-USDT)."
  type        = list(string)
  default     = ["BTC-USDT", "ETH-USDT", "BTC-USD", "ETH-USD"]

  validation {
    condition     = length(var.symbols) > 0 && alltrue([for s in var.symbols : can(regex("^[A-Z0-9]+-[A-Z0-9]+$", s))])
    error_message = "symbols must be a non-empty list of upper-case BASE-QUOTE pairs such as BTC-USDT."
  }
}

variable "point_in_time_recovery" {
  description = "Point-in-time recovery on the alerts table."
  type        = bool
  default     = true
}

variable "dynamodb_deletion_protection" {
  description = "Deletion protection on the alerts table (turn on for shared environments)."
  type        = bool
  default     = false
}

variable "enable_lake_formation" {
  description = "Lake Formation permissions, the analyst role and its Athena workgroup (ADR-005). Needs a Lake Formation admin to apply."
  type        = bool
  default     = false
}

variable "analyst_trusted_principal_arns" {
  description = "Principals allowed to assume the analyst role (MFA required); empty means the account."
  type        = list(string)
  default     = []
}

variable "enable_monitoring" {
  description = "Alarm topic and the billing alarm (seed §10.3)."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "E-mail subscribed to the alarm topic (confirm the subscription mail); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address or empty."
  }
}

variable "billing_alarm_threshold_usd" {
  description = "Month-to-date estimated charges in USD that raise the billing alarm."
  type        = number
  default     = 25

  validation {
    condition     = var.billing_alarm_threshold_usd > 0
    error_message = "billing_alarm_threshold_usd must be a positive amount."
  }
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key (in var.region) for the streams, table, buckets and Athena results; its key policy must admit this account's IAM principals. Null uses AWS managed keys (and SSE-S3), which add no monthly cost."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) or null."
  }
}

variable "trades_retention_hours" {
  description = "Retention of the trades stream in hours."
  type        = number
  default     = 24

  validation {
    condition     = var.trades_retention_hours >= 24 && var.trades_retention_hours <= 8760
    error_message = "trades_retention_hours must be between 24 and 8760."
  }
}

variable "enable_onchain_streams" {
  description = "Create the on-chain events stream and its dead-letter stream, with the chain connectors' and the pipeline's grants on them. Null: on for the medium and large tiers, whose connectors include ethereum and solana."
  type        = bool
  default     = null
}

variable "onchain_retention_hours" {
  description = "Retention of the on-chain events stream in hours."
  type        = number
  default     = 24

  validation {
    condition     = var.onchain_retention_hours >= 24 && var.onchain_retention_hours <= 8760
    error_message = "onchain_retention_hours must be between 24 and 8760."
  }
}

variable "alerts_out_enabled" {
  description = "Create the alerts-out Kinesis stream <prefix>-<environment>-alerts and let the pipeline's role put to it, for alerts_out.enabled in the chart (`coattail infra helm-values` turns it on with this stream's name). Off by default: publishing alerts out is opt-in."
  type        = bool
  default     = false
}

variable "alerts_out_retention_hours" {
  description = "Retention of the alerts-out stream in hours: how long a consumer may lag behind."
  type        = number
  default     = 24

  validation {
    condition     = var.alerts_out_retention_hours >= 24 && var.alerts_out_retention_hours <= 8760
    error_message = "alerts_out_retention_hours must be between 24 and 8760."
  }
}

variable "permissions_boundary_arn" {
  description = "Optional IAM permissions boundary attached to every role this configuration creates."
  type        = string
  default     = null
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy empty and delete the buckets (sandbox only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
