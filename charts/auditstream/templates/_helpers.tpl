{{/*
Names, labels and the per-service facts every template uses.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "auditstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-auditstream (the release name alone when it holds the chart name), or fullnameOverride. */}}
{{- define "auditstream.fullname" -}}
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

{{/* A resource name: <fullname>-<suffix>. Call with (dict "ctx" $ "suffix" "ingest"). */}}
{{- define "auditstream.resourceName" -}}
{{- printf "%s-%s" (include "auditstream.fullname" .ctx | trunc (int (sub 62 (len .suffix)))) .suffix | trimSuffix "-" -}}
{{- end -}}

{{- define "auditstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "auditstream.labels" -}}
helm.sh/chart: {{ include "auditstream.chart" . }}
app.kubernetes.io/name: {{ include "auditstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: auditstream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. Call with (dict "ctx" $ "c" $component). */}}
{{- define "auditstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "auditstream.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .c.binary }}
{{- end -}}

{{/* All labels of one component's resources. */}}
{{- define "auditstream.componentLabels" -}}
{{ include "auditstream.labels" .ctx }}
app.kubernetes.io/component: {{ .c.binary }}
{{- end -}}

{{/*
The services. binary: the image and command; key: the values block; port:
the HTTP port (health, readiness, metrics; the API of ingest and the
destinations API too); api: clients call it (its Service port is "http");
forwarder: the delivery runtime's name (retry topic
audit.events.retry.<forwarder>). Consumers and the destinations API
(keyring: true) get the destinations' key-encryption key.
*/}}
{{- define "auditstream.componentTable" -}}
ingest:
  key: ingest
  binary: ingest
  port: 8080
  consumer: false
  api: true
datadogForwarder:
  key: datadogForwarder
  binary: datadog-forwarder
  port: 8081
  consumer: true
  forwarder: datadog
eventbridgeForwarder:
  key: eventbridgeForwarder
  binary: eventbridge-forwarder
  port: 8082
  consumer: true
  forwarder: eventbridge
otlpForwarder:
  key: otlpForwarder
  binary: otlp-forwarder
  port: 8085
  consumer: true
  forwarder: otlp
archiver:
  key: archiver
  binary: archiver
  port: 8083
  consumer: true
destinationsApi:
  key: destinationsApi
  binary: destinations-api
  port: 8084
  consumer: false
  api: true
  keyring: true
{{- end -}}

{{/*
One component's table entry with its resource name under .name. Call with
(dict "ctx" $ "key" "ingest"); returns YAML. The shared templates then set
.values to the component's values block:
  $c := include "auditstream.component" . | fromYaml
  $_ := set $c "values" (index .ctx.Values $c.key)
*/}}
{{- define "auditstream.component" -}}
{{- $c := get (fromYaml (include "auditstream.componentTable" .ctx)) .key -}}
{{- if not $c -}}
{{- fail (printf "unknown component %q" .key) -}}
{{- end -}}
{{- $_ := set $c "name" (include "auditstream.resourceName" (dict "ctx" .ctx "suffix" $c.binary)) -}}
{{- toYaml $c -}}
{{- end -}}

{{/* The image of a component. */}}
{{- define "auditstream.image" -}}
{{- $img := .ctx.Values.image -}}
{{- $own := .c.values.image -}}
{{- $tag := $own.tag | default $img.tag | default .ctx.Chart.AppVersion -}}
{{- if $own.repository -}}
{{- printf "%s:%s" $own.repository $tag -}}
{{- else if $img.registry -}}
{{- printf "%s/%s/%s:%s" $img.registry $img.repository .c.binary $tag -}}
{{- else -}}
{{- printf "%s/%s:%s" $img.repository .c.binary $tag -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount name of a component. */}}
{{- define "auditstream.serviceAccountName" -}}
{{- $sa := .c.values.serviceAccount -}}
{{- if $sa.create -}}
{{- $sa.name | default .c.name -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
bytes of a Kubernetes quantity given as an integer with an optional binary
or decimal suffix (512Mi, 1Gi, 500M, 1073741824).
*/}}
{{- define "auditstream.quantityBytes" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[0-9]+" $q -}}
{{- $unit := trimPrefix $num $q -}}
{{- $units := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- if or (not $num) (not (hasKey $units $unit)) -}}
{{- fail (printf "memory quantity %q: write it as an integer with Ki, Mi, Gi, Ti, k, M, G or T (GOMEMLIMIT is derived from it)" $q) -}}
{{- end -}}
{{- mul (int64 $num) (get $units $unit) -}}
{{- end -}}

{{/*
GOMEMLIMIT for a component: goMemLimitPercent of its memory limit (else its
memory request), in MiB. Empty when neither is set.
*/}}
{{- define "auditstream.goMemLimit" -}}
{{- $res := .c.values.resources | default dict -}}
{{- $mem := "" -}}
{{- if and $res.limits $res.limits.memory -}}
{{- $mem = $res.limits.memory -}}
{{- else if and $res.requests $res.requests.memory -}}
{{- $mem = $res.requests.memory -}}
{{- end -}}
{{- if $mem -}}
{{- $bytes := include "auditstream.quantityBytes" $mem | int64 -}}
{{- $limit := div (mul $bytes (int64 .ctx.Values.goMemLimitPercent)) 100 -}}
{{- printf "%dMiB" (div $limit 1048576) -}}
{{- end -}}
{{- end -}}

{{/* Keys whose values are secrets in the services' configs and in connection settings. */}}
{{- define "auditstream.secretKeys" -}}
{{- list "password" "api_key" "signing_key" "access_key_id" "secret_access_key" "session_token" "external_id" "account_key" "sas_token" "credentials" "token" "client_secret" | toJson -}}
{{- end -}}

{{/*
Refuses a secret value anywhere under .value: a secret key must hold a
{file: /path} or {env: NAME} reference (or, for credentials, a block of
them). The error names the path, never the value. Call with
(dict "path" "destinations.connections" "value" $v "keys" $secretKeys).
*/}}
{{- define "auditstream.noInlineSecrets" -}}
{{- $path := .path -}}
{{- $keys := .keys -}}
{{- if kindIs "map" .value -}}
{{- range $k, $v := .value -}}
{{- $p := printf "%s.%s" $path $k -}}
{{- if and (has $k $keys) (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) (ne (toString $v) "") -}}
{{- fail (printf "%s holds a secret value: secrets never go into values or ConfigMaps; mount an existing Secret (secretMounts, existingSecret) and write {file: /path/to/key} (or {env: NAME})" $p) -}}
{{- end -}}
{{- include "auditstream.noInlineSecrets" (dict "path" $p "value" $v "keys" $keys) -}}
{{- end -}}
{{- else if kindIs "slice" .value -}}
{{- range $i, $v := .value -}}
{{- include "auditstream.noInlineSecrets" (dict "path" (printf "%s[%d]" $path $i) "value" $v "keys" $keys) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Refuses extraEnv entries that carry a secret-looking value inline. */}}
{{- define "auditstream.checkExtraEnv" -}}
{{- range $i, $e := .c.values.extraEnv -}}
{{- if and (hasKey $e "value") (regexMatch "(?i)(PASSWORD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|ACCOUNT_?KEY|SIGNING_?KEY|CREDENTIALS)" $e.name) -}}
{{- fail (printf "%s.extraEnv[%d] (%s) sets a secret-looking variable to a value: use valueFrom.secretKeyRef" $.c.key $i $e.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checks of one component's values that the schema cannot express: the
replicas cap, secret values in config blocks and extraEnv.
*/}}
{{- define "auditstream.checkComponent" -}}
{{- $v := .c.values -}}
{{- $keys := include "auditstream.secretKeys" .ctx | fromJsonArray -}}
{{- include "auditstream.noInlineSecrets" (dict "path" (printf "%s.config" .c.key) "value" $v.config "keys" $keys) -}}
{{- include "auditstream.noInlineSecrets" (dict "path" (printf "%s.structuredConfig" .c.key) "value" $v.structuredConfig "keys" $keys) -}}
{{- include "auditstream.checkExtraEnv" . -}}
{{- if .c.consumer -}}
{{- $partitions := int .ctx.Values.kafka.topic.partitions -}}
{{- $max := int $v.replicas -}}
{{- $scaled := include "auditstream.autoscaled" . -}}
{{- if $scaled -}}
{{- $max = int $v.autoscaling.maxReplicas -}}
{{- if gt (int $v.autoscaling.minReplicas) $max -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) is above maxReplicas (%d)" .c.key (int $v.autoscaling.minReplicas) $max) -}}
{{- end -}}
{{- end -}}
{{- if and (gt $max $partitions) (not $v.allowReplicasAbovePartitions) -}}
{{- fail (printf "%s: %d replicas for %d partitions of %s; a consumer group gives each partition to one member, so the extra replicas would sit idle. Lower %s, raise kafka.topic.partitions, or set %s.allowReplicasAbovePartitions" .c.key $max $partitions .ctx.Values.kafka.topic.name (ternary "autoscaling.maxReplicas" "replicas" (eq $scaled "true")) .c.key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The kafka.sasl checks, by mechanism. */}}
{{- define "auditstream.checkSASL" -}}
{{- $k := .Values.kafka -}}
{{- $s := $k.sasl -}}
{{- $mech := $s.mechanism -}}
{{- if has $mech (list "plain" "scram-sha-256" "scram-sha-512") -}}
{{- if not $s.existingSecret -}}
{{- fail "kafka.sasl.existingSecret is required with kafka.sasl.mechanism: the Secret holding the password" -}}
{{- end -}}
{{- if and (not $s.username) (not $s.usernameKey) -}}
{{- fail "kafka.sasl.username or kafka.sasl.usernameKey is required with kafka.sasl.mechanism" -}}
{{- end -}}
{{- else if $mech -}}
{{- if not $k.tls.enabled -}}
{{- fail (printf "kafka.tls.enabled must be true with kafka.sasl.mechanism %s: %s" $mech (ternary "MSK's IAM listeners (port 9098) accept TLS only" "a bearer token must not cross the network in the clear" (eq $mech "aws_msk_iam"))) -}}
{{- end -}}
{{- if or $s.username $s.usernameKey -}}
{{- fail (printf "kafka.sasl.username and usernameKey do not apply to %s" $mech) -}}
{{- end -}}
{{- end -}}
{{- if eq $mech "aws_msk_iam" -}}
{{- if and $s.aws.externalIdKey (not $s.aws.roleArn) -}}
{{- fail "kafka.sasl.aws.externalIdKey needs kafka.sasl.aws.roleArn: the external id is presented when assuming that role" -}}
{{- end -}}
{{- if and $s.aws.externalIdKey (not $s.existingSecret) -}}
{{- fail "kafka.sasl.existingSecret is required with kafka.sasl.aws.externalIdKey: the Secret holding the external id" -}}
{{- end -}}
{{- end -}}
{{- if eq $mech "oauthbearer" -}}
{{- $o := $s.oauth -}}
{{- $sources := 0 -}}
{{- range (list $o.google $o.tokenAudience $o.tokenKey $o.tokenUrl) }}{{ if . }}{{ $sources = add1 $sources }}{{ end }}{{ end -}}
{{- if ne (int $sources) 1 -}}
{{- fail "kafka.sasl.oauth: set exactly one of google (Google credentials), tokenAudience (a projected ServiceAccount token), tokenKey (a token in existingSecret an agent keeps fresh) or tokenUrl (the client-credentials flow)" -}}
{{- end -}}
{{- if and $o.tokenUrl (not $o.clientId) -}}
{{- fail "kafka.sasl.oauth.clientId is required with tokenUrl" -}}
{{- end -}}
{{- if and (or $o.tokenUrl $o.tokenKey) (not $s.existingSecret) -}}
{{- fail (printf "kafka.sasl.existingSecret is required with kafka.sasl.oauth.%s: the Secret holding the %s" (ternary "tokenUrl" "tokenKey" (not (empty $o.tokenUrl))) (ternary "client secret" "token" (not (empty $o.tokenUrl)))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The keys of kafka.sasl.existingSecret the services read, by mechanism. */}}
{{- define "auditstream.saslSecretKeys" -}}
{{- $s := .Values.kafka.sasl -}}
{{- $keys := list -}}
{{- if has $s.mechanism (list "plain" "scram-sha-256" "scram-sha-512") -}}
{{- $keys = list $s.passwordKey -}}
{{- else if and (eq $s.mechanism "aws_msk_iam") $s.aws.externalIdKey -}}
{{- $keys = list $s.aws.externalIdKey -}}
{{- else if eq $s.mechanism "oauthbearer" -}}
{{- if $s.oauth.tokenUrl -}}
{{- $keys = list $s.oauth.clientSecretKey -}}
{{- else if $s.oauth.tokenKey -}}
{{- $keys = list $s.oauth.tokenKey -}}
{{- end -}}
{{- end -}}
{{- toJson $keys -}}
{{- end -}}

{{/* Chart-wide checks. */}}
{{- define "auditstream.checkGlobal" -}}
{{- $k := .Values.kafka -}}
{{- if not $k.brokers -}}
{{- fail "kafka.brokers is required: the seed brokers of your Kafka as host:port" -}}
{{- end -}}
{{- include "auditstream.checkSASL" . -}}
{{- if and (or $k.tls.ca.existingSecret $k.tls.clientCert.existingSecret) (not $k.tls.enabled) -}}
{{- fail "kafka.tls.enabled must be true when kafka.tls.ca or kafka.tls.clientCert names a Secret" -}}
{{- end -}}
{{- $keys := include "auditstream.secretKeys" . | fromJsonArray -}}
{{- include "auditstream.noInlineSecrets" (dict "path" "destinations.connections" "value" .Values.destinations.connections "keys" $keys) -}}
{{- $e := .Values.encryption -}}
{{- if and $e.keyring.existingSecret $e.kms.keyId -}}
{{- fail "encryption: set only one of keyring.existingSecret and kms.keyId" -}}
{{- end -}}
{{- if .Values.destinationsApi.enabled -}}
{{- if not (or $e.keyring.existingSecret $e.kms.keyId) -}}
{{- fail "encryption.keyring.existingSecret or encryption.kms.keyId is required with destinationsApi.enabled: the key-encryption key the API seals accounts' secrets with (docs/secrets-encryption.md)" -}}
{{- end -}}
{{- if not .Values.destinationsApi.auth.tokens -}}
{{- fail "destinationsApi.auth.tokens: at least one token (name, sha256 of the token and the accounts it manages, or \"*\") is required" -}}
{{- end -}}
{{- range $i, $tok := .Values.destinationsApi.auth.tokens -}}
{{- if not (regexMatch "^[0-9a-fA-F]{64}$" (toString $tok.sha256)) -}}
{{- fail (printf "destinationsApi.auth.tokens[%d].sha256 is not 64 hex characters: put the token's SHA-256 here (printf %%s \"$TOKEN\" | sha256sum), never the token" $i) -}}
{{- end -}}
{{- if not $tok.accounts -}}
{{- fail (printf "destinationsApi.auth.tokens[%d].accounts: list the accounts the token manages, or \"*\" for every account" $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Milliseconds of a Go duration made of h, m, s and ms parts (168h, 1h30m). */}}
{{- define "auditstream.durationMillis" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+(h|m|s|ms))+$" $d) -}}
{{- fail (printf "duration %q: write it with h, m, s and ms, e.g. 168h" $d) -}}
{{- end -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" $d -1 -}}
{{- $n := int64 (regexFind "^[0-9]+" .) -}}
{{- $u := trimPrefix (toString $n) . -}}
{{- $ms = add $ms (mul $n (get (dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1) $u)) -}}
{{- end -}}
{{- $ms -}}
{{- end -}}
