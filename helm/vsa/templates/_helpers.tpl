{{/*
Names and labels.
*/}}
{{- define "vsa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vsa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>. Args: (dict "root" $ "component" "detector") */}}
{{- define "vsa.componentName" -}}
{{- printf "%s-%s" (include "vsa.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vsa.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "vsa.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: vsa
{{- end -}}

{{/* Args: (dict "root" $ "component" "detector") */}}
{{- define "vsa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vsa.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "vsa.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vsa.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image of a pod: the GPU image when the service requests GPUs, else the CPU image.
Args: (dict "root" $ "gpu" true|false)
*/}}
{{- define "vsa.image" -}}
{{- $root := .root -}}
{{- if .gpu -}}
{{- $repo := default $root.Values.image.repository $root.Values.gpuImage.repository -}}
{{- $tag := default (printf "%s-gpu" $root.Chart.AppVersion) $root.Values.gpuImage.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $root.Values.image.repository (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "vsa.gpuImageTag" -}}
{{- default (printf "%s-gpu" .Chart.AppVersion) .Values.gpuImage.tag -}}
{{- end -}}

{{/* Whether a service runs on GPUs: (dict "svc" .Values.detector) -> "true" or "" */}}
{{- define "vsa.gpuEnabled" -}}
{{- if and (hasKey .svc "gpu") .svc.gpu.enabled -}}true{{- end -}}
{{- end -}}

{{/* Consumer group of a service: its groupId, else <topics.prefix>vsa-<component>. */}}
{{- define "vsa.groupId" -}}
{{- default (printf "%svsa-%s" .root.Values.topics.prefix .component) .svc.groupId -}}
{{- end -}}

{{/* The most pods a consumer group can have under these values (replicas, HPA or KEDA max). */}}
{{- define "vsa.maxPods" -}}
{{- $max := int .svc.replicas -}}
{{- if .svc.autoscaling -}}
{{- if .svc.autoscaling.hpa.enabled -}}{{- $max = int .svc.autoscaling.hpa.maxReplicas -}}{{- end -}}
{{- if .svc.autoscaling.keda.enabled -}}{{- $max = int .svc.autoscaling.keda.maxReplicas -}}{{- end -}}
{{- end -}}
{{- $max -}}
{{- end -}}

{{/*
Kafka connection for every container: KAFKA_* variables, secrets by secretKeyRef only.
*/}}
{{- define "vsa.kafkaEnv" -}}
{{- $k := .Values.kafka -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
{{- if $k.sasl.usernameSecret.name }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.usernameSecret.name | quote }}
      key: {{ $k.sasl.usernameSecret.key | quote }}
{{- else if $k.sasl.username }}
- name: KAFKA_SASL_USERNAME
  value: {{ $k.sasl.username | quote }}
{{- end }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.passwordSecret.name | quote }}
      key: {{ $k.sasl.passwordSecret.key | quote }}
{{- end }}
{{- if $k.tls.caSecret.name }}
- name: KAFKA_SSL_CA_LOCATION
  value: {{ printf "/etc/vsa/kafka-ca/%s" $k.tls.caSecret.key | quote }}
{{- end }}
{{- if $k.tls.clientSecret.name }}
- name: KAFKA_SSL_CERTIFICATE_LOCATION
  value: {{ printf "/etc/vsa/kafka-client/%s" $k.tls.clientSecret.certKey | quote }}
- name: KAFKA_SSL_KEY_LOCATION
  value: {{ printf "/etc/vsa/kafka-client/%s" $k.tls.clientSecret.keyKey | quote }}
{{- end }}
{{- if $k.tls.keyPasswordSecret.name }}
- name: KAFKA_SSL_KEY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.tls.keyPasswordSecret.name | quote }}
      key: {{ $k.tls.keyPasswordSecret.key | quote }}
{{- end }}
{{- if $k.extra }}
- name: KAFKA_EXTRA
  value: {{ $k.extra | toJson | quote }}
{{- end }}
{{- end -}}

{{/* OpenSearch connection (indexer): OPENSEARCH_* variables. */}}
{{- define "vsa.opensearchEnv" -}}
{{- $o := .Values.opensearch -}}
- name: OPENSEARCH_URL
  value: {{ $o.url | quote }}
- name: OPENSEARCH_VERIFY_CERTS
  value: {{ $o.verifyCerts | quote }}
{{- if $o.credentialsSecret.name }}
- name: OPENSEARCH_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $o.credentialsSecret.name | quote }}
      key: {{ $o.credentialsSecret.usernameKey | quote }}
- name: OPENSEARCH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $o.credentialsSecret.name | quote }}
      key: {{ $o.credentialsSecret.passwordKey | quote }}
{{- end }}
{{- if $o.caSecret.name }}
- name: OPENSEARCH_CA_CERTS
  value: {{ printf "/etc/vsa/opensearch-ca/%s" $o.caSecret.key | quote }}
{{- end }}
{{- end -}}

{{/* The OpenSearch CA Secret as a volume and its mount (indexer, api); empty without one. */}}
{{- define "vsa.opensearchCaVolume" -}}
{{- with .Values.opensearch.caSecret -}}
{{- if .name -}}
{{- toYaml (list (dict "name" "opensearch-ca" "secret" (dict "secretName" .name "items" (list (dict "key" .key "path" .key))))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vsa.opensearchCaVolumeMount" -}}
{{- if .Values.opensearch.caSecret.name -}}
{{- toYaml (list (dict "name" "opensearch-ca" "mountPath" "/etc/vsa/opensearch-ca" "readOnly" true)) -}}
{{- end -}}
{{- end -}}

{{/*
Environment of one service container. Args: (dict "root" $ "component" "detector" "svc" .Values.detector)
The chart sets the metrics port (the API has none: its HTTP port serves /metrics), topic prefix and
(for consumers) the group explicitly, so probes, Services and KEDA agree with what the process does.
*/}}
{{- define "vsa.serviceEnv" -}}
{{- $p := printf "VSA_%s_" (upper .component) -}}
{{- $root := .root -}}
- name: VSA_LOG_FORMAT
  value: {{ $root.Values.logFormat | quote }}
- name: VSA_LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
# The root filesystem is read-only: every writable path is under the /tmp emptyDir.
- name: TMPDIR
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
{{- if hasKey .svc "metricsPort" }}
- name: {{ $p }}METRICS_PORT
  value: {{ .svc.metricsPort | int | quote }}
{{- end }}
- name: {{ $p }}TOPICS__PREFIX
  value: {{ $root.Values.topics.prefix | quote }}
{{- if hasKey .svc "groupId" }}
- name: {{ $p }}GROUP_ID
  value: {{ include "vsa.groupId" . | quote }}
{{- end }}
{{ include "vsa.kafkaEnv" $root }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .svc.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The one port a service's container listens on, as YAML {name, number}: "metrics" (metricsPort:
/metrics, /healthz, /readyz) for the pipeline services, "http" (port) for the API, which serves
those paths beside its own. Args: (dict "svc" .Values.detector)
*/}}
{{- define "vsa.podPort" -}}
{{- if hasKey .svc "metricsPort" -}}
{{- toYaml (dict "name" "metrics" "number" (int .svc.metricsPort)) -}}
{{- else -}}
{{- toYaml (dict "name" "http" "number" (int .svc.port)) -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations: Prometheus scraping and a checksum of the service's own configuration. */}}
{{- define "vsa.podAnnotations" -}}
checksum/config: {{ .checksum }}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ (include "vsa.podPort" . | fromYaml).number | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .svc.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Liveness on /healthz, readiness on /readyz, a startup probe for slow model loading. */}}
{{- define "vsa.probes" -}}
{{- $port := (include "vsa.podPort" . | fromYaml).name -}}
startupProbe:
  httpGet: {path: /healthz, port: {{ $port }}}
  periodSeconds: 5
  failureThreshold: {{ .svc.probes.startupFailureThreshold }}
livenessProbe:
  httpGet: {path: /healthz, port: {{ $port }}}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: {{ $port }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/* Mounts every container has: /tmp, the Kafka certificates. */}}
{{- define "vsa.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/vsa/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  mountPath: /etc/vsa/kafka-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "vsa.commonVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name | quote }}
    items:
      - {key: {{ .Values.kafka.tls.caSecret.key | quote }}, path: {{ .Values.kafka.tls.caSecret.key | quote }}}
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientSecret.name | quote }}
    items:
      - {key: {{ .Values.kafka.tls.clientSecret.certKey | quote }}, path: {{ .Values.kafka.tls.clientSecret.certKey | quote }}}
      - {key: {{ .Values.kafka.tls.clientSecret.keyKey | quote }}, path: {{ .Values.kafka.tls.clientSecret.keyKey | quote }}}
{{- end }}
{{- end -}}

{{/*
The pod spec every service shares.
Args: (dict "root" $ "component" "detector" "svc" .Values.detector "args" (list ...)
            "env" "<extra env yaml>" "volumes" "<yaml>" "volumeMounts" "<yaml>" "workingDir" "")
*/}}
{{- define "vsa.podSpec" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $gpu := eq (include "vsa.gpuEnabled" (dict "svc" $svc)) "true" -}}
serviceAccountName: {{ include "vsa.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $svc.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- if and $gpu $svc.gpu.runtimeClassName }}
runtimeClassName: {{ $svc.gpu.runtimeClassName }}
{{- end }}
terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
containers:
  - name: {{ .component }}
    image: {{ include "vsa.image" (dict "root" $root "gpu" $gpu) | quote }}
    imagePullPolicy: {{ ternary $root.Values.gpuImage.pullPolicy $root.Values.image.pullPolicy $gpu }}
    args:
      {{- toYaml .args | nindent 6 }}
    {{- with .workingDir }}
    workingDir: {{ . }}
    {{- end }}
    env:
      {{- include "vsa.serviceEnv" . | nindent 6 }}
      {{- with .env }}
      {{- . | nindent 6 }}
      {{- end }}
    {{- $port := include "vsa.podPort" . | fromYaml }}
    ports:
      - name: {{ $port.name }}
        containerPort: {{ $port.number }}
        protocol: TCP
    {{- include "vsa.probes" . | nindent 4 }}
    resources:
      {{- $resources := deepCopy (default (dict) $svc.resources) }}
      {{- if $gpu }}
      {{- $limits := merge (dict $svc.gpu.resourceName (int $svc.gpu.count)) (default (dict) $resources.limits) }}
      {{- $_ := set $resources "limits" $limits }}
      {{- end }}
      {{- toYaml $resources | nindent 6 }}
    securityContext:
      {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      {{- include "vsa.commonVolumeMounts" $root | nindent 6 }}
      - name: config
        mountPath: /etc/vsa/config
        readOnly: true
      {{- with .volumeMounts }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $svc.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  {{- include "vsa.commonVolumes" $root | nindent 2 }}
  - name: config
    configMap:
      name: {{ include "vsa.componentName" (dict "root" $root "component" "config") }}
  {{- with .volumes }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- with $svc.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $nodeSelector := deepCopy (default (dict) $svc.nodeSelector) }}
{{- $tolerations := default (list) $svc.tolerations }}
{{- if $gpu }}
{{- $nodeSelector = merge $nodeSelector (default (dict) $svc.gpu.nodeSelector) }}
{{- $tolerations = concat $tolerations (default (list) $svc.gpu.tolerations) }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $svc.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The models volume (detector, captioner), when models.volume is set. */}}
{{- define "vsa.modelsVolume" -}}
{{- if .Values.models.volume -}}
- name: models
  {{- toYaml .Values.models.volume | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "vsa.modelsVolumeMount" -}}
{{- if .Values.models.volume -}}
- name: models
  mountPath: {{ .Values.models.mountPath }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
Ingest shards as a YAML list: the top-level `cameras` (shard "", named after the service) and
every ingest.shards entry. Each becomes one Deployment with its own cameras file.
*/}}
{{- define "vsa.ingestShards" -}}
{{- $shards := list -}}
{{- if .Values.cameras -}}
{{- $shards = append $shards (dict "name" "" "cameras" .Values.cameras) -}}
{{- end -}}
{{- range .Values.ingest.shards -}}
{{- $shards = append $shards . -}}
{{- end -}}
{{- toYaml $shards -}}
{{- end -}}

{{/* File name of a shard's cameras list in the config ConfigMap. */}}
{{- define "vsa.camerasFile" -}}
{{- if . -}}cameras-{{ . }}.yaml{{- else -}}cameras.yaml{{- end -}}
{{- end -}}

{{/*
Deployment of a Kafka consumer service (detector, captioner, indexer, notifier, api): replicas
unless an autoscaler owns them (a service without `autoscaling` values has none). Args: as
vsa.podSpec, plus an optional "rollingUpdate" (dict) replacing the default no-surge one.
*/}}
{{- define "vsa.consumerDeployment" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $auto := default (dict "hpa" (dict) "keda" (dict)) $svc.autoscaling -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "vsa.componentName" . }}
  labels:
    {{- include "vsa.labels" . | nindent 4 }}
spec:
  {{- if not (or $auto.hpa.enabled $auto.keda.enabled) }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      {{- with .rollingUpdate }}
      {{- toYaml . | nindent 6 }}
      {{- else }}
      # Never more pods than now: a surge pod may find no free GPU or no free partition.
      maxSurge: 0
      maxUnavailable: 1
      {{- end }}
  selector:
    matchLabels:
      {{- include "vsa.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "vsa.selectorLabels" . | nindent 8 }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "vsa.podAnnotations" (dict "root" $root "svc" $svc "checksum" (default ($svc.config | toYaml) .configYaml | sha256sum)) | nindent 8 }}
    spec:
      {{- include "vsa.podSpec" . | nindent 6 }}
{{- end -}}

{{/* KEDA kafka trigger metadata for SASL/TLS (KEDA >= 2.12 takes sasl and tls as metadata). */}}
{{- define "vsa.kedaKafkaMetadata" -}}
{{- $k := .Values.kafka -}}
{{- $sasl := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" -}}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
sasl: {{ get $sasl $k.sasl.mechanism | quote }}
{{- end }}
{{- if has $k.securityProtocol (list "SSL" "SASL_SSL") }}
tls: enable
{{- end }}
{{- end -}}

{{/* "true" when KEDA needs a TriggerAuthentication (any secret to read). */}}
{{- define "vsa.kedaNeedsAuth" -}}
{{- $k := .Values.kafka -}}
{{- if or (hasPrefix "SASL_" $k.securityProtocol) $k.tls.caSecret.name $k.tls.clientSecret.name -}}true{{- end -}}
{{- end -}}

{{/*
The API's --config file (SearchSettings keys): api.config over the indexer.config keys search must
share with the indexer (index names, the embedding model folder), so the API searches the indices
the indexer writes with the model that embedded them.
*/}}
{{- define "vsa.apiConfig" -}}
{{- $indexer := default (dict) .Values.indexer.config -}}
{{- $shared := dict -}}
{{- with $indexer.index -}}
{{- $_ := set $shared "index" (deepCopy .) -}}
{{- end -}}
{{- if and $indexer.embedding (kindIs "map" $indexer.embedding) -}}
{{- with $indexer.embedding.model_path -}}
{{- $_ := set $shared "embedding" (dict "model_path" .) -}}
{{- end -}}
{{- end -}}
{{- toYaml (mergeOverwrite $shared (deepCopy (default (dict) .Values.api.config))) -}}
{{- end -}}
