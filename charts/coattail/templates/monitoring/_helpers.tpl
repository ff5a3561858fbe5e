{{/* Release-wide monitoring objects: the alert rules and the Grafana dashboard. */}}

{{- define "coattail.monitoring.dashboardName" -}}
{{- printf "%s-dashboard" (include "coattail.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of the dashboard ConfigMap: ours plus the one Grafana's sidecar selects on. */}}
{{- define "coattail.monitoring.dashboardLabels" -}}
{{ include "coattail.labels" . }}
{{ .Values.monitoring.dashboard.sidecarLabel }}: {{ .Values.monitoring.dashboard.sidecarLabelValue | quote }}
{{- end -}}
