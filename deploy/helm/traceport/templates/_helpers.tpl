{{- define "traceport.commonLabels" -}}
app.kubernetes.io/part-of: traceport
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "traceport.labels" -}}
app.kubernetes.io/name: traceport
{{ include "traceport.commonLabels" . }}
{{- end }}

{{/* Port number of config.jaeger (HOST:PORT). */}}
{{- define "traceport.jaegerPort" -}}
{{- splitList ":" .Values.config.jaeger | last | int -}}
{{- end }}

{{/* Port numbers of kafka.brokers, comma-separated. */}}
{{- define "traceport.kafkaPorts" -}}
{{- $ports := list -}}
{{- range .Values.kafka.brokers -}}
{{- $ports = append $ports (splitList ":" . | last | int | toString) -}}
{{- end -}}
{{- join "," $ports -}}
{{- end }}

{{/* traceport's config file: config, listen from port, and with
kafka.brokers the kafka-* settings instead of the jaeger ones. */}}
{{- define "traceport.config" -}}
{{- $cfg := merge (dict "listen" (printf ":%d" (int .Values.port))) .Values.config -}}
{{- with .Values.kafka -}}
{{- if .brokers -}}
{{- $cfg = omit $cfg "jaeger" "jaeger-protocol" "jaeger-compression" "jaeger-tls" "jaeger-tls-ca" "jaeger-tls-skip-verify" "jaeger-header" -}}
{{- $_ := set $cfg "kafka-brokers" (join "," .brokers) -}}
{{- $_ = set $cfg "kafka-topic" .topic -}}
{{- $_ = set $cfg "kafka-encoding" .encoding -}}
{{- $_ = set $cfg "kafka-compression" .compression -}}
{{- $_ = set $cfg "kafka-acks" .acks -}}
{{- if .tls.enabled -}}
{{- if .tls.caKey -}}
{{- $_ = set $cfg "kafka-tls-ca" (printf "/etc/traceport-kafka/%s" .tls.caKey) -}}
{{- else -}}
{{- $_ = set $cfg "kafka-tls" true -}}
{{- end -}}
{{- end -}}
{{- if .sasl.mechanism -}}
{{- $_ = set $cfg "kafka-sasl-mechanism" .sasl.mechanism -}}
{{- $_ = set $cfg "kafka-sasl-username" .sasl.username -}}
{{- $_ = set $cfg "kafka-sasl-password-file" (printf "/etc/traceport-kafka/%s" .sasl.passwordKey) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end }}

{{/* goMemLimitPercent of resources.limits.memory, in MiB. */}}
{{- define "traceport.goMemLimit" -}}
{{- $mem := toString .Values.resources.limits.memory -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $mem -}}
{{- $mib = mul (trimSuffix "Gi" $mem | atoi) 1024 -}}
{{- else if hasSuffix "Mi" $mem -}}
{{- $mib = trimSuffix "Mi" $mem | atoi -}}
{{- end -}}
{{- if le $mib 0 -}}
{{- fail (printf "resources.limits.memory %q: give a whole number of Mi or Gi" $mem) -}}
{{- end -}}
{{- printf "%dMiB" (div (mul $mib (int .Values.goMemLimitPercent)) 100) -}}
{{- end }}
