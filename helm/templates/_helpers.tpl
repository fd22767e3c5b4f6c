{{/*
Naming. The name part defaults to "vpn" (not the chart name) so that object names and the
immutable selector labels are the same as the reference chart's: `helm upgrade` of a release
installed from it keeps working, and "<release>-vpn-frontend-0" is where users expect it.
*/}}
{{- define "ikegw-vpn.name" -}}
{{- default "vpn" .Values.nameOverride | trunc 42 | trimSuffix "-" }}
{{- end }}

{{- define "ikegw-vpn.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- $name := default "vpn" .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ikegw-vpn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ikegw-vpn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ikegw-vpn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ikegw-vpn.labels" -}}
helm.sh/chart: {{ include "ikegw-vpn.chart" . }}
{{ include "ikegw-vpn.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ikegw
{{- end }}

{{- define "ikegw-vpn.frontendPod" -}}
{{ include "ikegw-vpn.fullname" . }}-frontend-0
{{- end }}

{{- define "ikegw-vpn.configSecret" -}}
{{ include "ikegw-vpn.fullname" . }}-config
{{- end }}

{{/* Secret and key the PSK file comes from. */}}
{{- define "ikegw-vpn.pskSecret" -}}
{{- if .Values.ipsec.existingSecret }}{{ .Values.ipsec.existingSecret }}{{ else }}{{ include "ikegw-vpn.configSecret" . }}{{ end }}
{{- end }}
{{- define "ikegw-vpn.pskKey" -}}
{{- if .Values.ipsec.existingSecret }}{{ default "psk" .Values.ipsec.existingSecretKey }}{{ else }}psk{{ end }}
{{- end }}

{{/*
Authentication per direction: "psk" or "cert". localAuth is how this side proves itself
(ipsec.auth), remoteAuth how the peer must (ipsec.remoteAuth, default: the same).
*/}}
{{- define "ikegw-vpn.localAuth" -}}
{{- default "psk" .Values.ipsec.auth }}
{{- end }}
{{- define "ikegw-vpn.remoteAuth" -}}
{{- default (include "ikegw-vpn.localAuth" .) .Values.ipsec.remoteAuth }}
{{- end }}
{{/* "true" when a PSK file is needed (either direction uses psk). */}}
{{- define "ikegw-vpn.pskUsed" -}}
{{- if or (eq (include "ikegw-vpn.localAuth" .) "psk") (eq (include "ikegw-vpn.remoteAuth" .) "psk") }}true{{ end }}
{{- end }}
{{/* The kubernetes.io/tls Secret with our certificate: ipsec.certSecret, else the one the chart's cert-manager Certificate writes. */}}
{{- define "ikegw-vpn.certSecret" -}}
{{- default (printf "%s-ipsec-tls" (include "ikegw-vpn.fullname" .)) .Values.ipsec.certSecret }}
{{- end }}
{{/* "true" when the chart renders a cert-manager Certificate. */}}
{{- define "ikegw-vpn.certManager" -}}
{{- if dig "certManager" "issuerRef" "name" "" .Values.ipsec }}true{{ end }}
{{- end }}
{{/* "true" when the peer's CA bundle comes from ipsec.peerCa (else ca.crt of the certificate Secret). */}}
{{- define "ikegw-vpn.peerCaSet" -}}
{{- if or (dig "peerCa" "secret" "" .Values.ipsec) (dig "peerCa" "configMap" "" .Values.ipsec) }}true{{ end }}
{{- end }}

{{/* MTU as a string; "" when unset (null, "" or removed). */}}
{{- define "ikegw-vpn.mtu" -}}
{{- if kindIs "invalid" .Values.mtu }}{{ else }}{{ toString .Values.mtu }}{{ end }}
{{- end }}

{{/* The environment of the reference chart's helpers, same names and formats. */}}
{{- define "ikegw-vpn.commonEnv" -}}
- name: VPN_PEER_CIDRS
  value: {{ join " " .Values.peerCIDRs | quote }}
- name: VPN_POD_CIDR
  value: {{ .Values.podCIDR | quote }}
- name: VPN_SERVICE_CIDR
  value: {{ .Values.serviceCIDR | quote }}
- name: VPN_FRONTEND_POD
  value: {{ include "ikegw-vpn.frontendPod" . | quote }}
- name: VPN_MTU
  value: {{ include "ikegw-vpn.mtu" . | quote }}
- name: IKEGW_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: IKEGW_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/*
Checks that also hold when schema validation is skipped (helm --skip-schema-validation).
values.schema.json is the primary check and reports these first.
*/}}
{{- define "ikegw-vpn.validate" -}}
{{- if not .Values.peerCIDRs }}
{{- fail "peerCIDRs: at least one on-prem CIDR is required (e.g. --set peerCIDRs={192.168.0.0/16})" }}
{{- end }}
{{- if not .Values.ipsec.peer }}
{{- fail "ipsec.peer: the address of the on-prem gateway is required" }}
{{- end }}
{{- $localAuth := include "ikegw-vpn.localAuth" . }}
{{- $remoteAuth := include "ikegw-vpn.remoteAuth" . }}
{{- if not (has $localAuth (list "psk" "cert")) }}
{{- fail (printf "ipsec.auth: must be psk or cert, not %q" $localAuth) }}
{{- end }}
{{- if not (has $remoteAuth (list "psk" "cert")) }}
{{- fail (printf "ipsec.remoteAuth: must be psk or cert (or empty: as ipsec.auth), not %q" $remoteAuth) }}
{{- end }}
{{- if and (include "ikegw-vpn.pskUsed" .) (not .Values.ipsec.psk) (not .Values.ipsec.existingSecret) }}
{{- fail "ipsec.psk: a pre-shared key is required (or set ipsec.existingSecret)" }}
{{- end }}
{{- if and (eq $localAuth "cert") (not .Values.ipsec.certSecret) (not (include "ikegw-vpn.certManager" .)) }}
{{- fail "ipsec.certSecret: ipsec.auth cert needs the name of a kubernetes.io/tls Secret (or ipsec.certManager.issuerRef to have cert-manager issue one)" }}
{{- end }}
{{- if and (dig "peerCa" "secret" "" .Values.ipsec) (dig "peerCa" "configMap" "" .Values.ipsec) }}
{{- fail "ipsec.peerCa: set secret or configMap, not both" }}
{{- end }}
{{- if and (eq $remoteAuth "cert") (not .Values.ipsec.certSecret) (not (include "ikegw-vpn.certManager" .)) (not (include "ikegw-vpn.peerCaSet" .)) }}
{{- fail "ipsec.peerCa: ipsec.remoteAuth cert needs the CA bundle of the peer's certificate (ipsec.peerCa.secret or .configMap, or ca.crt of ipsec.certSecret)" }}
{{- end }}
{{- if not (has .Values.routes.nodeNetns (list "hostPath" "hostPID")) }}
{{- fail (printf "routes.nodeNetns: must be hostPath or hostPID, not %q" (toString .Values.routes.nodeNetns)) }}
{{- end }}
{{- /* JSON schema cannot compare two values, so this check exists only here. */}}
{{- range $i, $peer := .Values.peerCIDRs }}
{{- range $field := list "podCIDR" "serviceCIDR" }}
{{- $cluster := index $.Values $field }}
{{- if include "ikegw-vpn.cidrsOverlap" (list $peer $cluster) }}
{{- fail (printf "peerCIDRs[%d]: %s overlaps %s %s; the on-prem ranges must not overlap the cluster's pod and service ranges (the routes to them would capture the cluster's own traffic)" $i (toString $peer) $field (toString $cluster)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A CIDR as "<family>|<address bits as 0/1 characters>|<prefix length>", e.g. 10.0.0.0/8 ->
"4|00001010000...|8"; IPv6 with "::" is expanded. Sprig has no IP arithmetic; this is enough to
compare prefixes. Assumes the syntax values.schema.json checks; never fails on other input.
*/}}
{{- define "ikegw-vpn.cidrBits" -}}
{{- $parts := splitList "/" (toString .) }}
{{- $addr := lower (first $parts) }}
{{- $family := "4" }}
{{- $bits := "" }}
{{- if contains ":" $addr }}
{{- $family = "6" }}
{{- $nibble := dict "0" "0000" "1" "0001" "2" "0010" "3" "0011" "4" "0100" "5" "0101" "6" "0110" "7" "0111" "8" "1000" "9" "1001" "a" "1010" "b" "1011" "c" "1100" "d" "1101" "e" "1110" "f" "1111" }}
{{- $halves := splitList "::" $addr }}
{{- $head := list }}
{{- if first $halves }}{{ $head = splitList ":" (first $halves) }}{{ end }}
{{- $tail := list }}
{{- if and (gt (len $halves) 1) (last $halves) }}{{ $tail = splitList ":" (last $halves) }}{{ end }}
{{- $groups := $head }}
{{- $missing := sub 8 (add (len $head) (len $tail)) | int }}
{{- if and (gt (len $halves) 1) (gt $missing 0) }}
{{- range until $missing }}{{ $groups = append $groups "0" }}{{ end }}
{{- end }}
{{- range concat $groups $tail }}
{{- $g := . }}
{{- if lt (len $g) 4 }}{{ $g = print (repeat (sub 4 (len $g) | int) "0") $g }}{{ end }}
{{- range splitList "" $g }}{{ $bits = print $bits (get $nibble .) }}{{ end }}
{{- end }}
{{- else }}
{{- range splitList "." $addr }}{{ $bits = print $bits (printf "%08b" (atoi .)) }}{{ end }}
{{- end }}
{{- $prefix := ternary "128" "32" (eq $family "6") }}
{{- if gt (len $parts) 1 }}{{ $prefix = index $parts 1 }}{{ end }}
{{- printf "%s|%s|%s" $family $bits $prefix }}
{{- end }}

{{/*
"true" if two CIDRs (a list of two) share an address: same family, and the shorter of the two
prefixes is the same in both.
*/}}
{{- define "ikegw-vpn.cidrsOverlap" -}}
{{- $a := splitList "|" (include "ikegw-vpn.cidrBits" (index . 0)) }}
{{- $b := splitList "|" (include "ikegw-vpn.cidrBits" (index . 1)) }}
{{- if eq (index $a 0) (index $b 0) }}
{{- $n := min (atoi (index $a 2)) (atoi (index $b 2)) | int }}
{{- if eq (substr 0 $n (index $a 1)) (substr 0 $n (index $b 1)) }}true{{ end }}
{{- end }}
{{- end }}

{{/*
The daemon's configuration file (config.yaml). The PSK is not in it: it is a separate Secret key
mounted as a file; so are the certificate files (ipsec.auth cert), projected from their Secret
into /etc/ikegw/ (tls.crt, tls.key, peer-ca.crt). With PSKs only and no IDs it is what it was before certificates.
*/}}
{{- define "ikegw-vpn.daemonConfig" -}}
{{- $child := dict
      "local_ts" (list .Values.podCIDR .Values.serviceCIDR)
      "remote_ts" .Values.peerCIDRs
      "esp_proposals" .Values.ipsec.espProposals
      "start_action" (ternary "start" "trap" (.Values.ha.enabled | default false)) }}
{{- $conn := dict
      "remote_addrs" (list .Values.ipsec.peer)
      "proposals" .Values.ipsec.proposals
      "dpd_delay" .Values.ipsec.dpdDelay
      "dpd_action" .Values.ipsec.dpdAction
      "children" (dict "cluster" $child) }}
{{- if include "ikegw-vpn.pskUsed" . }}
{{- $_ := set $conn "psk" (dict "file" "/etc/ikegw/secrets/psk") }}
{{- end }}
{{- $local := dict }}
{{- if eq (include "ikegw-vpn.localAuth" .) "cert" }}
{{- $local = dict "auth" "pubkey" "certs" (list "/etc/ikegw/tls.crt") "key" "/etc/ikegw/tls.key" }}
{{- $_ := set $conn "send_cert" (default "always" .Values.ipsec.sendCert) }}
{{- end }}
{{- with .Values.ipsec.localId }}{{ $_ := set $local "id" (toString .) }}{{ end }}
{{- if and .Values.ha.enabled (not .Values.ipsec.localId) (ne (include "ikegw-vpn.localAuth" .) "cert") }}
{{- /* HA with a PSK: both replicas need the same IKE identity (the default, the pod IP, differs),
or the peer would not drop the old replica's IKE_SA on the new one's INITIAL_CONTACT. */}}
{{- $_ := set $local "id" (printf "%s.%s" (include "ikegw-vpn.fullname" .) .Release.Namespace) }}
{{- end }}
{{- if $local }}{{ $_ := set $conn "local" $local }}{{ end }}
{{- $remote := dict }}
{{- if eq (include "ikegw-vpn.remoteAuth" .) "cert" }}
{{- $remote = dict "auth" "pubkey" "cacerts" (list "/etc/ikegw/peer-ca.crt") }}
{{- end }}
{{- with .Values.ipsec.remoteId }}{{ $_ := set $remote "id" (toString .) }}{{ end }}
{{- if $remote }}{{ $_ := set $conn "remote" $remote }}{{ end }}
{{- $cfg := dict
      "connections" (dict "onprem" $conn)
      "datapath" (ternary "xfrm" .Values.datapath (eq .Values.datapath "kernel"))
      "listen" (dict "address" "0.0.0.0" "port" 500 "nat_port" 4500)
      "log" (dict "level" .Values.logLevel "format" .Values.logFormat)
      "metrics" (dict "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port))) }}
{{- if .Values.ha.enabled }}
{{- /* HA: the elected replica starts the tunnel itself (INITIAL_CONTACT), see _ha.tpl. */}}
{{- $_ := set $cfg "ha" (include "ikegw-vpn.haConfig" . | fromYaml) }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The image. A config.yaml made with `helm inspect values` of the reference chart carries that
chart's strongSwan image, which cannot run this chart's components; it is replaced by this
chart's default image (NOTES.txt says so) so that such a file installs unchanged.
*/}}
{{- define "ikegw-vpn.referenceImage" -}}
{{- if regexMatch `^ghcr\.io/edgelesssys/constellation/vpn([@:].*)?$` (toString .Values.image) }}true{{ end }}
{{- end }}
{{- define "ikegw-vpn.image" -}}
{{- if include "ikegw-vpn.referenceImage" . }}{{ printf "ikegw:%s" .Chart.AppVersion }}{{ else }}{{ .Values.image }}{{ end }}
{{- end }}
