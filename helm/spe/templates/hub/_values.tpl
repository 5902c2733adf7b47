{{/* What jupyterhub_config.py reads: hub.config passed through, plus the names and settings
     the permit spawner needs. Rendered as YAML into the hub Secret. */}}
{{- define "spe.hub.values" -}}
config:
  {{- .Values.hub.config | toYaml | nindent 2 }}
release: {{ .Release.Name | quote }}
namespace: {{ .Release.Namespace | quote }}
names:
  hub: {{ include "spe.hub.name" . | quote }}
  proxyApi: {{ include "spe.proxyApi.name" . | quote }}
  egress: {{ include "spe.egress.name" . | quote }}
  recorder: {{ include "spe.recorder.name" . | quote }}
  extracts: {{ include "spe.extracts.name" . | quote }}
  mirror: {{ include "spe.mirror.name" . | quote }}
  inflow: {{ include "spe.inflow.name" . | quote }}
mirror:
  enabled: {{ .Values.mirror.enabled }}
  port: {{ .Values.mirror.port }}
registryDb: {{ .Values.registry.db.type | quote }}
egressPort: {{ .Values.egress.port }}
workspace:
  image: {{ include "spe.image" (dict "image" .Values.workspace.image "root" .) | quote }}
  pullPolicy: {{ .Values.workspace.image.pullPolicy | quote }}
  imagePullSecrets: {{ .Values.imagePullSecrets | toJson }}
  uid: {{ .Values.workspace.uid }}
  storageCapacity: {{ .Values.workspace.storage.capacity | quote }}
  storageClassName: {{ .Values.workspace.storage.storageClassName | quote }}
  startTimeoutSeconds: {{ .Values.workspace.startTimeoutSeconds }}
  allowDNS: {{ .Values.workspace.networkPolicy.allowDNS }}
  seccompField: {{ include "spe.seccompField" . }}  # false before Kubernetes 1.19: seccomp by annotation
  networkPolicySelfCheck: {{ and .Values.workspace.networkPolicy.enabled .Values.workspace.networkPolicy.selfCheck }}
  labels:
    {{- include "spe.workspace.selector" . | nindent 4 }}
  netlock:
    enabled: {{ .Values.workspace.netlock.enabled }}
    image: {{ include "spe.image" (dict "image" .Values.workspace.netlock.image "root" .) | quote }}
    pullPolicy: {{ include "spe.pullPolicy" (dict "image" .Values.workspace.netlock.image "root" .) | quote }}
{{- end }}
