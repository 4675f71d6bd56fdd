{{/*
The resources every component has. Each component's folder calls these with
(dict "ctx" $ "key" "<values key>"). "auditstream.with" resolves the
component and its values.
*/}}

{{- define "auditstream.with" -}}
{{- $c := include "auditstream.component" . | fromYaml -}}
{{- $_ := set $c "values" (index .ctx.Values $c.key) -}}
{{- $_ := set $c "port" (int $c.port) -}}
{{- toJson $c -}}
{{- end -}}

{{/* Whether KEDA scales the component ("true" or ""): consumers, with keda.enabled, unless autoscaling.keda is false. */}}
{{- define "auditstream.kedaScaled" -}}
{{- if and .c.consumer .ctx.Values.keda.enabled (dig "keda" true .c.values.autoscaling) -}}true{{- end -}}
{{- end -}}

{{/* Whether an autoscaler owns the component's replicas ("true" or ""). */}}
{{- define "auditstream.autoscaled" -}}
{{- if or .c.values.autoscaling.enabled (include "auditstream.kedaScaled" .) -}}true{{- end -}}
{{- end -}}

{{/* The pod label Azure Workload Identity needs ("true" or ""). */}}
{{- define "auditstream.azureWorkloadIdentity" -}}
{{- if .c.values.workloadIdentity.azure.clientId -}}true{{- end -}}
{{- end -}}

{{/* ConfigMap: the component's config file. */}}
{{- define "auditstream.configmap" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- if $c.values.enabled }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
data:
  config.yaml: |
    {{- include "auditstream.config" (dict "ctx" .ctx "c" $c) | nindent 4 }}
{{- end }}
{{- end -}}

{{/* Deployment. */}}
{{- define "auditstream.deployment" -}}
{{- $ctx := .ctx -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- if $v.enabled }}
{{- include "auditstream.checkGlobal" $ctx }}
{{- include "auditstream.checkComponent" (dict "ctx" $ctx "c" $c) }}
{{- if and (eq $c.key "ingest") (not (dig "auth" "disabled" false $v.config)) (not (dig "auth" "tokens" list $v.config)) }}
{{- fail "ingest.config.auth.tokens: at least one token (name and sha256 of the token, never the token) is required unless ingest.config.auth.disabled is true" }}
{{- end }}
{{- if eq $c.key "ingest" }}
{{- range $i, $tok := (dig "auth" "tokens" list $v.config) }}
{{- if not (regexMatch "^[0-9a-fA-F]{64}$" (toString $tok.sha256)) }}
{{- fail (printf "ingest.config.auth.tokens[%d].sha256 is not 64 hex characters: put the token's SHA-256 here (printf %%s \"$TOKEN\" | sha256sum), never the token" $i) }}
{{- end }}
{{- end }}
{{- end }}
{{- $paths := include "auditstream.paths" $ctx | fromYaml -}}
{{- $k := $ctx.Values.kafka -}}
{{- $saslKeys := include "auditstream.saslSecretKeys" $ctx | fromJsonArray -}}
{{- $goMemLimit := include "auditstream.goMemLimit" (dict "ctx" $ctx "c" $c) -}}
{{- $probes := $v.probes | default dict }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" $ctx "c" $c) | nindent 4 }}
spec:
  {{- if not (include "auditstream.autoscaled" (dict "ctx" $ctx "c" $c)) }}
  replicas: {{ int $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "auditstream.selectorLabels" (dict "ctx" $ctx "c" $c) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "auditstream.selectorLabels" (dict "ctx" $ctx "c" $c) | nindent 8 }}
        {{- if include "auditstream.azureWorkloadIdentity" (dict "c" $c) }}
        azure.workload.identity/use: "true"
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ printf "%s\n" (include "auditstream.config" (dict "ctx" $ctx "c" $c)) | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "auditstream.serviceAccountName" (dict "c" $c) }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ int $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $ctx.Values.podSecurityContext | nindent 8 }}
      {{- with $ctx.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $c.binary }}
          image: {{ include "auditstream.image" (dict "ctx" $ctx "c" $c) }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          args: ["--config", "{{ $paths.config }}/config.yaml"]
          ports:
            - name: http
              containerPort: {{ $c.port }}
              protocol: TCP
          env:
            {{- with $goMemLimit }}
            - name: GOMEMLIMIT
              value: {{ . | quote }}
            {{- end }}
            {{- if and (eq $k.sasl.mechanism "aws_msk_iam") $k.sasl.aws.region }}
            - name: AWS_REGION
              value: {{ $k.sasl.aws.region | quote }}
            {{- end }}
            {{- if has $k.sasl.mechanism (list "plain" "scram-sha-256" "scram-sha-512") }}
            - name: AUDITSTREAM_KAFKA_SASL_USERNAME
              {{- if $k.sasl.usernameKey }}
              valueFrom:
                secretKeyRef:
                  name: {{ $k.sasl.existingSecret }}
                  key: {{ $k.sasl.usernameKey }}
              {{- else }}
              value: {{ $k.sasl.username | quote }}
              {{- end }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml (mergeOverwrite (dict "periodSeconds" 2 "timeoutSeconds" 3 "failureThreshold" 30) ($probes.startup | default dict)) | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml (mergeOverwrite (dict "periodSeconds" 10 "timeoutSeconds" 3 "failureThreshold" 3) ($probes.liveness | default dict)) | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml (mergeOverwrite (dict "periodSeconds" 5 "timeoutSeconds" 3 "failureThreshold" 3) ($probes.readiness | default dict)) | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $ctx.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: {{ $paths.config }}
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if or $c.consumer (eq $c.key "destinationsApi") }}
            - name: destinations
              mountPath: {{ $paths.destinations }}
              readOnly: true
            {{- end }}
            {{- if and (or $c.consumer $c.keyring) $ctx.Values.encryption.keyring.existingSecret }}
            - name: keyring
              mountPath: {{ $paths.keyring }}
              readOnly: true
            {{- end }}
            {{- if $saslKeys }}
            - name: kafka-sasl
              mountPath: {{ $paths.kafkaSasl }}
              readOnly: true
            {{- end }}
            {{- if and (eq $k.sasl.mechanism "oauthbearer") $k.sasl.oauth.tokenAudience }}
            - name: kafka-token
              mountPath: {{ $paths.kafkaToken }}
              readOnly: true
            {{- end }}
            {{- if and $k.tls.enabled $k.tls.ca.existingSecret }}
            - name: kafka-ca
              mountPath: {{ $paths.kafkaCa }}
              readOnly: true
            {{- end }}
            {{- if and $k.tls.enabled $k.tls.clientCert.existingSecret }}
            - name: kafka-client-cert
              mountPath: {{ $paths.kafkaClientCert }}
              readOnly: true
            {{- end }}
            {{- if eq $c.key "archiver" }}
            - name: spool
              mountPath: {{ $paths.spool }}
            {{- if $v.signingKey.existingSecret }}
            - name: signing-key
              mountPath: {{ $paths.signingKey }}
              readOnly: true
            {{- end }}
            {{- end }}
            {{- if and (eq $c.key "destinationsApi") $v.archivePublicKeys.existingConfigMap $v.archivePublicKeys.keys }}
            - name: archive-public-keys
              mountPath: {{ $paths.archivePublicKeys }}
              readOnly: true
            {{- end }}
            {{- range $v.secretMounts }}
            - name: {{ printf "secret-%s" .name }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: config
          configMap:
            name: {{ $c.name }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- if or $c.consumer (eq $c.key "destinationsApi") }}
        - name: destinations
          configMap:
            name: {{ include "auditstream.destinationsConfigMap" $ctx }}
            items:
              - key: {{ $ctx.Values.destinations.key }}
                path: {{ $ctx.Values.destinations.key }}
        {{- end }}
        {{- if and (or $c.consumer $c.keyring) $ctx.Values.encryption.keyring.existingSecret }}
        - name: keyring
          secret:
            secretName: {{ $ctx.Values.encryption.keyring.existingSecret }}
            defaultMode: 0440
            items:
              - key: {{ $ctx.Values.encryption.keyring.key }}
                path: {{ $ctx.Values.encryption.keyring.key }}
        {{- end }}
        {{- if $saslKeys }}
        - name: kafka-sasl
          secret:
            secretName: {{ $k.sasl.existingSecret }}
            defaultMode: 0440
            items:
              {{- range $saslKeys }}
              - key: {{ . }}
                path: {{ . }}
              {{- end }}
        {{- end }}
        {{- if and (eq $k.sasl.mechanism "oauthbearer") $k.sasl.oauth.tokenAudience }}
        # the kubelet renews the token at 80% of its lifetime
        - name: kafka-token
          projected:
            defaultMode: 0440
            sources:
              - serviceAccountToken:
                  audience: {{ $k.sasl.oauth.tokenAudience | quote }}
                  expirationSeconds: {{ int $k.sasl.oauth.tokenExpirationSeconds }}
                  path: token
        {{- end }}
        {{- if and $k.tls.enabled $k.tls.ca.existingSecret }}
        - name: kafka-ca
          secret:
            secretName: {{ $k.tls.ca.existingSecret }}
            defaultMode: 0440
            items:
              - key: {{ $k.tls.ca.key }}
                path: {{ $k.tls.ca.key }}
        {{- end }}
        {{- if and $k.tls.enabled $k.tls.clientCert.existingSecret }}
        - name: kafka-client-cert
          secret:
            secretName: {{ $k.tls.clientCert.existingSecret }}
            defaultMode: 0440
            items:
              - key: {{ $k.tls.clientCert.certKey }}
                path: {{ $k.tls.clientCert.certKey }}
              - key: {{ $k.tls.clientCert.keyKey }}
                path: {{ $k.tls.clientCert.keyKey }}
        {{- end }}
        {{- if eq $c.key "archiver" }}
        - name: spool
          emptyDir:
            {{- with $v.spool.medium }}
            medium: {{ . }}
            {{- end }}
            sizeLimit: {{ $v.spool.sizeLimit }}
        {{- if $v.signingKey.existingSecret }}
        - name: signing-key
          secret:
            secretName: {{ $v.signingKey.existingSecret }}
            defaultMode: 0440
            items:
              - key: {{ $v.signingKey.key }}
                path: {{ $v.signingKey.key }}
        {{- end }}
        {{- end }}
        {{- if and (eq $c.key "destinationsApi") $v.archivePublicKeys.existingConfigMap $v.archivePublicKeys.keys }}
        - name: archive-public-keys
          configMap:
            name: {{ $v.archivePublicKeys.existingConfigMap }}
            items:
              {{- range $v.archivePublicKeys.keys }}
              - key: {{ . }}
                path: {{ . }}
              {{- end }}
        {{- end }}
        {{- range $v.secretMounts }}
        - name: {{ printf "secret-%s" .name }}
          secret:
            secretName: {{ .secretName }}
            defaultMode: 0440
        {{- end }}
{{- end }}
{{- end -}}

{{/* Service: ingest's API and every component's metrics port. */}}
{{- define "auditstream.service" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- if $v.enabled }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
  {{- with $v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "auditstream.selectorLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
  ports:
    - name: {{ ternary "http" "http-metrics" (eq (toString $c.api) "true") }}
      port: {{ int $v.service.port }}
      targetPort: http
      protocol: TCP
{{- end }}
{{- end -}}

{{/* PodDisruptionBudget. */}}
{{- define "auditstream.pdb" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- if and $v.enabled $v.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
spec:
  {{- if hasKey $v.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ $v.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $v.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "auditstream.selectorLabels" (dict "ctx" .ctx "c" $c) | nindent 6 }}
{{- end }}
{{- end -}}

{{/* ServiceAccount, with the cloud workload identity annotations. */}}
{{- define "auditstream.serviceaccount" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- if and $v.enabled $v.serviceAccount.create }}
{{- $wi := $v.workloadIdentity -}}
{{- $ann := dict -}}
{{- $sasl := .ctx.Values.kafka.sasl -}}
{{- with ($wi.aws.roleArn | default (ternary $sasl.aws.serviceAccountRoleArn "" (eq $sasl.mechanism "aws_msk_iam"))) }}{{ $_ := set $ann "eks.amazonaws.com/role-arn" . }}{{ end -}}
{{- with $wi.gcp.serviceAccount }}{{ $_ := set $ann "iam.gke.io/gcp-service-account" . }}{{ end -}}
{{- with $wi.azure.clientId }}{{ $_ := set $ann "azure.workload.identity/client-id" . }}{{ end -}}
{{- with $wi.azure.tenantId }}{{ $_ := set $ann "azure.workload.identity/tenant-id" . }}{{ end -}}
{{- $ann = mergeOverwrite $ann ($v.serviceAccount.annotations | default dict) }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "auditstream.serviceAccountName" (dict "c" $c) }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
  {{- with $ann }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}

{{/* HorizontalPodAutoscaler on CPU: ingest, and consumers without KEDA. */}}
{{- define "auditstream.hpa" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- if and $v.enabled $v.autoscaling.enabled (not (include "auditstream.kedaScaled" (dict "ctx" .ctx "c" $c))) }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $c.name }}
  minReplicas: {{ int $v.autoscaling.minReplicas }}
  maxReplicas: {{ int $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ int $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}

{{/* KEDA ScaledObject (kafka scaler on the consumer's group) and its TriggerAuthentication. */}}
{{- define "auditstream.scaledobject" -}}
{{- $ctx := .ctx -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- $k := $ctx.Values.kafka -}}
{{- if and $v.enabled (include "auditstream.kedaScaled" (dict "ctx" $ctx "c" $c)) }}
{{- if has $k.sasl.mechanism (list "aws_msk_iam" "oauthbearer") }}
{{- fail (printf "%s.autoscaling: the chart configures KEDA's kafka scaler for plain and scram-* only; with kafka.sasl.mechanism %s scale on CPU (%s.autoscaling.keda: false, autoscaling.enabled: true) or set keda.enabled false" $c.key $k.sasl.mechanism $c.key) }}
{{- end }}
{{- $auth := or $k.sasl.mechanism (and $k.tls.enabled (or $k.tls.ca.existingSecret $k.tls.clientCert.existingSecret)) }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" $ctx "c" $c) | nindent 4 }}
spec:
  scaleTargetRef:
    name: {{ $c.name }}
  pollingInterval: {{ int $ctx.Values.keda.pollingInterval }}
  cooldownPeriod: {{ int $ctx.Values.keda.cooldownPeriod }}
  minReplicaCount: {{ int $v.autoscaling.minReplicas }}
  maxReplicaCount: {{ int $v.autoscaling.maxReplicas }}
  triggers:
    - type: kafka
      metadata:
        bootstrapServers: {{ join "," $k.brokers | quote }}
        consumerGroup: {{ $v.consumerGroup | quote }}
        topic: {{ $k.topic.name | quote }}
        lagThreshold: {{ int $v.autoscaling.lagThreshold | toString | quote }}
        offsetResetPolicy: earliest
        allowIdleConsumers: "false"
        {{- with $k.sasl.mechanism }}
        sasl: {{ get (dict "plain" "plaintext" "scram-sha-256" "scram_sha256" "scram-sha-512" "scram_sha512") . | quote }}
        {{- end }}
        {{- if $k.tls.enabled }}
        tls: enable
        {{- if $k.tls.insecureSkipVerify }}
        unsafeSsl: "true"
        {{- end }}
        {{- end }}
      {{- if $auth }}
      authenticationRef:
        name: {{ $c.name }}
      {{- end }}
{{- if $auth }}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" $ctx "c" $c) | nindent 4 }}
spec:
  secretTargetRef:
    {{- if $k.sasl.mechanism }}
    - parameter: password
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.passwordKey }}
    {{- if $k.sasl.usernameKey }}
    - parameter: username
      name: {{ $k.sasl.existingSecret }}
      key: {{ $k.sasl.usernameKey }}
    {{- end }}
    {{- end }}
    {{- if and $k.tls.enabled $k.tls.ca.existingSecret }}
    - parameter: ca
      name: {{ $k.tls.ca.existingSecret }}
      key: {{ $k.tls.ca.key }}
    {{- end }}
    {{- if and $k.tls.enabled $k.tls.clientCert.existingSecret }}
    - parameter: cert
      name: {{ $k.tls.clientCert.existingSecret }}
      key: {{ $k.tls.clientCert.certKey }}
    - parameter: key
      name: {{ $k.tls.clientCert.existingSecret }}
      key: {{ $k.tls.clientCert.keyKey }}
    {{- end }}
  {{- if and $k.sasl.mechanism (not $k.sasl.usernameKey) }}
  env:
    # the literal username, read from the Deployment's container
    - parameter: username
      name: AUDITSTREAM_KAFKA_SASL_USERNAME
      containerName: {{ $c.binary }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* ServiceMonitor for /metrics. */}}
{{- define "auditstream.servicemonitor" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- $sm := .ctx.Values.serviceMonitor -}}
{{- if and $v.enabled $sm.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "auditstream.selectorLabels" (dict "ctx" .ctx "c" $c) | nindent 6 }}
  endpoints:
    - port: {{ ternary "http" "http-metrics" (eq (toString $c.api) "true") }}
      path: /metrics
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy: who may reach the component's port; egress when rules are given. */}}
{{- define "auditstream.networkpolicy" -}}
{{- $c := include "auditstream.with" . | fromJson -}}
{{- $v := $c.values -}}
{{- $np := .ctx.Values.networkPolicy -}}
{{- if and $v.enabled $np.enabled }}
{{- $from := $np.metricsFrom -}}
{{- $clients := get (dict "ingest" $np.ingestFrom "destinationsApi" $np.destinationsApiFrom) $c.key -}}
{{- if and $c.api $np.metricsFrom $clients -}}
{{- $from = concat $clients $np.metricsFrom -}}
{{- else if $c.api -}}
{{- $from = list -}}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $c.name }}
  labels:
    {{- include "auditstream.componentLabels" (dict "ctx" .ctx "c" $c) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "auditstream.selectorLabels" (dict "ctx" .ctx "c" $c) | nindent 6 }}
  policyTypes:
    - Ingress
    {{- if $np.egress }}
    - Egress
    {{- end }}
  ingress:
    - ports:
        - port: http
          protocol: TCP
      {{- with $from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- if $np.egress }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- toYaml $np.egress | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}
