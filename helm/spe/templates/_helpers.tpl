{{/* Names: every object is prefixed by the release name so two releases can share a namespace. */}}
{{- define "spe.name" -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- end }}
{{- define "spe.hub.name" -}}{{ include "spe.name" . }}-hub{{- end }}
{{- define "spe.proxy.name" -}}{{ include "spe.name" . }}-proxy{{- end }}
{{- define "spe.proxyApi.name" -}}{{ include "spe.name" . }}-proxy-api{{- end }}
{{- define "spe.egress.name" -}}{{ include "spe.name" . }}-egress{{- end }}
{{- define "spe.recorder.name" -}}{{ include "spe.name" . }}-recorder{{- end }}
{{- define "spe.mirror.name" -}}{{ include "spe.name" . }}-mirror{{- end }}
{{- define "spe.inflow.name" -}}{{ include "spe.name" . }}-inflow{{- end }}
{{- define "spe.extracts.name" -}}{{ include "spe.name" . }}-extracts{{- end }}
{{- define "spe.state.name" -}}{{ include "spe.name" . }}-state{{- end }}
{{- define "spe.keys.name" -}}{{ .Values.keys.existingSecret | default (printf "%s-keys" (include "spe.name" .)) }}{{- end }}
{{- define "spe.db.secret" -}}{{ .Values.registry.db.existingSecret | default (printf "%s-registry-db" (include "spe.name" .)) }}{{- end }}

{{- define "spe.labels" -}}
app.kubernetes.io/name: spe
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* Selector labels of one component: call with (dict "root" . "component" "hub"). */}}
{{- define "spe.selector" -}}
app.kubernetes.io/name: spe
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Workspace pods carry these labels (set by the permit spawner); the workspace policies select them. */}}
{{- define "spe.workspace.selector" -}}
spe.io/role: workspace
spe.io/release: {{ .Release.Name }}
{{- end }}

{{/* image: call with (dict "image" .Values.x.image "root" .); an empty name falls back to the hub image. */}}
{{- define "spe.image" -}}
{{- $hub := .root.Values.hub.image -}}
{{- if .image.name -}}{{ .image.name }}:{{ .image.tag | default $hub.tag }}{{- else -}}{{ $hub.name }}:{{ $hub.tag }}{{- end -}}
{{- end }}
{{- define "spe.pullPolicy" -}}{{ .image.pullPolicy | default .root.Values.hub.image.pullPolicy }}{{- end }}

{{/* seccomp RuntimeDefault: a securityContext field from Kubernetes 1.19, an annotation before. */}}
{{- define "spe.seccompField" -}}
{{- semverCompare ">=1.19-0" .Capabilities.KubeVersion.Version -}}
{{- end }}
{{- define "spe.seccompAnnotation" -}}
{{- if ne (include "spe.seccompField" .) "true" }}
seccomp.security.alpha.kubernetes.io/pod: runtime/default
{{- end }}
{{- end }}

{{/* Restricted pod securityContext (Pod Security Standard "restricted"). */}}
{{- define "spe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
{{- if eq (include "spe.seccompField" .) "true" }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end }}

{{/* Restricted container securityContext. */}}
{{- define "spe.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- if eq (include "spe.seccompField" .) "true" }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end }}

{{- define "spe.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* DNS egress rule to kube-dns, shared by hub, proxy and egress policies. */}}
{{- define "spe.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}

{{/* PodDisruptionBudget API: policy/v1 from Kubernetes 1.21, policy/v1beta1 before. */}}
{{- define "spe.pdb.apiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end }}

{{/* The key volume: a Secret (read-only by nature) or a PVC. Never referenced by a workspace. */}}
{{- define "spe.keys.volume" -}}
- name: keys
{{- if eq .Values.keys.store "pvc" }}
  persistentVolumeClaim: {claimName: {{ include "spe.name" . }}-keys}
{{- else }}
  secret: {secretName: {{ include "spe.keys.name" . }}, defaultMode: 0400}
{{- end }}
{{- end }}

{{/* SPE's alert rules (Prometheus rule groups): the audit trail damaged, not verified or not
     checkpointed on schedule (the lifecycle service verifies daily and signs hourly), and a
     network plugin that ignores the workspace NetworkPolicy. */}}
{{- define "spe.alertRules" -}}
groups:
  - name: spe-audit
    rules:
      - alert: SpeAuditTrailDamaged
        expr: spe_audit_last_verification_ok == 0
        labels: {severity: critical}
        annotations:
          summary: "The last verification found the audit trail damaged (spe audit verify names the first damaged event)"
      - alert: SpeAuditNotVerified
        expr: spe_audit_last_verification_ok == -1 or time() - spe_audit_last_verification_timestamp_seconds > 2 * 86400
        for: 1h
        labels: {severity: warning}
        annotations:
          summary: "The audit trail has not been verified for two days (the lifecycle service verifies it daily)"
      - alert: SpeAuditNotCheckpointed
        expr: time() - spe_audit_last_checkpoint_timestamp_seconds > 3 * 3600
        for: 15m
        labels: {severity: warning}
        annotations:
          summary: "No signed audit checkpoint for three hours (hourly by the lifecycle service; is its signing key mounted?)"
  - name: spe-workspaces
    rules:
      - alert: SpeNetworkPolicyNotEnforced
        expr: spe_networkpolicy_enforced == 0
        labels: {severity: warning}
        annotations:
          summary: "The network plugin ignores the workspace NetworkPolicy: isolation rests on the netlock init container alone"
{{- end }}
