{{/*
High availability (ha.enabled): two frontend replicas, one active, elected on a
coordination.k8s.io/v1 Lease. Everything HA adds to the chart is defined here or in ha.yaml; with
ha.enabled false none of it renders and the chart is what it was without it.
*/}}

{{/* The Lease both replicas compete for (rendered by ha.yaml, so RBAC needs no create). */}}
{{- define "ikegw-vpn.haLease" -}}
{{ include "ikegw-vpn.fullname" . }}-leader
{{- end }}

{{/* The frontend pods a StatefulSet of 2 can have: the operator may patch their CiliumEndpoints. */}}
{{- define "ikegw-vpn.frontendPods" -}}
{{- $fullname := include "ikegw-vpn.fullname" . }}
{{- if .Values.ha.enabled }}
{{- toJson (list (printf "%s-frontend-0" $fullname) (printf "%s-frontend-1" $fullname)) }}
{{- else }}
{{- toJson (list (include "ikegw-vpn.frontendPod" .)) }}
{{- end }}
{{- end }}

{{/*
A duration value (the daemon's syntax: a number with ms, s, m, h or d; no unit = seconds) in
milliseconds, as an integer string.
*/}}
{{- define "ikegw-vpn.durationMs" -}}
{{- $s := toString . }}
{{- $n := int64 (regexFind "^[0-9]+" $s) }}
{{- $unit := regexFind "[a-z]+$" $s }}
{{- $mult := get (dict "ms" 1 "s" 1000 "" 1000 "m" 60000 "h" 3600000 "d" 86400000) $unit }}
{{- mul $n (int64 $mult) }}
{{- end }}

{{/* Fails with the value's name when the election timings cannot be safe. */}}
{{- define "ikegw-vpn.haValidate" -}}
{{- if .Values.ha.enabled }}
{{- $lease := int64 (include "ikegw-vpn.durationMs" .Values.ha.leaseDuration) }}
{{- $renew := int64 (include "ikegw-vpn.durationMs" .Values.ha.renewDeadline) }}
{{- $retry := int64 (include "ikegw-vpn.durationMs" .Values.ha.retryPeriod) }}
{{- if le $lease (add $renew 2000) }}
{{- fail (printf "ha.leaseDuration %s must be longer than ha.renewDeadline %s plus 2s (clock skew margin): otherwise a replica that cannot renew may still be active when the other one takes the Lease" (toString .Values.ha.leaseDuration) (toString .Values.ha.renewDeadline)) }}
{{- end }}
{{- if ge $retry $renew }}
{{- fail (printf "ha.retryPeriod %s must be shorter than ha.renewDeadline %s: the active replica must be able to try renewing more than once before it steps down" (toString .Values.ha.retryPeriod) (toString .Values.ha.renewDeadline)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The `ha:` section of the daemon config (see src/daemon/config.ts). */}}
{{- define "ikegw-vpn.haConfig" -}}
lease:
  name: {{ include "ikegw-vpn.haLease" . }}
  namespace: {{ .Release.Namespace }}
lease_duration: {{ .Values.ha.leaseDuration | toString | quote }}
renew_deadline: {{ .Values.ha.renewDeadline | toString | quote }}
retry_period: {{ .Values.ha.retryPeriod | toString | quote }}
{{- end }}

{{/*
The frontend's affinity: the user's .Values.affinity, plus with HA a required podAntiAffinity on
kubernetes.io/hostname so the two replicas never share a node (one node's failure must not take
both).
*/}}
{{- define "ikegw-vpn.frontendAffinity" -}}
{{- $aff := deepCopy (default (dict) .Values.affinity) }}
{{- if .Values.ha.enabled }}
{{- $labels := merge (include "ikegw-vpn.selectorLabels" . | fromYaml) (dict "component" "frontend") }}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" $labels) }}
{{- $anti := deepCopy (default (dict) (get $aff "podAntiAffinity")) }}
{{- $req := concat (default (list) (get $anti "requiredDuringSchedulingIgnoredDuringExecution")) (list $term) }}
{{- $_ := set $anti "requiredDuringSchedulingIgnoredDuringExecution" $req }}
{{- $_ := set $aff "podAntiAffinity" $anti }}
{{- end }}
{{- if $aff }}{{ toYaml $aff }}{{ end }}
{{- end }}

{{/*
The daemon container's Kubernetes API credentials with HA: the volume Kubernetes would project for
automountServiceAccountToken (bound token, the cluster CA, the namespace), mounted into the daemon
container only — the routes sidecar keeps no token. The pod's automountServiceAccountToken stays
false.
*/}}
{{- define "ikegw-vpn.haApiVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 292 # 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end }}
{{- define "ikegw-vpn.haApiMount" -}}
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}
