{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "cgroup-psi-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, unless the release already holds the chart name. */}}
{{- define "cgroup-psi-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cgroup-psi-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cgroup-psi-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cgroup-psi-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cgroup-psi-exporter.labels" -}}
helm.sh/chart: {{ include "cgroup-psi-exporter.chart" . }}
{{ include "cgroup-psi-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: exporter
app.kubernetes.io/part-of: cgroup-psi-exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cgroup-psi-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cgroup-psi-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cgroup-psi-exporter.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* True when PSI trigger rules (or v1 pressure level rules, which also
register through a cgroupfs write) are configured. */}}
{{- define "cgroup-psi-exporter.psiEnabled" -}}
{{- if and .Values.config.psi (or .Values.config.psi.rules .Values.config.psi.pressure_levels) }}true{{ end }}
{{- end }}

{{/* True when the cgroupfs mount must be writable: PSI rules, or asked for. */}}
{{- define "cgroup-psi-exporter.cgroupfsWritable" -}}
{{- if or (include "cgroup-psi-exporter.psiEnabled" .) .Values.hostPaths.cgroupfsReadWrite }}true{{ end }}
{{- end }}

{{/*
The exporter's config file. The kubernetes section is filled from
.Values.kubelet; the exporter expands ${NODE_IP} in kubelet_url from the
NODE_IP variable the DaemonSet sets (status.hostIP), so one ConfigMap
serves every node.
*/}}
{{- define "cgroup-psi-exporter.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- if .Values.kubelet.enabled }}
{{- $_ := set $cfg "kubernetes" (dict
      "kubelet_url" .Values.kubelet.url
      "token_file" .Values.kubelet.tokenFile
      "insecure_skip_verify" .Values.kubelet.insecureSkipVerify) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
