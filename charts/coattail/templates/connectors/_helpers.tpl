{{/* Exchange connectors: one Deployment per exchange (or per SYMBOLS partition of an exchange). */}}

{{- define "coattail.connectors.fullname" -}}
{{- include "coattail.componentName" (list . "connectors") -}}
{{- end -}}

{{- define "coattail.connectors.labels" -}}
{{- include "coattail.componentLabels" (list . "connectors") -}}
{{- end -}}

{{- define "coattail.connectors.selectorLabels" -}}
{{- include "coattail.componentSelectorLabels" (list . "connectors") -}}
{{- end -}}

{{- define "coattail.connectors.serviceAccountName" -}}
{{- include "coattail.serviceAccountName" (list . "connectors") -}}
{{- end -}}

{{/* Labels that tell one connector Deployment from another: (list $exchange $partitionIndex) */}}
{{- define "coattail.connectors.partitionLabels" -}}
coattail.io/exchange: {{ index . 0 }}
coattail.io/partition: {{ index . 1 | quote }}
{{- end -}}

{{/* Deployment name: (list $ $exchange $index $partitionCount); the index only with partitions. */}}
{{- define "coattail.connectors.deploymentName" -}}
{{- $name := printf "%s-connector-%s" (include "coattail.fullname" (index . 0)) (index . 1) -}}
{{- if gt (index . 3) 1 -}}{{- $name = printf "%s-%d" $name (index . 2) -}}{{- end -}}
{{- $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Exchanges that get connector Deployments: connectors.exchanges, else the tier's connectors whose
features.yaml `kind` is cex (on-chain connectors have no `connectors run` implementation yet).
Returns YAML: {exchanges: [...]}.
*/}}
{{- define "coattail.connectors.exchanges" -}}
{{- $features := include "coattail.features" . | fromYaml -}}
{{- $tier := include "coattail.tier" . | fromYaml -}}
{{- $out := list -}}
{{- if .Values.connectors.exchanges -}}
{{- $out = .Values.connectors.exchanges -}}
{{- else -}}
{{- range $name := $tier.connectors -}}
{{- $c := index $features.connectors $name | default dict -}}
{{- if eq (default "cex" $c.kind) "cex" -}}{{- $out = append $out $name -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name := $out -}}
{{- if not (hasKey $features.connectors $name) -}}
{{- fail (printf "connectors.exchanges names %q, which config/features.yaml does not configure" $name) -}}
{{- end -}}
{{- end -}}
{{- dict "exchanges" $out | toYaml -}}
{{- end -}}
