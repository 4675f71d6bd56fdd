{{/*
The services' config files, rendered from values. Secrets appear only as
{file: ...} references to files of existing Secrets mounted at these paths.
*/}}

{{- define "auditstream.paths" -}}
config: /etc/auditstream/config
destinations: /etc/auditstream/destinations
kafkaSasl: /etc/auditstream/secrets/kafka-sasl
kafkaToken: /var/run/secrets/auditstream/kafka-token
kafkaCa: /etc/auditstream/secrets/kafka-ca
kafkaClientCert: /etc/auditstream/secrets/kafka-client-cert
signingKey: /etc/auditstream/secrets/archive-signing-key
archivePublicKeys: /etc/auditstream/archive-public-keys
keyring: /etc/auditstream/keyring
spool: /var/lib/auditstream/spool
{{- end -}}

{{/* The `kafka` section for a component. */}}
{{- define "auditstream.kafkaConfig" -}}
{{- $k := .ctx.Values.kafka -}}
{{- $paths := include "auditstream.paths" .ctx | fromYaml -}}
brokers: {{ toJson $k.brokers }}
client_id: {{ printf "auditstream-%s" .c.binary }}
dial_timeout: {{ $k.dialTimeout }}
request_timeout: {{ $k.requestTimeout }}
{{- if $k.tls.enabled }}
tls:
  enabled: true
  {{- if $k.tls.ca.existingSecret }}
  ca_file: {{ printf "%s/%s" $paths.kafkaCa $k.tls.ca.key }}
  {{- end }}
  {{- if $k.tls.clientCert.existingSecret }}
  cert_file: {{ printf "%s/%s" $paths.kafkaClientCert $k.tls.clientCert.certKey }}
  key_file: {{ printf "%s/%s" $paths.kafkaClientCert $k.tls.clientCert.keyKey }}
  {{- end }}
  {{- with $k.tls.serverName }}
  server_name: {{ . }}
  {{- end }}
  {{- if $k.tls.insecureSkipVerify }}
  insecure_skip_verify: true
  {{- end }}
{{- end }}
{{- $mech := $k.sasl.mechanism -}}
{{- if $mech }}
sasl:
  mechanism: {{ $mech }}
  {{- if eq $mech "aws_msk_iam" }}
  {{- with $k.sasl.aws.roleArn }}
  aws:
    credentials:
      role_arn: {{ . }}
      {{- with $k.sasl.aws.externalIdKey }}
      external_id: {file: {{ printf "%s/%s" $paths.kafkaSasl . }}}
      {{- end }}
  {{- end }}
  {{- else if eq $mech "oauthbearer" }}
  {{- $o := $k.sasl.oauth }}
  oauth:
    {{- if $o.google }}
    google: true
    {{- with $o.googlePrincipal }}
    google_principal: {{ . }}
    {{- end }}
    {{- else if $o.tokenUrl }}
    token_url: {{ $o.tokenUrl }}
    client_id: {{ $o.clientId }}
    client_secret: {file: {{ printf "%s/%s" $paths.kafkaSasl $o.clientSecretKey }}}
    {{- with $o.scopes }}
    scopes: {{ toJson . }}
    {{- end }}
    {{- with $o.params }}
    params: {{ toJson . }}
    {{- end }}
    {{- else if $o.tokenAudience }}
    token: {file: {{ printf "%s/token" $paths.kafkaToken }}}
    {{- else }}
    token: {file: {{ printf "%s/%s" $paths.kafkaSasl $o.tokenKey }}}
    {{- end }}
    {{- with $o.extensions }}
    extensions: {{ toJson . }}
    {{- end }}
  {{- else }}
  # the username comes from AUDITSTREAM_KAFKA_SASL_USERNAME
  password: {file: {{ printf "%s/%s" $paths.kafkaSasl $k.sasl.passwordKey }}}
  {{- end }}
{{- end }}
topics:
  bootstrap: {{ $k.bootstrapTopics }}
  events:
    name: {{ $k.topic.name }}
    partitions: {{ int $k.topic.partitions }}
    replication_factor: {{ int $k.topic.replicationFactor }}
    retention: {{ $k.topic.retention }}
  dead_letter:
    name: {{ $k.deadLetterTopic.name }}
    partitions: {{ int $k.deadLetterTopic.partitions }}
    replication_factor: {{ int $k.deadLetterTopic.replicationFactor }}
    retention: {{ $k.deadLetterTopic.retention }}
  destinations:
    name: {{ $k.destinationsTopic.name }}
    partitions: {{ int $k.destinationsTopic.partitions }}
    replication_factor: {{ int $k.destinationsTopic.replicationFactor }}
  status:
    name: {{ $k.statusTopic.name }}
    partitions: {{ int $k.statusTopic.partitions }}
    replication_factor: {{ int $k.statusTopic.replicationFactor }}
    retention: {{ $k.statusTopic.retention }}
{{- end -}}

{{/*
The key-encryption key of the destinations' secrets (a secretbox config:
the API's `encryption`, the consumers' `destinations.encryption`), or an
empty dict when none is configured.
*/}}
{{- define "auditstream.encryptionConfig" -}}
{{- $e := .Values.encryption -}}
{{- $paths := include "auditstream.paths" . | fromYaml -}}
{{- if $e.keyring.existingSecret -}}
keyring_file: {{ printf "%s/%s" $paths.keyring $e.keyring.key }}
{{- else if $e.kms.keyId -}}
kms:
  key_id: {{ $e.kms.keyId | quote }}
  {{- with $e.kms.region }}
  region: {{ . | quote }}
  {{- end }}
  {{- with $e.kms.endpoint }}
  endpoint: {{ . | quote }}
  {{- end }}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/* The destinations file's path inside the pods. */}}
{{- define "auditstream.destinationsFile" -}}
{{- $paths := include "auditstream.paths" . | fromYaml -}}
{{- printf "%s/%s" $paths.destinations .Values.destinations.key -}}
{{- end -}}

{{/* The name of the destinations ConfigMap. */}}
{{- define "auditstream.destinationsConfigMap" -}}
{{- .Values.destinations.existingConfigMap | default (include "auditstream.resourceName" (dict "ctx" . "suffix" "destinations")) -}}
{{- end -}}

{{/* A retry topic: audit.events.retry.<forwarder>. */}}
{{- define "auditstream.retryTopic" -}}
{{- printf "audit.events.retry.%s" . -}}
{{- end -}}

{{/*
A component's whole config file. Call with (dict "ctx" $ "c" $component).
*/}}
{{- define "auditstream.config" -}}
{{- $ctx := .ctx -}}
{{- $c := .c -}}
{{- $v := $c.values -}}
{{- $paths := include "auditstream.paths" $ctx | fromYaml -}}
{{- $cfg := dict
  "log" (dict "level" $ctx.Values.log.level "format" $ctx.Values.log.format)
  "http" (dict "addr" (printf ":%d" (int $c.port)))
  "kafka" (include "auditstream.kafkaConfig" . | fromYaml) -}}
{{- $encryption := include "auditstream.encryptionConfig" $ctx | fromYaml -}}
{{- if $c.consumer -}}
{{- $dest := dict "file" (include "auditstream.destinationsFile" $ctx) "poll_interval" $ctx.Values.destinations.pollInterval "topic" $ctx.Values.destinations.topic -}}
{{- if $encryption -}}
{{- $_ := set $dest "encryption" $encryption -}}
{{- end -}}
{{- $_ := set $cfg "destinations" $dest -}}
{{- end -}}
{{- if eq $c.key "ingest" -}}
{{- $_ := set $cfg "ingest" (deepCopy ($v.config | default dict)) -}}
{{- else if $c.forwarder -}}
{{- $r := $ctx.Values.kafka.retryTopic -}}
{{- $delivery := dict "group" $v.consumerGroup "retry_topic" (dict "name" (include "auditstream.retryTopic" $c.forwarder) "partitions" (int $r.partitions) "replication_factor" (int $r.replicationFactor) "retention" $r.retention) -}}
{{- $_ := set $cfg "delivery" (mergeOverwrite $delivery (deepCopy ($v.config | default dict))) -}}
{{- else if eq $c.key "archiver" -}}
{{- $archive := dict "group" $v.consumerGroup "spool_dir" $paths.spool -}}
{{- if $v.signingKey.existingSecret -}}
{{- $_ := set $archive "signing_key" (dict "file" (printf "%s/%s" $paths.signingKey $v.signingKey.key)) -}}
{{- end -}}
{{- $_ := set $cfg "archive" (mergeOverwrite $archive (deepCopy ($v.config | default dict))) -}}
{{- else if eq $c.key "destinationsApi" -}}
{{- $_ := set $cfg "auth" (dict "tokens" (deepCopy $v.auth.tokens)) -}}
{{- $_ := set $cfg "encryption" $encryption -}}
{{- $api := dict "destinations_file" (include "auditstream.destinationsFile" $ctx) -}}
{{- $_ := set $cfg "api" (mergeOverwrite $api (deepCopy ($v.config | default dict))) -}}
{{- if and $v.archivePublicKeys.existingConfigMap $v.archivePublicKeys.keys -}}
{{- $files := list -}}
{{- range $v.archivePublicKeys.keys -}}
{{- $files = append $files (printf "%s/%s" $paths.archivePublicKeys .) -}}
{{- end -}}
{{- $_ := set $cfg "archive" (dict "public_keys" $files) -}}
{{- end -}}
{{- end -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy ($v.structuredConfig | default dict)) -}}
{{- toYaml $cfg -}}
{{- end -}}
