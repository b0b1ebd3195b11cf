{{/* The release's base name: "<release>" when it already says sluice, else "<release>-sluice". */}}
{{- define "sluice.fullname" -}}
{{- if contains "sluice" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sluice" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.control" -}}{{ include "sluice.fullname" . }}-control{{- end -}}
{{- define "sluice.keysSecret" -}}{{ .Values.controlPlane.keysSecret | default (printf "%s-keys" (include "sluice.control" .)) }}{{- end -}}
{{- define "sluice.tlsSecret" -}}{{ include "sluice.control" . }}-tls{{- end -}}
{{- define "sluice.gateway" -}}{{ include "sluice.fullname" . }}-gateway{{- end -}}
{{- define "sluice.trustConfigMap" -}}{{ include "sluice.fullname" . }}-trust{{- end -}}
{{- define "sluice.gatewayTLSSecret" -}}{{ .Values.gateway.tls.secretName | default (printf "%s-tls" (include "sluice.gateway" .)) }}{{- end -}}
{{- define "sluice.controlURL" -}}{{ printf "https://%s.%s.svc:%d" (include "sluice.control" .) .Release.Namespace (int .Values.controlPlane.port) }}{{- end -}}
{{- define "sluice.webhook" -}}{{ include "sluice.fullname" . }}-injector{{- end -}}

{{- define "sluice.labels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sluice.gatewaySelector" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* The gateway Service's in-cluster DNS names, plus any given, which its certificate covers. */}}
{{- define "sluice.gatewayDNSNames" -}}
{{- $service := include "sluice.gateway" . -}}
{{- concat (list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace)) (.Values.gateway.tls.dnsNames | default list) | uniq | toJson -}}
{{- end -}}

{{- define "sluice.selector" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{/* The control plane's in-cluster DNS names, which its certificate covers. */}}
{{- define "sluice.dnsNames" -}}
{{- $service := include "sluice.control" . -}}
{{- list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) | toJson -}}
{{- end -}}

{{/* Where the control plane reads its serving certificate. */}}
{{- define "sluice.tlsDir" -}}
{{- if eq .Values.tls.mode "certManager" -}}/etc/sluice/tls{{- else -}}/var/lib/sluice/data{{- end -}}
{{- end -}}

{{/* Mesh port exclusions for injected pods, as pod_annotations. */}}
{{- define "sluice.meshAnnotations" -}}
{{- $ports := list -}}
{{- range append (.Values.mesh.providerPorts | default list) .Values.controlPlane.port -}}
{{- $ports = append $ports (int . | toString) -}}
{{- end -}}
{{- $outbound := $ports | uniq | join "," -}}
{{- $inbound := .Values.agent.adminPort | toString -}}
{{- if eq .Values.mesh.type "istio" -}}
{{- dict "traffic.sidecar.istio.io/excludeOutboundPorts" $outbound "traffic.sidecar.istio.io/excludeInboundPorts" $inbound | toJson -}}
{{- else if eq .Values.mesh.type "linkerd" -}}
{{- dict "config.linkerd.io/skip-outbound-ports" $outbound "config.linkerd.io/skip-inbound-ports" $inbound | toJson -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/* Fails the render on values that cannot work, naming the value. */}}
{{- define "sluice.validate" -}}
{{- $mode := .Values.controlPlane.database.mode -}}
{{- if not (has $mode (list "sqlite" "postgres")) -}}
{{- fail (printf "controlPlane.database.mode: %q is not sqlite or postgres" $mode) -}}
{{- end -}}
{{- if and (eq $mode "sqlite") (gt (int .Values.controlPlane.replicas) 1) -}}
{{- fail "controlPlane.replicas: more than 1 needs controlPlane.database.mode: postgres (SQLite has one writer)" -}}
{{- end -}}
{{- if and (eq $mode "postgres") (not .Values.controlPlane.database.postgres.existingSecret) -}}
{{- fail "controlPlane.database.postgres.existingSecret: required with mode postgres (a Secret holding the URL)" -}}
{{- end -}}
{{- if not (has .Values.tls.mode (list "generated" "certManager")) -}}
{{- fail (printf "tls.mode: %q is not generated or certManager" .Values.tls.mode) -}}
{{- end -}}
{{- if not (has .Values.webhook.failurePolicy (list "Ignore" "Fail")) -}}
{{- fail (printf "webhook.failurePolicy: %q is not Ignore or Fail" .Values.webhook.failurePolicy) -}}
{{- end -}}
{{- if not (has .Values.mesh.type (list "none" "istio" "istio-ambient" "linkerd")) -}}
{{- fail (printf "mesh.type: %q is not none, istio, istio-ambient or linkerd" .Values.mesh.type) -}}
{{- end -}}
{{- if and .Values.gateway.enabled (not .Values.gateway.tls.secretName) (ne .Values.tls.mode "certManager") -}}
{{- fail "gateway.tls.secretName: required (a kubernetes.io/tls Secret with the gateway's certificate) unless tls.mode is certManager" -}}
{{- end -}}
{{- if and .Values.gateway.enabled (eq (int .Values.gateway.port) (int .Values.agent.adminPort)) -}}
{{- fail "gateway.port: must differ from agent.adminPort (the gateway's metrics and probes)" -}}
{{- end -}}
{{- if not (has .Values.agentIdentity.verify (list "token_review" "key_set")) -}}
{{- fail (printf "agentIdentity.verify: %q is not token_review or key_set" .Values.agentIdentity.verify) -}}
{{- end -}}
{{- if and (eq .Values.agentIdentity.verify "key_set") (or (not .Values.agentIdentity.issuer) (not .Values.agentIdentity.keySetURL)) -}}
{{- fail "agentIdentity.issuer and agentIdentity.keySetURL: required with verify: key_set" -}}
{{- end -}}
{{- $retention := .Values.controlPlane.usageRetention -}}
{{- if or (lt (int $retention.hourlyDays) 32) (gt (int $retention.hourlyDays) 36500) -}}
{{- fail (printf "controlPlane.usageRetention.hourlyDays: %v is not 32 to 36500 (monthly budgets outside UTC read a month of hourly rollups)" $retention.hourlyDays) -}}
{{- end -}}
{{- if or (lt (int $retention.dailyDays) (int $retention.hourlyDays)) (gt (int $retention.dailyDays) 36500) -}}
{{- fail (printf "controlPlane.usageRetention.dailyDays: %v is not between hourlyDays and 36500" $retention.dailyDays) -}}
{{- end -}}
{{- if or (lt (int $retention.markDays) 1) (gt (int $retention.markDays) 36500) -}}
{{- fail (printf "controlPlane.usageRetention.markDays: %v is not 1 to 36500" $retention.markDays) -}}
{{- end -}}
{{- end -}}
