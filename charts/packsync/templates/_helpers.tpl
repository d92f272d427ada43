{{/*
The chart's name, or nameOverride.
*/}}
{{- define "packsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, else the release name (when it
already contains the chart's name), else `<release>-<chart>`; 63 characters at most.
*/}}
{{- define "packsync.fullname" -}}
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

{{- define "packsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "packsync.labels" -}}
helm.sh/chart: {{ include "packsync.chart" . }}
{{ include "packsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
app.kubernetes.io/part-of: stackstorm
{{- end }}

{{- define "packsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "packsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "packsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "packsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "packsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
st2api's base URL: st2.apiUrl, else the stackstorm-k8s release's st2api Service.
*/}}
{{- define "packsync.st2ApiUrl" -}}
{{- if .Values.st2.apiUrl }}
{{- .Values.st2.apiUrl | trimSuffix "/" }}
{{- else if .Values.st2.namespace }}
{{- printf "http://%s-st2api.%s.svc:9101" .Values.st2.releaseName .Values.st2.namespace }}
{{- else }}
{{- printf "http://%s-st2api:9101" .Values.st2.releaseName }}
{{- end }}
{{- end }}

{{/*
The volume source of volumes.<name> (call with a dict {"Values", "name"}): the one given, else
the default claim (none for configs). Defaults live here, not in values.yaml, where Helm would
merge a user's `nfs:` into the default `persistentVolumeClaim:` and make one volume of two sources.
*/}}
{{- define "packsync.volumeSource" -}}
{{- $defaults := dict
  "packs" "pvc-st2-packs"
  "virtualenvs" "pvc-st2-virtualenvs"
  "repos" "pvc-packsync-repos"
  "wheels" "pvc-packsync-wheels" }}
{{- $source := index .Values.volumes .name }}
{{- if $source }}
{{- toYaml $source }}
{{- else if hasKey $defaults .name }}
{{- toYaml (dict "persistentVolumeClaim" (dict "claimName" (get $defaults .name))) }}
{{- end }}
{{- end }}

{{/*
Where the container mounts things. packsync.toml names these paths, so they live in one place.
state is packsync's state_dir, on the virtualenvs volume: the links packsync puts in the shared
volumes are absolute paths into it, and StackStorm's pods mount that volume at the same path.
*/}}
{{- define "packsync.paths" -}}
{{- dict
  "config" "/etc/packsync/packsync.toml"
  "hooks" "/etc/packsync/hooks"
  "secrets" "/etc/packsync/secrets"
  "state" "/opt/stackstorm/virtualenvs/.packsync"
  "packs" "/opt/stackstorm/packs"
  "virtualenvs" "/opt/stackstorm/virtualenvs"
  "configs" "/opt/stackstorm/configs"
  "repos" "/mnt/repos"
  "wheels" "/mnt/wheels"
  | toJson }}
{{- end }}

{{/*
Replaces, in place, every whole float64 inside .v (maps and lists included) by an int64. Helm
reads numbers of values files as float64, which toToml writes as `3.0`, and packsync's integer
keys (and integer pack config values) refuse. Call with a dict {"v": value}; read .v after.
*/}}
{{- define "packsync.integers" -}}
{{- $v := .v }}
{{- if kindIs "map" $v }}
{{- range $key, $item := $v }}
{{- $box := dict "v" $item }}
{{- include "packsync.integers" $box }}
{{- $_ := set $v $key $box.v }}
{{- end }}
{{- else if kindIs "slice" $v }}
{{- $items := list }}
{{- range $item := $v }}
{{- $box := dict "v" $item }}
{{- include "packsync.integers" $box }}
{{- $items = append $items $box.v }}
{{- end }}
{{- $_ := set . "v" $items }}
{{- else if and (kindIs "float64" $v) (eq $v (floor $v)) }}
{{- $_ := set . "v" (int64 $v) }}
{{- end }}
{{- end }}

{{/*
packsync.toml: .Values.config with the keys the chart owns (paths of its mounts, the metrics
address its probes and Service use, the Secrets' files, the registration hook).
*/}}
{{- define "packsync.siteConfig" -}}
{{- $paths := include "packsync.paths" . | fromJson }}
{{- $config := deepCopy .Values.config }}
{{- if not (hasKey $config "version") }}
{{- $_ := set $config "version" 1 }}
{{- end }}

{{- $agent := dig "agent" (dict) $config }}
{{- if not $agent.host }}
{{- $_ := set $agent "host" (include "packsync.fullname" .) }}
{{- end }}
{{- $_ := set $agent "state_dir" $paths.state }}
{{- if eq .Values.mode "agent" }}
{{- $_ := set $agent "metrics_listen" (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- end }}
{{- $_ := set $config "agent" $agent }}

{{- $stackstorm := dig "stackstorm" (dict) $config }}
{{- $_ := set $stackstorm "packs_dir" $paths.packs }}
{{- $_ := set $stackstorm "virtualenvs_dir" $paths.virtualenvs }}
{{- $_ := set $stackstorm "configs_dir" $paths.configs }}
{{- if .Values.st2.register.enabled }}
{{- if hasKey $stackstorm "register" }}
{{- fail "config.stackstorm.register and st2.register.enabled are both set: set st2.register.enabled=false to use your own register command" }}
{{- end }}
{{- $_ := set $stackstorm "register" (list "python3" (printf "%s/st2_register.py" $paths.hooks) "{pack}") }}
{{- /* Purge through st2api too, unless the values set their own commands. */}}
{{- if not (hasKey $stackstorm "registered") }}
{{- $_ := set $stackstorm "registered" (list "python3" (printf "%s/st2_register.py" $paths.hooks) "registered" "{pack}") }}
{{- end }}
{{- if not (hasKey $stackstorm "purge") }}
{{- $_ := set $stackstorm "purge" (list "python3" (printf "%s/st2_register.py" $paths.hooks) "purge" "{kind}" "{ref}") }}
{{- end }}
{{- /* The hook reads st2api's URL, its key and its timeout from the environment. */}}
{{- $env := concat (dig "env" (list) $stackstorm) (list "ST2_API_URL" "ST2_API_KEY" "ST2_REGISTER_TIMEOUT") | uniq }}
{{- $_ := set $stackstorm "env" $env }}
{{- end }}
{{- $_ := set $config "stackstorm" $stackstorm }}

{{- $mirror := dig "mirror" (dict) $config }}
{{- $_ := set $mirror "path" $paths.wheels }}
{{- $_ := set $config "mirror" $mirror }}

{{- with .Values.state.mongodb }}
{{- if .existingSecret }}
{{- $state := dict "url_file" (printf "%s/mongodb/%s" $paths.secrets .key) }}
{{- if .database }}{{ $_ := set $state "database" .database }}{{ end }}
{{- if .collectionPrefix }}{{ $_ := set $state "collection_prefix" .collectionPrefix }}{{ end }}
{{- if .timeout }}{{ $_ := set $state "timeout" .timeout }}{{ end }}
{{- $_ := set $config "state" $state }}
{{- end }}
{{- end }}

{{- with .Values.messaging.rabbitmq }}
{{- if .existingSecret }}
{{- $messaging := dict "url_file" (printf "%s/rabbitmq/%s" $paths.secrets .key) }}
{{- if .exchange }}{{ $_ := set $messaging "exchange" .exchange }}{{ end }}
{{- if .queueLimit }}{{ $_ := set $messaging "queue_limit" .queueLimit }}{{ end }}
{{- $_ := set $config "messaging" $messaging }}
{{- end }}
{{- end }}

{{- if not .Values.volumes.configs }}
{{- range $pack := $config.pack | default list }}
{{- if $pack.config }}
{{- fail (printf "config.pack %s has a config, but volumes.configs is empty: StackStorm would never see it; give the configs volume of st2.packs.volumes, or the config through stackstorm-k8s's st2.packs.configs" $pack.name) }}
{{- end }}
{{- end }}
{{- end }}

{{- $box := dict "v" $config }}
{{- include "packsync.integers" $box }}
{{- toToml $box.v }}
{{- end }}

{{/*
The pod spec of both modes; .probes is true in agent mode.
*/}}
{{- define "packsync.podSpec" -}}
{{- $paths := include "packsync.paths" . | fromJson -}}
{{- $agent := eq .Values.mode "agent" -}}
serviceAccountName: {{ include "packsync.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- if not $agent }}
restartPolicy: Never
{{- end }}
containers:
  - name: packsync
    image: {{ include "packsync.image" . | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command:
      - /usr/local/bin/packsync
    args:
      {{- if $agent }}
      - run
      {{- else }}
      - apply
      {{- end }}
      - --log-format
      - json
    env:
      - name: PACKSYNC_CONFIG
        value: {{ $paths.config }}
      {{- if .Values.st2.register.enabled }}
      - name: ST2_API_URL
        value: {{ include "packsync.st2ApiUrl" . | quote }}
      - name: ST2_API_KEY
        valueFrom:
          secretKeyRef:
            name: {{ .Values.st2.apiKeySecret.name }}
            key: {{ .Values.st2.apiKeySecret.key }}
      - name: ST2_REGISTER_TIMEOUT
        value: {{ .Values.st2.register.timeout | quote }}
      {{- end }}
      {{- with .Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- if $agent }}
    ports:
      - name: metrics
        containerPort: {{ .Values.service.port }}
        protocol: TCP
    {{- range $probe, $values := .Values.probes }}
    {{- if $values.enabled }}
    {{ $probe }}Probe:
      httpGet:
        path: /healthz
        port: metrics
      {{- toYaml (omit $values "enabled") | nindent 6 }}
    {{- end }}
    {{- end }}
    {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    volumeMounts:
      - name: config
        mountPath: {{ $paths.config }}
        subPath: packsync.toml
        readOnly: true
      {{- if .Values.st2.register.enabled }}
      - name: hooks
        mountPath: {{ $paths.hooks }}
        readOnly: true
      {{- end }}
      {{- if .Values.state.mongodb.existingSecret }}
      - name: mongodb-url
        mountPath: {{ $paths.secrets }}/mongodb
        readOnly: true
      {{- end }}
      {{- if .Values.messaging.rabbitmq.existingSecret }}
      - name: rabbitmq-url
        mountPath: {{ $paths.secrets }}/rabbitmq
        readOnly: true
      {{- end }}
      - name: packs
        mountPath: {{ $paths.packs }}
      - name: virtualenvs
        mountPath: {{ $paths.virtualenvs }}
      {{- if .Values.volumes.configs }}
      - name: configs
        mountPath: {{ $paths.configs }}
      {{- end }}
      - name: repos
        mountPath: {{ $paths.repos }}
        readOnly: true
      - name: wheels
        mountPath: {{ $paths.wheels }}
        readOnly: true
      - name: tmp
        mountPath: /tmp
      {{- with .Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "packsync.fullname" . }}
  {{- if .Values.st2.register.enabled }}
  - name: hooks
    configMap:
      name: {{ include "packsync.fullname" . }}-hooks
      defaultMode: 0444
  {{- end }}
  {{- with .Values.state.mongodb }}
  {{- if .existingSecret }}
  - name: mongodb-url
    secret:
      secretName: {{ .existingSecret }}
      defaultMode: 0440
      items:
        - key: {{ .key }}
          path: {{ .key }}
  {{- end }}
  {{- end }}
  {{- with .Values.messaging.rabbitmq }}
  {{- if .existingSecret }}
  - name: rabbitmq-url
    secret:
      secretName: {{ .existingSecret }}
      defaultMode: 0440
      items:
        - key: {{ .key }}
          path: {{ .key }}
  {{- end }}
  {{- end }}
  {{- range $name := list "packs" "virtualenvs" "configs" "repos" "wheels" }}
  {{- with include "packsync.volumeSource" (dict "Values" $.Values "name" $name) | fromYaml }}
  - name: {{ $name }}
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  - name: tmp
    emptyDir:
      {{- with .Values.tmp.sizeLimit }}
      sizeLimit: {{ . }}
      {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The pod template's metadata: labels, and checksums that roll the pod when the config or the
hook changes.
*/}}
{{- define "packsync.podMetadata" -}}
labels:
  {{- include "packsync.selectorLabels" . | nindent 2 }}
  app.kubernetes.io/component: {{ .Values.mode }}
  {{- with .Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
  checksum/hooks: {{ include (print .Template.BasePath "/configmap-hooks.yaml") . | sha256sum }}
  {{- with .Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
