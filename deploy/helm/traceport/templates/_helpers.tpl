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
