{{/* The detector pipeline: a kubeflow spark-operator SparkApplication, its service account (spark,
also used by the batch job's SparkApplications) and the Role its driver needs. */}}

{{- define "coattail.pipeline.fullname" -}}
{{- include "coattail.componentName" (list . "pipeline") -}}
{{- end -}}

{{- define "coattail.pipeline.labels" -}}
{{- include "coattail.componentLabels" (list . "pipeline") -}}
{{- end -}}

{{- define "coattail.pipeline.selectorLabels" -}}
{{- include "coattail.componentSelectorLabels" (list . "pipeline") -}}
{{- end -}}

{{/* Driver and executors (of the pipeline and of batch SparkApplications) run as serviceAccounts.spark. */}}
{{- define "coattail.pipeline.serviceAccountName" -}}
{{- include "coattail.serviceAccountName" (list . "spark") -}}
{{- end -}}

{{- define "coattail.pipeline.driverRoleName" -}}
{{- include "coattail.componentName" (list . "spark-driver") -}}
{{- end -}}

{{/* "true" when a Spark driver runs here: the pipeline, or batch steps submitted as SparkApplications
(those run as the spark service account too, so the driver Role outlives pipeline.enabled). */}}
{{- define "coattail.pipeline.driverRoleNeeded" -}}
{{- if and .Values.rbac.create (or .Values.pipeline.enabled (and .Values.batch.enabled (eq .Values.batch.reprocessRunner "spark-operator"))) -}}
true
{{- end -}}
{{- end -}}

{{/* Spark sizing: the tier's, with pipeline.sizing on top. */}}
{{- define "coattail.pipeline.sizing" -}}
{{- $tier := include "coattail.tier" . | fromYaml -}}
{{- $sizing := mustMergeOverwrite (dict "driver" (dict "cores" 1 "memory" "2g") "executor" (dict "cores" 1 "memory" "2g" "instances" 1)) (deepCopy (default dict $tier.spark)) (deepCopy .Values.pipeline.sizing) -}}
{{- $sizing | toYaml -}}
{{- end -}}

{{/* Spark pods run as the spark user (uid 185) of the official Spark image: pipeline.runAsUser wins
over the user and group of the security contexts. */}}
{{- define "coattail.pipeline.podSecurityContext" -}}
{{- $ctx := include "coattail.podSecurityContext" (list . "pipeline") | fromYaml -}}
{{- $_ := set $ctx "runAsUser" .Values.pipeline.runAsUser -}}
{{- $_ := set $ctx "runAsGroup" .Values.pipeline.runAsUser -}}
{{- $_ := set $ctx "fsGroup" .Values.pipeline.runAsUser -}}
{{- toYaml $ctx -}}
{{- end -}}

{{- define "coattail.pipeline.containerSecurityContext" -}}
{{- $ctx := include "coattail.containerSecurityContext" (list . "pipeline") | fromYaml -}}
{{- $_ := set $ctx "runAsUser" .Values.pipeline.runAsUser -}}
{{- $_ := set $ctx "runAsGroup" .Values.pipeline.runAsUser -}}
{{- toYaml $ctx -}}
{{- end -}}

{{/* Mounts of driver and executors: config, state, Spark's work dir and /tmp (read-only root). */}}
{{- define "coattail.pipeline.volumeMounts" -}}
{{ include "coattail.volumeMounts" . }}
- name: spark-work
  mountPath: /opt/spark/work-dir
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Security, placement and identity shared by the driver and the executors. */}}
{{- define "coattail.pipeline.podSettings" -}}
podSecurityContext:
  {{- include "coattail.pipeline.podSecurityContext" . | nindent 2 }}
securityContext:
  {{- include "coattail.pipeline.containerSecurityContext" . | nindent 2 }}
{{- with .Values.pipeline.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.pipeline.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
