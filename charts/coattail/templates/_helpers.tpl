{{/* vim: set filetype=mustache: */}}
{{/*
Helpers shared by every component: names, labels, images, the tier and feature catalogue, the pod
security contexts and the config/state volumes. Each component folder has its own _helpers.tpl
(coattail.<component>.fullname, .labels, .selectorLabels, .serviceAccountName, ...) built on these,
patterned on the kubeflow spark-operator chart.
*/}}

{{- define "coattail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "coattail.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: include "coattail.componentName" (list $ "api") -> <fullname>-api.
Not truncated: most kinds allow 253 characters, and a cut could make two names collide. */}}
{{- define "coattail.componentName" -}}
{{- printf "%s-%s" (include "coattail.fullname" (index . 0)) (index . 1) -}}
{{- end -}}

{{- define "coattail.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels. */}}
{{- define "coattail.labels" -}}
helm.sh/chart: {{ include "coattail.chart" . }}
{{ include "coattail.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coattail
coattail.io/tier: {{ .Values.tier | quote }}
{{- end -}}

{{- define "coattail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coattail.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: include "coattail.componentLabels" (list $ "api") */}}
{{- define "coattail.componentLabels" -}}
{{ include "coattail.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "coattail.componentSelectorLabels" -}}
{{ include "coattail.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Service account name from serviceAccounts.<key>: include "coattail.serviceAccountName" (list $ "api") */}}
{{- define "coattail.serviceAccountName" -}}
{{- $ := index . 0 -}}
{{- $key := index . 1 -}}
{{- $sa := index $.Values.serviceAccounts $key -}}
{{- if $sa.create -}}
{{- default (include "coattail.componentName" (list $ $key)) $sa.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{/*
One component's ServiceAccount (serviceaccount.yaml of each folder):
include "coattail.serviceAccount" (dict "root" $ "key" "spark" "component" "pipeline" "automountToken" true)
*/}}
{{- define "coattail.serviceAccount" -}}
{{- $ := .root -}}
{{- $sa := index $.Values.serviceAccounts .key -}}
{{- if $sa.create -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "coattail.serviceAccountName" (list $ .key) }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "coattail.componentLabels" (list $ .component) | nindent 4 }}
  {{- with $sa.annotations }}
  # IRSA: eks.amazonaws.com/role-arn names this component's least-privilege IAM role (Terraform).
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
# Pods opt in to an API token where they need one (Spark driver, batch); the rest never mount it.
automountServiceAccountToken: {{ .automountToken }}
{{- end -}}
{{- end -}}

{{/* Image reference: include "coattail.image" (list $ "python") */}}
{{- define "coattail.image" -}}
{{- $ := index . 0 -}}
{{- $img := index $.Values.images (index . 1) -}}
{{- $repo := $img.repository -}}
{{- if $img.registry -}}{{- $repo = printf "%s/%s" $img.registry $img.repository -}}{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default $.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* A Python container's command as JSON: include "coattail.pythonCommand" (list $ "api") -> the
images.python.commandPrefix, then `coattail api`. */}}
{{- define "coattail.pythonCommand" -}}
{{- $ := index . 0 -}}
{{- concat $.Values.images.python.commandPrefix (list "coattail") (rest .) | toJson -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec (YAML list, or nothing). */}}
{{- define "coattail.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* nodeSelector, tolerations and affinity of a component values block (or nothing). */}}
{{- define "coattail.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The effective tier, read from the same files the code reads (files/config is a link to config/):
`extends` is followed, modules and connectors accumulate, `spark` is replaced — exactly like
coattail/settings/loader.py. Returns YAML: {modules: [...], connectors: [...], spark: {...}}.
*/}}
{{- define "coattail.tier" -}}
{{- $chain := list -}}
{{- $name := .Values.tier -}}
{{- range $i := until 10 -}}
{{- if $name -}}
{{- $raw := $.Files.Get (printf "files/config/tiers/%s.yaml" $name) -}}
{{- if not $raw -}}
{{- fail (printf "tier %q: config/tiers/%s.yaml does not exist (known: small, medium, large)" $name $name) -}}
{{- end -}}
{{- $t := fromYaml $raw -}}
{{- $chain = prepend $chain $t -}}
{{- $name = default "" $t.extends -}}
{{- end -}}
{{- end -}}
{{- $modules := list -}}
{{- $connectors := list -}}
{{- $spark := dict -}}
{{- range $t := $chain -}}
{{- $modules = concat $modules (default list $t.modules) | uniq -}}
{{- $connectors = concat $connectors (default list $t.connectors) | uniq -}}
{{- if $t.spark -}}{{- $spark = $t.spark -}}{{- end -}}
{{- end -}}
{{- dict "modules" $modules "connectors" $connectors "spark" $spark | toYaml -}}
{{- end -}}

{{/* The feature catalogue (config/features.yaml) as a dict. */}}
{{- define "coattail.features" -}}
{{- .Files.Get "files/config/features.yaml" | fromYaml | toYaml -}}
{{- end -}}

{{/*
Security contexts as values, Bitnami style: the shared podSecurityContext / containerSecurityContext
with the component's own block on top, e.g. include "coattail.podSecurityContext" (list $ "api")
merges .Values.api.podSecurityContext over .Values.podSecurityContext.
*/}}
{{- define "coattail.podSecurityContext" -}}
{{- $ := index . 0 -}}
{{- $own := (index $.Values (index . 1)).podSecurityContext | default dict -}}
{{- mustMergeOverwrite (deepCopy $.Values.podSecurityContext) (deepCopy $own) | toYaml -}}
{{- end -}}

{{- define "coattail.containerSecurityContext" -}}
{{- $ := index . 0 -}}
{{- $own := (index $.Values (index . 1)).containerSecurityContext | default dict -}}
{{- mustMergeOverwrite (deepCopy $.Values.containerSecurityContext) (deepCopy $own) | toYaml -}}
{{- end -}}

{{/* envFrom shared by every coattail container: the settings ConfigMap. */}}
{{- define "coattail.envFrom" -}}
- configMapRef:
    name: {{ include "coattail.config.envName" . }}
{{- end -}}

{{/* Volumes every Python pod mounts: the config (read-only) and the writable state folder. */}}
{{- define "coattail.volumes" -}}
- name: config
  configMap:
    name: {{ include "coattail.config.filesName" . }}
    items:
      {{- range $path, $_ := .Files.Glob "files/config/**.yaml" }}
      {{- $rel := trimPrefix "files/config/" $path }}
      - key: {{ $rel | replace "/" "__" }}
        path: {{ $rel }}
      {{- end }}
      {{- range $name, $_ := .Values.config.files }}
      - key: {{ include "coattail.config.operatorKey" $name }}
        path: operator/{{ $name }}
      {{- end }}
- name: state
  emptyDir:
    sizeLimit: {{ .Values.stateDir.sizeLimit }}
{{- if .Values.aws.credentialsSecret }}
- name: aws-credentials
  secret:
    secretName: {{ .Values.aws.credentialsSecret }}
    defaultMode: 0440
    items:
      - key: credentials
        path: credentials
{{- end }}
{{- end -}}

{{- define "coattail.volumeMounts" -}}
- name: config
  mountPath: {{ include "coattail.configDir" . }}
  readOnly: true
- name: state
  mountPath: {{ .Values.stateDir.path }}
{{- if .Values.aws.credentialsSecret }}
- name: aws-credentials
  mountPath: {{ include "coattail.awsCredentialsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "coattail.awsCredentialsDir" -}}/var/run/secrets/coattail/aws{{- end -}}

{{- define "coattail.configDir" -}}/etc/coattail/config{{- end -}}

{{/* Selector of the pods Prometheus is allowed to scrape from (NetworkPolicy peers). */}}
{{- define "coattail.metricsFrom" -}}
{{- if .Values.networkPolicy.metricsFrom -}}
{{- toYaml .Values.networkPolicy.metricsFrom -}}
{{- else -}}
- namespaceSelector: {}
{{- end -}}
{{- end -}}

{{/* Extra labels every prometheus-operator object carries (monitoring.labels). */}}
{{- define "coattail.monitoringLabels" -}}
{{- with .Values.monitoring.labels -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}
