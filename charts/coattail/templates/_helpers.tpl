{{/* vim: set filetype=mustache: */}}
{{/*
Names, labels and shared blocks. Patterned on the kubeflow spark-operator chart's _helpers.tpl.
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

{{/* Service account name of a component: include "coattail.serviceAccountName" (list $ "api") */}}
{{- define "coattail.serviceAccountName" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
{{- $sa := index $.Values.serviceAccounts $component -}}
{{- if $sa.create -}}
{{- default (printf "%s-%s" (include "coattail.fullname" $) $component) $sa.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- default "default" $sa.name -}}
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
Exchanges that get connector Deployments: connectors.exchanges, else the tier's connectors whose
features.yaml `kind` is cex (on-chain connectors have no `connectors run` implementation yet).
*/}}
{{- define "coattail.exchanges" -}}
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

{{/* Spark sizing: the tier's, with pipeline.sizing on top. */}}
{{- define "coattail.sparkSizing" -}}
{{- $tier := include "coattail.tier" . | fromYaml -}}
{{- $sizing := mustMergeOverwrite (dict "driver" (dict "cores" 1 "memory" "2g") "executor" (dict "cores" 1 "memory" "2g" "instances" 1)) (deepCopy (default dict $tier.spark)) (deepCopy .Values.pipeline.sizing) -}}
{{- $sizing | toYaml -}}
{{- end -}}

{{/* Container security context (values, Bitnami style). */}}
{{- define "coattail.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{- define "coattail.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* envFrom shared by every coattail container: the settings ConfigMap. */}}
{{- define "coattail.envFrom" -}}
- configMapRef:
    name: {{ include "coattail.fullname" . }}-env
{{- end -}}

{{/* Volumes every Python pod mounts: the config (read-only) and the writable state folder. */}}
{{- define "coattail.volumes" -}}
- name: config
  configMap:
    name: {{ include "coattail.fullname" . }}-config
    items:
      {{- range $path, $_ := .Files.Glob "files/config/**.yaml" }}
      {{- $rel := trimPrefix "files/config/" $path }}
      - key: {{ $rel | replace "/" "__" }}
        path: {{ $rel }}
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
  mountPath: /etc/coattail/config
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

{{/* Spark pods run as the spark user (uid 185) of the official Spark image. */}}
{{- define "coattail.sparkPodSecurityContext" -}}
{{- $ctx := deepCopy .Values.podSecurityContext -}}
{{- $_ := set $ctx "runAsUser" .Values.pipeline.runAsUser -}}
{{- $_ := set $ctx "runAsGroup" .Values.pipeline.runAsUser -}}
{{- $_ := set $ctx "fsGroup" .Values.pipeline.runAsUser -}}
{{- toYaml $ctx -}}
{{- end -}}

{{- define "coattail.sparkContainerSecurityContext" -}}
{{- $ctx := deepCopy .Values.containerSecurityContext -}}
{{- $_ := set $ctx "runAsUser" .Values.pipeline.runAsUser -}}
{{- $_ := set $ctx "runAsGroup" .Values.pipeline.runAsUser -}}
{{- toYaml $ctx -}}
{{- end -}}
