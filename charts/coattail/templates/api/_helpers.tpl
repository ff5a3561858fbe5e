{{/* The alert API and dashboard: Deployment, Service, PDB, HPA, Ingress share one name and selector. */}}

{{- define "coattail.api.fullname" -}}
{{- include "coattail.componentName" (list . "api") -}}
{{- end -}}

{{- define "coattail.api.labels" -}}
{{- include "coattail.componentLabels" (list . "api") -}}
{{- end -}}

{{- define "coattail.api.selectorLabels" -}}
{{- include "coattail.componentSelectorLabels" (list . "api") -}}
{{- end -}}

{{- define "coattail.api.serviceAccountName" -}}
{{- include "coattail.serviceAccountName" (list . "api") -}}
{{- end -}}

{{/* Where the API keys Secret is mounted (COATTAIL_API__API_KEYS_FILE points into it). */}}
{{- define "coattail.api.apiKeysDir" -}}/var/run/secrets/coattail/api-keys{{- end -}}
