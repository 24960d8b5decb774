{{/* Names and labels shared by every template. */}}

{{- define "tenant-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's name, or the chart's when the release is named after it. */}}
{{- define "tenant-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "tenant-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenant-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Not app.kubernetes.io/managed-by: the admission guard reserves
managed-by=tenant-operator for what the operator itself makes, and Helm sets
its own value on what it installs.
*/}}
{{- define "tenant-operator.labels" -}}
{{ include "tenant-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: tenant-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "tenant-operator.serviceAccountName" -}}
{{- default (include "tenant-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* The user name the API server sees for the operator's pods. */}}
{{- define "tenant-operator.user" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "tenant-operator.serviceAccountName" .) }}
{{- end }}

{{- define "tenant-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
