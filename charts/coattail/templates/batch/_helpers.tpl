{{/* The daily batch: a CronJob that submits its heavy steps as SparkApplications (Role below). */}}

{{- define "coattail.batch.fullname" -}}
{{- include "coattail.componentName" (list . "batch") -}}
{{- end -}}

{{- define "coattail.batch.cronJobName" -}}
{{- include "coattail.componentName" (list . "batch-daily") -}}
{{- end -}}

{{- define "coattail.batch.labels" -}}
{{- include "coattail.componentLabels" (list . "batch") -}}
{{- end -}}

{{- define "coattail.batch.selectorLabels" -}}
{{- include "coattail.componentSelectorLabels" (list . "batch") -}}
{{- end -}}

{{- define "coattail.batch.serviceAccountName" -}}
{{- include "coattail.serviceAccountName" (list . "batch") -}}
{{- end -}}
