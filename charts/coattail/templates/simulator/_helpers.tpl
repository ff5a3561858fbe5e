{{/* The seeded market simulator Job (Tilt dev loop, kind CI): trades into Kafka without exchanges. */}}

{{/* Job specs are immutable, so the name carries the release revision: each upgrade runs a new Job. */}}
{{- define "coattail.simulator.jobName" -}}
{{- printf "%s-simulator-%d" (include "coattail.fullname" .) (int .Release.Revision) -}}
{{- end -}}

{{- define "coattail.simulator.labels" -}}
{{- include "coattail.componentLabels" (list . "simulator") -}}
{{- end -}}

{{/* It produces to the stream like a connector, with the connectors' (API-less) service account. */}}
{{- define "coattail.simulator.serviceAccountName" -}}
{{- include "coattail.connectors.serviceAccountName" . -}}
{{- end -}}
