{{/* Names and labels shared by every template. */}}
{{- define "roomcast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "roomcast.labels" -}}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* terminationGracePeriodSeconds: preStop sleep + drain window + roomcast's 10 s socket grace + 5 s. */}}
{{- define "roomcast.terminationGrace" -}}
{{- add (int .Values.preStopSleepSeconds) (int .Values.drainWindowSeconds) 15 -}}
{{- end -}}
