{{/* The name of every object: the release name, or "sensorlet" when the release is called so. */}}
{{- define "sensorlet.fullname" -}}
{{- if contains "sensorlet" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sensorlet" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sensorlet.selectorLabels" -}}
app.kubernetes.io/name: sensorlet
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sensorlet.labels" -}}
{{ include "sensorlet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sensorlet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sensorlet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where Secrets for Certificate.spec.secretRef are read: the watched namespace, else the release's. */}}
{{- define "sensorlet.secretsNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{/*
The namespaces whose Secrets Certificates may read (--secret-namespaces), as a JSON list:
secretNamespaces, else the agent's own namespace (watchNamespace, else the release namespace).
*/}}
{{- define "sensorlet.secretNamespaces" -}}
{{- if .Values.secretNamespaces -}}
{{- .Values.secretNamespaces | uniq | toJson -}}
{{- else -}}
{{- list (include "sensorlet.secretsNamespace" .) | toJson -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the admin API token: the operator's, or the one the chart renders. */}}
{{- define "sensorlet.adminTokenSecret" -}}
{{- if .Values.admin.token.existingSecret -}}
{{- .Values.admin.token.existingSecret -}}
{{- else if .Values.admin.token.create -}}
{{- printf "%s-admin-token" (include "sensorlet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
