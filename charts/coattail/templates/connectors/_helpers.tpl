{{/* Connectors: one Deployment per exchange (or per SYMBOLS partition of an exchange), and one per
chain (ethereum, solana), whose RPC URL comes from a Secret. */}}

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

{{/* Chain connectors run as their own service account (serviceAccounts.chains): on EKS its IAM role
puts on-chain events and reads the trades stream for prices, which the exchanges' role may not. */}}
{{- define "coattail.connectors.chainServiceAccountName" -}}
{{- include "coattail.serviceAccountName" (list . "chains") -}}
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
features.yaml `kind` is cex (chains are deployed by coattail.connectors.chains). Returns YAML:
{exchanges: [...]}.
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
{{- if eq (default "cex" (index $features.connectors $name).kind) "onchain" -}}
{{- fail (printf "connectors.exchanges names %q, an on-chain connector: deploy it with connectors.chains.%s.enabled=true" $name $name) -}}
{{- end -}}
{{- end -}}
{{- dict "exchanges" $out | toYaml -}}
{{- end -}}

{{/*
Chains that get connector Deployments: the tier's connectors whose features.yaml `kind` is onchain,
plus every connectors.chains.<chain> with `enabled: true`, minus those with `enabled: false`.
Refuses a chain config/features.yaml does not configure as onchain, and any literal RPC URL in the
values (it may carry an API key; it belongs in a Secret). Returns YAML: {chains: [...]}.
*/}}
{{- define "coattail.connectors.chains" -}}
{{- $features := include "coattail.features" . | fromYaml -}}
{{- $tier := include "coattail.tier" . | fromYaml -}}
{{- $values := .Values.connectors.chains | default dict -}}
{{- $out := list -}}
{{- range $name := $tier.connectors -}}
{{- $c := index $features.connectors $name | default dict -}}
{{- if eq (default "cex" $c.kind) "onchain" -}}{{- $out = append $out $name -}}{{- end -}}
{{- end -}}
{{- range $name, $chain := $values -}}
{{- $c := index $features.connectors $name | default dict -}}
{{- if ne (default "" $c.kind) "onchain" -}}
{{- fail (printf "connectors.chains names %q, which config/features.yaml does not configure as an on-chain connector" $name) -}}
{{- end -}}
{{- if not (kindIs "map" $chain) -}}
{{- fail (printf "connectors.chains.%s must be a map {enabled, rpcUrlSecret: {name, key}}; never put the RPC URL itself in values (it may carry an API key)" $name) -}}
{{- end -}}
{{- range $key, $v := $chain -}}
{{- if not (has $key (list "enabled" "rpcUrlSecret")) -}}
{{- fail (printf "connectors.chains.%s.%s is not a setting; the RPC URL (it may carry an API key) goes in a Secret named by connectors.chains.%s.rpcUrlSecret {name, key}" $name $key $name) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $chain "enabled" -}}
{{- if $chain.enabled -}}{{- $out = append $out $name -}}{{- else -}}{{- $out = without $out $name -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- range $key, $_ := .Values.config.extra -}}
{{- if regexMatch "^connectors\\.[^.]+\\.rpc_url$" $key -}}
{{- fail (printf "config.extra.%s: never put an RPC URL in values (it may carry an API key); store it in a Secret and set connectors.chains.<chain>.rpcUrlSecret {name, key}" $key) -}}
{{- end -}}
{{- end -}}
{{- dict "chains" ($out | uniq) | toYaml -}}
{{- end -}}

{{/* The Secret holding a chain's RPC URL: (list $ $chain) -> {name, key}; the name defaults to
<fullname>-<chain>-rpc, the key to rpc-url. */}}
{{- define "coattail.connectors.rpcUrlSecret" -}}
{{- $ := index . 0 -}}
{{- $chain := index . 1 -}}
{{- $given := (index ($.Values.connectors.chains | default dict) $chain | default dict).rpcUrlSecret | default dict -}}
{{- if not (kindIs "map" $given) -}}
{{- fail (printf "connectors.chains.%s.rpcUrlSecret must be {name, key} of an existing Secret, not the RPC URL itself (it may carry an API key)" $chain) -}}
{{- end -}}
{{- $name := default (printf "%s-%s-rpc" (include "coattail.fullname" $) $chain) $given.name -}}
{{- $key := default "rpc-url" $given.key -}}
{{- /* The messages never echo the value: it may be the URL with its key, pasted in the wrong place. */ -}}
{{- if or (contains ":" $name) (contains "/" $name) (contains ":" $key) (contains "/" $key) -}}
{{- fail (printf "connectors.chains.%s.rpcUrlSecret names a Secret and its key, not the RPC URL itself (it may carry an API key)" $chain) -}}
{{- end -}}
{{- if and $given.name (not (regexMatch "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$" $name)) -}}
{{- fail (printf "connectors.chains.%s.rpcUrlSecret.name is not a valid Secret name (lower-case letters, digits, '-' and '.')" $chain) -}}
{{- end -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $key) -}}
{{- fail (printf "connectors.chains.%s.rpcUrlSecret.key is not a valid Secret key (letters, digits, '-', '_' and '.')" $chain) -}}
{{- end -}}
{{- dict "name" $name "key" $key | toYaml -}}
{{- end -}}

{{/* A chain's settings variable: ethereum -> COATTAIL_CONNECTORS__ETHEREUM__RPC_URL (the settings
loader maps `__` to nesting, lower-cased: connectors.ethereum.rpc_url). */}}
{{- define "coattail.connectors.rpcUrlEnv" -}}
{{- printf "COATTAIL_CONNECTORS__%s__RPC_URL" (upper .) -}}
{{- end -}}

{{/* Label that tells one chain connector Deployment from another. */}}
{{- define "coattail.connectors.chainLabels" -}}
coattail.io/chain: {{ . }}
{{- end -}}

{{- define "coattail.connectors.chainDeploymentName" -}}
{{- printf "%s-connector-%s" (include "coattail.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "true" when on-chain events flow in this release: a chain connector is deployed here, or the
tier's connectors include a chain (the pipeline then reads the on-chain topic/stream). */}}
{{- define "coattail.connectors.onchain" -}}
{{- $features := include "coattail.features" . | fromYaml -}}
{{- $tier := include "coattail.tier" . | fromYaml -}}
{{- $found := (include "coattail.connectors.chains" . | fromYaml).chains -}}
{{- range $name := $tier.connectors -}}
{{- if eq (default "cex" (index $features.connectors $name | default dict).kind) "onchain" -}}
{{- $found = append $found $name -}}
{{- end -}}
{{- end -}}
{{- if $found -}}true{{- end -}}
{{- end -}}
