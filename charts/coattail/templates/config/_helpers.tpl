{{/* The two ConfigMaps every coattail pod reads: the config folder and the COATTAIL_* settings. */}}

{{- define "coattail.config.filesName" -}}
{{- include "coattail.componentName" (list . "config") -}}
{{- end -}}

{{/* The ConfigMap key of an operator file (config.files): mounted back at operator/<name>. */}}
{{- define "coattail.config.operatorKey" -}}
operator__{{ . }}
{{- end -}}

{{- define "coattail.config.envName" -}}
{{- include "coattail.componentName" (list . "env") -}}
{{- end -}}

{{/* Pods hash both ConfigMaps (annotation checksum/config) so that they roll when a setting changes. */}}
{{- define "coattail.config.checksum" -}}
{{- include "coattail.config.configMaps" . | sha256sum -}}
{{- end -}}

{{/* Both ConfigMaps; config/configmap.yaml renders them and the checksum above hashes them. */}}
{{- define "coattail.config.configMaps" -}}
{{- $region := .Values.aws.region -}}
{{- $v := .Values -}}
{{- $onchain := include "coattail.connectors.onchain" . -}}
# The config folder the code reads, verbatim: config/features.yaml and config/tiers/*.yaml (the
# chart's files/config is a link to config/, so there is one source of truth). Keys cannot hold
# "/", so tiers/small.yaml is stored as tiers__small.yaml and mounted back under tiers/.
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "coattail.config.filesName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "coattail.labels" . | nindent 4 }}
data:
  {{- range $path, $bytes := .Files.Glob "files/config/**.yaml" }}
  {{ trimPrefix "files/config/" $path | replace "/" "__" }}: |-
    {{- toString $bytes | trimSuffix "\n" | nindent 4 }}
  {{- end }}
  {{- range $name, $text := .Values.config.files }}
  {{ include "coattail.config.operatorKey" $name }}: |-
    {{- $text | trimSuffix "\n" | nindent 4 }}
  {{- end }}
---
# Profile settings as COATTAIL_* overrides (`__` nests, values parsed as YAML) — the only way the
# chart changes what the code does. Every key here must pass `coattail config check`.
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "coattail.config.envName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "coattail.labels" . | nindent 4 }}
data:
  COATTAIL_CONFIG_DIR: {{ include "coattail.configDir" . | quote }}
  COATTAIL_STATE_DIR: {{ .Values.stateDir.path | quote }}
  COATTAIL_PROFILE: {{ required "profile is required (k8s-local | eks)" .Values.profile | quote }}
  COATTAIL_TIER: {{ .Values.tier | quote }}
  AWS_REGION: {{ $region | quote }}
  AWS_DEFAULT_REGION: {{ $region | quote }}
  {{- if .Values.aws.credentialsSecret }}
  # Local emulators only: an AWS shared-credentials file mounted from the Secret (never env vars).
  AWS_SHARED_CREDENTIALS_FILE: {{ printf "%s/credentials" (include "coattail.awsCredentialsDir" .) | quote }}
  {{- end }}
  {{- if .Values.lake.s3.endpoint }}
  AWS_ENDPOINT_URL_S3: {{ .Values.lake.s3.endpoint | quote }}
  {{- end }}
  COATTAIL_STREAM__BACKEND: {{ .Values.stream.backend | quote }}
  {{- if eq .Values.stream.backend "kafka" }}
  COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS: {{ required "stream.kafka.bootstrapServers is required with the kafka backend" $v.stream.kafka.bootstrapServers | quote }}
  COATTAIL_STREAM__KAFKA__TOPIC: {{ $v.stream.kafka.topic | quote }}
  COATTAIL_STREAM__KAFKA__DLQ_TOPIC: {{ $v.stream.kafka.dlqTopic | quote }}
  {{- if $onchain }}
  # On-chain events (a chain connector runs): the chain connectors produce here, the pipeline reads.
  COATTAIL_STREAM__KAFKA__ONCHAIN_TOPIC: {{ $v.stream.kafka.onchainTopic | quote }}
  COATTAIL_STREAM__KAFKA__ONCHAIN_DLQ_TOPIC: {{ $v.stream.kafka.onchainDlqTopic | quote }}
  {{- end }}
  {{- else }}
  COATTAIL_STREAM__KINESIS__STREAM_NAME: {{ $v.stream.kinesis.streamName | quote }}
  COATTAIL_STREAM__KINESIS__DLQ_STREAM_NAME: {{ $v.stream.kinesis.dlqStreamName | quote }}
  {{- if $onchain }}
  COATTAIL_STREAM__KINESIS__ONCHAIN_STREAM_NAME: {{ $v.stream.kinesis.onchainStreamName | quote }}
  COATTAIL_STREAM__KINESIS__ONCHAIN_DLQ_STREAM_NAME: {{ $v.stream.kinesis.onchainDlqStreamName | quote }}
  {{- end }}
  COATTAIL_STREAM__KINESIS__REGION: {{ default $region $v.stream.kinesis.region | quote }}
  {{- if $v.stream.kinesis.endpointUrl }}
  COATTAIL_STREAM__KINESIS__ENDPOINT_URL: {{ $v.stream.kinesis.endpointUrl | quote }}
  {{- end }}
  {{- end }}
  COATTAIL_HOT_STORE__TABLE: {{ $v.hotStore.table | quote }}
  COATTAIL_HOT_STORE__REGION: {{ default $region $v.hotStore.region | quote }}
  {{- if $v.hotStore.endpointUrl }}
  COATTAIL_HOT_STORE__ENDPOINT_URL: {{ $v.hotStore.endpointUrl | quote }}
  {{- end }}
  COATTAIL_HOT_STORE__CREATE_IF_MISSING: {{ $v.hotStore.createIfMissing | toString | quote }}
  COATTAIL_LAKE__NAMESPACE: {{ $v.lake.catalog.database | quote }}
  COATTAIL_LAKE__CATALOG__TYPE: {{ $v.lake.catalog.type | quote }}
  {{- if $v.lake.catalog.uri }}
  COATTAIL_LAKE__CATALOG__URI: {{ $v.lake.catalog.uri | quote }}
  {{- end }}
  {{- if $v.lake.catalog.warehouse }}
  COATTAIL_LAKE__CATALOG__WAREHOUSE: {{ $v.lake.catalog.warehouse | quote }}
  {{- end }}
  {{- if $v.lake.rawZone }}
  COATTAIL_LAKE__RAW_ZONE: {{ $v.lake.rawZone | quote }}
  {{- end }}
  {{- if $v.pipeline.checkpointLocation }}
  COATTAIL_PIPELINE__CHECKPOINT_LOCATION: {{ $v.pipeline.checkpointLocation | quote }}
  {{- end }}
  {{- if $v.api.corsOrigins }}
  COATTAIL_API__CORS_ORIGINS: {{ toJson $v.api.corsOrigins | quote }}
  {{- end }}
  {{- range $key, $value := $v.config.extra }}
  {{- $name := printf "COATTAIL_%s" ($key | replace "." "__" | replace "-" "_" | upper) }}
  {{ $name }}: {{ if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ toJson $value | quote }}{{ else if and (kindIs "float64" $value) (eq $value (floor $value)) }}{{ int64 $value | toString | quote }}{{ else }}{{ toString $value | quote }}{{ end }}
  {{- end }}
{{- end -}}
