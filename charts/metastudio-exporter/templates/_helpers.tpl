{{/* The release's name for every object, at most 63 characters. */}}
{{- define "metastudio-exporter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "metastudio-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "metastudio-exporter.labels" -}}
{{ include "metastudio-exporter.selectorLabels" . }}
app.kubernetes.io/part-of: metastudio-exporter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "metastudio-exporter.secretName" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-credentials" (include "metastudio-exporter.fullname" .)) -}}
{{- end -}}

{{/* Where a project's Secret is mounted (the projects list). */}}
{{- define "metastudio-exporter.projectDir" -}}
{{- printf "/etc/metastudio_exporter-projects/%s" .name -}}
{{- end -}}

{{/* The Secret of a project of the projects list: its own, or the one the chart creates. */}}
{{- define "metastudio-exporter.projectSecretName" -}}
{{- $c := .project.credentials | default dict -}}
{{- $c.existingSecret | default (printf "%s-%s-credentials" (include "metastudio-exporter.fullname" .root | trunc 40 | trimSuffix "-") (.project.name | replace "_" "-")) -}}
{{- end -}}

{{/* The exporter's config.yml: config as given, or, with a projects list, config's shared
keys and the projects, each reading its keys from its mounted Secret. */}}
{{- define "metastudio-exporter.config" -}}
{{- if .Values.projects -}}
{{- $cfg := omit .Values.config "region" "project_id" "endpoint" "iam_endpoint" "credentials" "tasks" "discovery" "status_names" "allow_insecure_endpoint" -}}
{{- $projects := list -}}
{{- range .Values.projects -}}
{{- if not .name -}}
{{- fail "every entry of projects needs a name" -}}
{{- end -}}
{{- $c := .credentials | default dict -}}
{{- if and (not $c.existingSecret) (or (not $c.accessKey) (not $c.secretKey)) -}}
{{- fail (printf "projects: %s: set credentials.existingSecret, or both credentials.accessKey and credentials.secretKey" .name) -}}
{{- end -}}
{{- $dir := include "metastudio-exporter.projectDir" . -}}
{{- $p := omit . "credentials" -}}
{{- $_ := set $p "credentials" (dict "access_key_file" (printf "%s/CLOUD_SDK_AK" $dir) "secret_key_file" (printf "%s/CLOUD_SDK_SK" $dir)) -}}
{{- $projects = append $projects $p -}}
{{- end -}}
{{- $_ := set $cfg "projects" $projects -}}
{{- toYaml $cfg -}}
{{- else -}}
{{- toYaml .Values.config -}}
{{- end -}}
{{- end -}}

{{/* GOMEMLIMIT: goMemLimitPercent of the memory limit, in MiB (the limit in Mi or Gi). */}}
{{- define "metastudio-exporter.goMemLimit" -}}
{{- $limit := toString .Values.resources.limits.memory -}}
{{- $mib := 0 -}}
{{- if hasSuffix "Gi" $limit -}}
{{- $mib = mul (trimSuffix "Gi" $limit | atoi) 1024 -}}
{{- else if hasSuffix "Mi" $limit -}}
{{- $mib = trimSuffix "Mi" $limit | atoi -}}
{{- else -}}
{{- fail "resources.limits.memory must be given in Mi or Gi (GOMEMLIMIT is derived from it)" -}}
{{- end -}}
{{- printf "%dMiB" (div (mul $mib .Values.goMemLimitPercent) 100) -}}
{{- end -}}

{{/* The pod template, shared by the Deployment and the StatefulSet. */}}
{{- define "metastudio-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "metastudio-exporter.labels" . | nindent 4 }}
  annotations:
    # A changed config rolls the pods (the exporter would also reload it by itself).
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
spec:
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65534
    runAsGroup: 65534
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: metastudio-exporter
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config.file=/etc/metastudio_exporter/config.yml
        - --config.watch-interval=30s
        - --web.listen-address=:{{ .Values.service.port }}
        - --log.format=json
        {{- if .Values.sharding.enabled }}
        - --shard.index=$(SHARD_INDEX)
        - --shard.count={{ .Values.sharding.shards }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http-metrics
          containerPort: {{ .Values.service.port }}
          protocol: TCP
      env:
        {{- if .Values.sharding.enabled }}
        - name: SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        - name: GOMEMLIMIT
          value: {{ include "metastudio-exporter.goMemLimit" . | quote }}
        {{- if not .Values.projects }}
        - name: CLOUD_SDK_AK
          valueFrom:
            secretKeyRef:
              name: {{ include "metastudio-exporter.secretName" . }}
              key: CLOUD_SDK_AK
        - name: CLOUD_SDK_SK
          valueFrom:
            secretKeyRef:
              name: {{ include "metastudio-exporter.secretName" . }}
              key: CLOUD_SDK_SK
        {{- end }}
      livenessProbe:
        httpGet:
          path: /-/healthy
          port: http-metrics
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /-/ready
          port: http-metrics
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        runAsUser: 65534
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: config
          mountPath: /etc/metastudio_exporter
          readOnly: true
        {{- range $i, $p := .Values.projects }}
        - name: {{ printf "project-%d" $i }}
          mountPath: {{ include "metastudio-exporter.projectDir" $p }}
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "metastudio-exporter.fullname" . }}
    {{- range $i, $p := .Values.projects }}
    - name: {{ printf "project-%d" $i }}
      secret:
        secretName: {{ include "metastudio-exporter.projectSecretName" (dict "root" $ "project" $p) }}
        items:
          - key: CLOUD_SDK_AK
            path: CLOUD_SDK_AK
          - key: CLOUD_SDK_SK
            path: CLOUD_SDK_SK
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
