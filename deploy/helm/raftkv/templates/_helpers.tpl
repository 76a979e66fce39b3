{{/* The base name of every object; pods are <fullname>-<i>. */}}
{{- define "raftkv.fullname" -}}
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

{{/* The headless Service that gives each pod its stable DNS name. */}}
{{- define "raftkv.peers" -}}
{{- printf "%s-peers" (include "raftkv.fullname" .) -}}
{{- end -}}

{{/* Votes needed for a quorum: a majority of the replicas. */}}
{{- define "raftkv.quorum" -}}
{{- add (div (int .Values.replicas) 2) 1 -}}
{{- end -}}

{{- define "raftkv.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "raftkv.labels" -}}
{{ include "raftkv.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
The hostfile (CONTRACT.md): one entry per pod, in ordinal order, so that a
node's Raft ID is its pod's ordinal. name = pod name (RAFT_NAME comes from
metadata.name); host = the pod's DNS name under the headless Service.
*/}}
{{- define "raftkv.hostfile" -}}
{{- $full := include "raftkv.fullname" . -}}
{{- $peers := include "raftkv.peers" . -}}
{{- $ns := .Release.Namespace -}}
{{- $entries := list -}}
{{- range $i := until (int .Values.replicas) -}}
{{- $pod := printf "%s-%d" $full $i -}}
{{- $host := printf "%s.%s.%s.svc.%s" $pod $peers $ns $.Values.clusterDomain -}}
{{- $entries = append $entries (dict "name" $pod "host" $host "raft_port" (int $.Values.raftPort) "http_port" (int $.Values.httpPort)) -}}
{{- end -}}
{{- dict "raft" $entries | toPrettyJson -}}
{{- end -}}

{{/*
The scheme of the nodes' HTTP API: HTTPS with TLS, HTTP with tls.insecure.
*/}}
{{- define "raftkv.httpScheme" -}}
{{- if .Values.tls.insecure -}}HTTP{{- else -}}HTTPS{{- end -}}
{{- end }}
