variable "name" {
  description = "Name prefix; parameters live under /<name>/."
  type        = string
}

variable "values" {
  description = "Plain (non-secret) configuration values, keyed by parameter name below /<name>/."
  type        = map(string)
}

variable "string_lists" {
  description = "Comma-separated list values (SSM StringList), keyed by parameter name below /<name>/."
  type        = map(list(string))
  default     = {}
}
