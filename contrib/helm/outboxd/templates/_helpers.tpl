{{/* _helpers.tpl - names, labels and the image shared by the templates. */}}
{{- define "outboxd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "outboxd.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "outboxd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* "key = value" lines of a daemon's configuration file; args: dict "config" map "listen" addr. */}}
{{- define "outboxd.conf" -}}
{{- range $k, $v := .config }}
{{- if ne $k "http.listen" }}
{{ $k }} = {{ $v }}
{{- end }}
{{- end }}
http.listen = {{ .listen }}
{{- end -}}

{{/* The environment from the daemon's Secret; args: dict "secret" .Values.X.secret "prefix" "OUTBOXD_". */}}
{{- define "outboxd.secretEnv" -}}
- name: {{ .prefix }}POSTGRES_CONNINFO
  valueFrom:
    secretKeyRef: {name: {{ .secret.name | quote }}, key: {{ .secret.conninfoKey | quote }}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .secret.name | quote }}, key: {{ .secret.passwordKey | quote }}, optional: true}
{{- range $var, $key := .secret.extraEnv }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef: {name: {{ $.secret.name | quote }}, key: {{ $key | quote }}}
{{- end }}
{{- end -}}

{{/* Container security: nothing to write, no privileges. */}}
{{- define "outboxd.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}
