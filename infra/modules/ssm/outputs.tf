output "prefix" {
  description = "Path prefix of the parameters."
  value       = "/${var.name}/"
}

output "parameter_names" {
  description = "Full names of every parameter."
  value       = concat([for p in aws_ssm_parameter.value : p.name], [for p in aws_ssm_parameter.list : p.name])
}
