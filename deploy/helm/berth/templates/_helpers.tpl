{{/* Names and labels. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "berth.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "berth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "berth.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The PVC is used unless S3 and Redis hold everything. */}}
{{- define "berth.usePVC" -}}
{{- if and .Values.persistence.enabled (not (and .Values.s3.enabled .Values.redis.enabled)) -}}true{{- end -}}
{{- end -}}

{{/* Refusals: every problem at once, in one fail. */}}
{{- define "berth.validate" -}}
{{- $p := list -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (and .Values.s3.enabled .Values.redis.enabled)) -}}
{{- $p = append $p (printf "replicaCount is %d: several replicas need s3.enabled=true and redis.enabled=true (they share the bucket and the token, key and lock state in Redis; docs/deploy/ha.md). Use replicaCount=1 for a single node with a PersistentVolumeClaim" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.s3.enabled (not .Values.s3.bucket) -}}
{{- $p = append $p "s3.enabled=true needs s3.bucket" -}}
{{- end -}}
{{- if and .Values.redis.enabled (not .Values.redis.url) -}}
{{- $p = append $p "redis.enabled=true needs redis.url (redis://host:6379/0; the password comes from redis.existingSecret)" -}}
{{- end -}}
{{- if and .Values.redis.url (regexMatch "^[a-z]+://[^/@]*:[^/@]*@" .Values.redis.url) -}}
{{- $p = append $p "redis.url must not hold a password: it would be stored in a ConfigMap; put it in a Secret and name it in redis.existingSecret.name" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- $p = append $p "tls.enabled=true needs tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- range $k := list "blob_store" "cache" -}}
{{- if hasKey $.Values.config $k -}}
{{- $p = append $p (printf "config.%s is set by the chart: use persistence, s3 and redis instead" $k) -}}
{{- end -}}
{{- end -}}
{{- if kindIs "map" .Values.config.server -}}
{{- range $k := list "bind_address" "port" "tls" -}}
{{- if hasKey $.Values.config.server $k -}}
{{- $p = append $p (printf "config.server.%s is set by the chart (service.port, tls)" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $p -}}
{{- fail (printf "\n%s" (join "\n" $p)) -}}
{{- end -}}
{{- end -}}

{{/* The configuration as a map: config without extraToml, plus the tables the chart owns. */}}
{{- define "berth.configMap" -}}
{{- $c := omit (deepCopy .Values.config) "extraToml" -}}
{{- $server := default dict (get $c "server") -}}
{{- $_ := set $server "bind_address" "0.0.0.0" -}}
{{- $_ = set $server "port" 5000 -}}
{{- if .Values.tls.enabled -}}
{{- $_ = set $server "tls" (dict "server_certificate_bundle" "/etc/berth/tls/tls.crt" "server_private_key" "/etc/berth/tls/tls.key") -}}
{{- end -}}
{{- $_ = set $c "server" $server -}}
{{- if .Values.s3.enabled -}}
{{- $s3 := dict "bucket" .Values.s3.bucket "region" .Values.s3.region -}}
{{- if .Values.s3.endpoint -}}{{- $_ = set $s3 "endpoint" .Values.s3.endpoint -}}{{- end -}}
{{- if .Values.s3.keyPrefix -}}{{- $_ = set $s3 "key_prefix" .Values.s3.keyPrefix -}}{{- end -}}
{{- if .Values.s3.pathStyle -}}{{- $_ = set $s3 "path_style" true -}}{{- end -}}
{{- if .Values.s3.multipartPartSize -}}{{- $_ = set $s3 "multipart_part_size" .Values.s3.multipartPartSize -}}{{- end -}}
{{- if .Values.s3.enableBlobRedirect -}}{{- $_ = set $s3 "enable_blob_redirect" true -}}{{- end -}}
{{- $_ = set $c "blob_store" (dict "s3" $s3) -}}
{{- else -}}
{{- $_ = set $c "blob_store" (dict "fs" (dict "root_dir" "/var/lib/berth")) -}}
{{- end -}}
{{- if .Values.redis.enabled -}}
{{- $r := dict "url" .Values.redis.url "key_prefix" .Values.redis.keyPrefix -}}
{{- if .Values.redis.existingSecret.name -}}
{{- $_ = set $r "password_file" (printf "/etc/berth/secrets/redis/%s" .Values.redis.existingSecret.passwordKey) -}}
{{- end -}}
{{- $_ = set $c "cache" (dict "redis" $r) -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{/* berth.toml: the configuration map rendered as TOML, then config.extraToml. */}}
{{- define "berth.toml" -}}
{{- include "berth.validate" . -}}
# Rendered by the berth Helm chart from its values. Keys: docs/configuration.md
{{- include "berth.toml.table" (dict "path" (list) "map" (include "berth.configMap" . | fromJson)) }}
{{- with .Values.config.extraToml }}

# config.extraToml
{{ . }}
{{- end }}
{{- end -}}

{{/* A TOML key: bare when it may be, else a quoted string. */}}
{{- define "berth.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{- . -}}{{- else -}}{{- include "berth.toml.string" . -}}{{- end -}}
{{- end -}}

{{/* A TOML basic string: JSON's escapes are TOML's (without JSON's HTML escaping). */}}
{{- define "berth.toml.string" -}}
{{- toJson . | replace "\\u003c" "<" | replace "\\u003e" ">" | replace "\\u0026" "&" -}}
{{- end -}}

{{/* A TOML value: string, boolean, integer, float, array, inline table. */}}
{{- define "berth.toml.value" -}}
{{- if kindIs "string" . -}}
{{- include "berth.toml.string" . -}}
{{- else if kindIs "bool" . -}}
{{- ternary "true" "false" . -}}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) -}}
{{- if eq (float64 (int64 .)) (float64 .) -}}{{- int64 . -}}{{- else -}}{{- toJson . -}}{{- end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "int32" .) -}}
{{- . -}}
{{- else if kindIs "slice" . -}}
{{- $items := list -}}
{{- range . -}}{{- $items = append $items (include "berth.toml.value" .) -}}{{- end -}}
[{{ join ", " $items }}]
{{- else if kindIs "map" . -}}
{{- $items := list -}}
{{- range $k, $v := . -}}{{- if not (kindIs "invalid" $v) -}}{{- $items = append $items (printf "%s = %s" (include "berth.toml.key" $k) (include "berth.toml.value" $v)) -}}{{- end -}}{{- end -}}
{ {{- join ", " $items -}} }
{{- else -}}
{{- fail (printf "berth.toml: cannot render %v (%s) as TOML" . (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{/* A TOML table: its keys, then its sub-tables. The header is left out for a
table with only sub-tables (TOML defines it implicitly). */}}
{{- define "berth.toml.table" -}}
{{- $path := .path -}}
{{- $lines := list -}}
{{- $subs := list -}}
{{- range $k, $v := .map -}}
{{- if kindIs "map" $v -}}
{{- $subs = append $subs $k -}}
{{- else if not (kindIs "invalid" $v) -}}
{{- $lines = append $lines (printf "%s = %s" (include "berth.toml.key" $k) (include "berth.toml.value" $v)) -}}
{{- end -}}
{{- end -}}
{{- if and $path (or $lines (not $subs)) }}

[{{ join "." $path }}]
{{- end }}
{{- range $lines }}
{{ . }}
{{- end }}
{{- range $k := $subs }}
{{- include "berth.toml.table" (dict "path" (append $path (include "berth.toml.key" $k)) "map" (get $.map $k)) }}
{{- end }}
{{- end -}}

{{/* A probe from values; with tls.enabled an httpGet probe speaks HTTPS. */}}
{{- define "berth.probe" -}}
{{- $p := deepCopy .probe -}}
{{- if and .tls (hasKey $p "httpGet") -}}
{{- $_ := set $p.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}
