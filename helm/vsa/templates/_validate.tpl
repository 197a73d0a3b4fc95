{{/*
Values that cannot work make the chart refuse to render, with a message that says what to change.
values.schema.json checks types and ranges; these checks need more than one value at a time.
*/}}
{{- define "vsa.validate" -}}
{{- include "vsa.validate.kafka" . -}}
{{- include "vsa.validate.ingest" . -}}
{{- range $component := list "detector" "captioner" "indexer" -}}
{{- include "vsa.validate.consumer" (dict "root" $ "component" $component "svc" (index $.Values $component)) -}}
{{- end -}}
{{- include "vsa.validate.tracker" . -}}
{{- include "vsa.validate.notifier" . -}}
{{- include "vsa.validate.api" . -}}
{{- range $component := list "detector" "captioner" -}}
{{- include "vsa.validate.gpu" (dict "root" $ "component" $component "svc" (index $.Values $component)) -}}
{{- end -}}
{{- end -}}

{{- define "vsa.validate.kafka" -}}
{{- $k := .Values.kafka -}}
{{- if hasPrefix "SASL_" $k.securityProtocol -}}
{{- if not $k.sasl.mechanism -}}
{{- fail (printf "vsa: kafka.securityProtocol is %s but kafka.sasl.mechanism is empty: set PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER" $k.securityProtocol) -}}
{{- end -}}
{{- if not $k.sasl.passwordSecret.name -}}
{{- fail (printf "vsa: kafka.securityProtocol is %s but kafka.sasl.passwordSecret.name is empty: name an existing Secret holding the SASL password (the chart never takes passwords as values)" $k.securityProtocol) -}}
{{- end -}}
{{- if not (or $k.sasl.username $k.sasl.usernameSecret.name) -}}
{{- fail "vsa: SASL needs a user name: set kafka.sasl.username or kafka.sasl.usernameSecret.name" -}}
{{- end -}}
{{- else if $k.sasl.mechanism -}}
{{- fail (printf "vsa: kafka.sasl.mechanism is %s but kafka.securityProtocol is %s: use SASL_SSL (or SASL_PLAINTEXT) or clear the mechanism" $k.sasl.mechanism $k.securityProtocol) -}}
{{- end -}}
{{- if and (or $k.tls.caSecret.name $k.tls.clientSecret.name) (not (has $k.securityProtocol (list "SSL" "SASL_SSL"))) -}}
{{- fail (printf "vsa: kafka.tls secrets are set but kafka.securityProtocol is %s: certificates are only used with SSL or SASL_SSL" $k.securityProtocol) -}}
{{- end -}}
{{- end -}}

{{- define "vsa.validate.ingest" -}}
{{- $shards := include "vsa.ingestShards" . | fromYamlArray -}}
{{- if and .Values.ingest.enabled .Values.ingest.fromCameraConfig -}}
{{- if $shards -}}
{{- fail "vsa: ingest.fromCameraConfig takes the cameras from the camera-config topic: set cameras: [] and ingest.shards: []" -}}
{{- end -}}
{{- if and .Values.validation.partitions (gt (int .Values.ingest.replicas) (int .Values.topics.partitions)) -}}
{{- fail (printf "vsa: ingest replicas %d exceeds topics.partitions %d: ingest pods share the cameras by camera-config partition, so the extra pods would run no camera" (int .Values.ingest.replicas) (int .Values.topics.partitions)) -}}
{{- end -}}
{{- else if .Values.ingest.enabled -}}
{{- if not $shards -}}
{{- fail "vsa: ingest.enabled is true but there are no cameras: fill `cameras` (or ingest.shards), or set ingest.enabled=false" -}}
{{- end -}}
{{- $seen := dict -}}
{{- $names := dict -}}
{{- range $shard := $shards -}}
{{- $label := default "(the top-level cameras list)" $shard.name -}}
{{- if hasKey $names $shard.name -}}
{{- fail (printf "vsa: ingest shard name %q appears twice" $shard.name) -}}
{{- end -}}
{{- $_ := set $names $shard.name true -}}
{{- if not $shard.cameras -}}
{{- fail (printf "vsa: ingest shard %s has no cameras" $label) -}}
{{- end -}}
{{- range $camera := $shard.cameras -}}
{{- if hasKey $seen $camera.camera_id -}}
{{- fail (printf "vsa: camera_id %q is in ingest shard %s and in shard %s: every camera must be read by exactly one ingest pod, or its frames are published twice with clashing frame_seq" $camera.camera_id (get $seen $camera.camera_id) $label) -}}
{{- end -}}
{{- $_ := set $seen $camera.camera_id $label -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Args: (dict "root" $ "component" "detector" "svc" .Values.detector) */}}
{{- define "vsa.validate.consumer" -}}
{{- $svc := .svc -}}
{{- $c := .component -}}
{{- $root := .root -}}
{{- if $svc.enabled -}}
{{- $hpa := $svc.autoscaling.hpa -}}
{{- $keda := $svc.autoscaling.keda -}}
{{- if and $hpa.enabled $keda.enabled -}}
{{- fail (printf "vsa: %s.autoscaling.hpa.enabled and %s.autoscaling.keda.enabled are both true: KEDA creates its own HPA and the two would fight over the replica count; enable one" $c $c) -}}
{{- end -}}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- fail (printf "vsa: %s.autoscaling.hpa.minReplicas (%d) is above maxReplicas (%d)" $c (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- end -}}
{{- if and $keda.enabled (gt (int $keda.minReplicas) (int $keda.maxReplicas)) -}}
{{- fail (printf "vsa: %s.autoscaling.keda.minReplicas (%d) is above maxReplicas (%d)" $c (int $keda.minReplicas) (int $keda.maxReplicas)) -}}
{{- end -}}
{{- if and $keda.enabled (eq $root.Values.kafka.sasl.mechanism "OAUTHBEARER") -}}
{{- fail (printf "vsa: %s.autoscaling.keda needs SASL PLAIN or SCRAM to read the lag; with OAUTHBEARER use the HPA or your own ScaledObject" $c) -}}
{{- end -}}
{{- if and $keda.enabled (hasPrefix "SASL_" $root.Values.kafka.securityProtocol) (not $root.Values.kafka.sasl.usernameSecret.name) -}}
{{- fail (printf "vsa: %s.autoscaling.keda reads the SASL user name from a Secret (a TriggerAuthentication takes no literal values): set kafka.sasl.usernameSecret" $c) -}}
{{- end -}}
{{- $partitions := int $root.Values.topics.partitions -}}
{{- $max := int (include "vsa.maxPods" .) -}}
{{- if and $root.Values.validation.partitions (gt $max $partitions) -}}
{{- $what := ternary (printf "autoscaling maxReplicas %d" $max) (printf "replicas %d" $max) (or $hpa.enabled $keda.enabled) -}}
{{- fail (printf "vsa: %s %s exceeds topics.partitions %d: a consumer group cannot have more working pods than partitions (the extra pods would sit idle, and for the detector hold a GPU each). Lower it, raise topics.partitions before the topics are created, or set validation.partitions=false if the topics already have more partitions" $c $what $partitions) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vsa.validate.tracker" -}}
{{- $t := .Values.tracker -}}
{{- if and $t.enabled .Values.validation.partitions (gt (int $t.replicas) (int .Values.topics.partitions)) -}}
{{- fail (printf "vsa: tracker replicas %d exceeds topics.partitions %d: each tracker worker owns whole partitions of detections and of its tables, so the extra workers would hold no state and do nothing" (int $t.replicas) (int .Values.topics.partitions)) -}}
{{- end -}}
{{- end -}}

{{/* Args: (dict "root" $ "component" "detector" "svc" .Values.detector) */}}
{{- define "vsa.validate.gpu" -}}
{{- $svc := .svc -}}
{{- $c := .component -}}
{{- $root := .root -}}
{{- if $svc.enabled -}}
{{- if $svc.gpu.enabled -}}
{{- $tag := include "vsa.gpuImageTag" $root -}}
{{- if not (regexMatch $root.Values.validation.gpuImageTagPattern $tag) -}}
{{- fail (printf "vsa: %s.gpu.enabled is true but the GPU image tag %q does not match validation.gpuImageTagPattern %q: a CPU image has no CUDA libraries. Build the Dockerfile's `gpu` target and set gpuImage.tag" $c $tag $root.Values.validation.gpuImageTagPattern) -}}
{{- end -}}
{{- if ne (int $svc.gpu.count) 1 -}}
{{- fail (printf "vsa: %s.gpu.count is %d: a %s pod uses one GPU; run more pods (replicas) for more GPUs" $c (int $svc.gpu.count) $c) -}}
{{- end -}}
{{- else if and (eq $c "detector") (has $svc.backend.type (list "torch" "tensorrt")) -}}
{{- fail (printf "vsa: detector.backend.type %s runs on a GPU: set detector.gpu.enabled=true (and use the GPU image), or use onnxruntime/auto on the CPU" $svc.backend.type) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "vsa.validate.notifier" -}}
{{- $n := .Values.notifier -}}
{{- if $n.enabled -}}
{{- if not (or $n.webhook.urlSecret.name $n.mqtt.host) -}}
{{- fail "vsa: notifier.enabled is true but it has nowhere to send alerts: set notifier.webhook.urlSecret.name (an existing Secret holding the webhook URL) and/or notifier.mqtt.host" -}}
{{- end -}}
{{- if and .Values.validation.partitions (gt (int $n.replicas) (int .Values.topics.partitions)) -}}
{{- fail (printf "vsa: notifier replicas %d exceeds topics.partitions %d: the extra pods would get no alerts partition" (int $n.replicas) (int .Values.topics.partitions)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The API listens on 0.0.0.0 in its pod, which it refuses to do without credentials unless told it
sits behind something that authenticates (services/api/settings.py exposure_problem): refuse the
same values here, at install time, instead of a pod in CrashLoopBackOff.
*/}}
{{- define "vsa.validate.api" -}}
{{- $a := .Values.api -}}
{{- if $a.enabled -}}
{{- $auth := $a.auth -}}
{{- if and (eq $auth.mode "none") (not $a.allowOpenExposure) -}}
{{- fail "vsa: api.enabled is true but api.auth.mode is none: the API listens on the pod's address and refuses to serve without credentials. Set api.auth.mode to basic (with api.auth.passwordSecret) or api_key (with api.auth.apiKeySecret), or set api.allowOpenExposure=true only if an authenticating proxy or ingress is the sole way in" -}}
{{- end -}}
{{- if and (eq $auth.mode "api_key") (not $auth.apiKeySecret.name) -}}
{{- fail "vsa: api.auth.mode is api_key but api.auth.apiKeySecret.name is empty: name an existing Secret holding the key (the chart never takes credentials as values)" -}}
{{- end -}}
{{- if and (eq $auth.mode "api_key") $a.console -}}
{{- fail "vsa: api.console is true but api.auth.mode is api_key: a browser cannot send an API key with images and live streams (vsa console refuses it). Use api.auth.mode=basic, or api.console=false to serve the API alone" -}}
{{- end -}}
{{- if eq $auth.mode "basic" -}}
{{- if not $auth.passwordSecret.name -}}
{{- fail "vsa: api.auth.mode is basic but api.auth.passwordSecret.name is empty: name an existing Secret holding the password (the chart never takes credentials as values)" -}}
{{- end -}}
{{- if not (or $auth.username $auth.usernameSecret.name) -}}
{{- fail "vsa: api.auth.mode is basic but it has no user name: set api.auth.username or api.auth.usernameSecret.name" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
