{{/* The release's resource name: the release name, or release-chart when the release name lacks the chart's. */}}
{{- define "gatehouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.labels" -}}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "gatehouse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Refuses to render without the values `gatehouse gateway bootstrap … helm` writes. */}}
{{- define "gatehouse.requireBootstrap" -}}
{{- $hint := "run `gatehouse gateway bootstrap -t TOKEN --ca-pin … --url … -o DIR helm` and install with -f DIR/values.yaml" -}}
{{- if not .Values.gateway.identity.gatewayId -}}
{{- fail (printf "gateway.identity is missing: %s" $hint) -}}
{{- end -}}
{{- if not (and .Values.gateway.tls.ca .Values.gateway.tls.certificate .Values.gateway.tls.key) -}}
{{- fail (printf "gateway.tls.ca, gateway.tls.certificate and gateway.tls.key are required: %s" $hint) -}}
{{- end -}}
{{- end -}}
