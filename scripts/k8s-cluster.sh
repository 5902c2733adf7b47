#!/usr/bin/env bash
# A throwaway single-node Kubernetes v1.20.2 for SPE's cluster tests, from the binaries that
# scripts/k8s-build.sh made. State lives in $SPE_K8S_RUN (default /tmp/spe-k8s), never in the repo.
#
#   scripts/k8s-cluster.sh up        # etcd, apiserver, controller-manager, scheduler (+ node: containerd, kubelet, kube-proxy)
#   scripts/k8s-cluster.sh down      # stop everything this script started, clean kube-proxy's rules
#   scripts/k8s-cluster.sh env       # print `export KUBECONFIG=...`
#
# SPE_K8S_NODE=0 starts the control plane only (enough for server-side dry runs, helm
# install/upgrade/uninstall, RBAC checks). The node uses its own containerd (own socket and
# root, restrict_oom_score_adj), the CNI bridge plugin, and accepts forwarding on the pod
# bridge because Docker sets FORWARD to DROP. The bridge plugin does NOT enforce NetworkPolicy.
# Image garbage collection is off: images are imported (imagePullPolicy Never), so an image the
# kubelet removed on a fuller disk could not come back.
set -euo pipefail
CACHE="${SPE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spe/k8s-1.20.2}"
BIN="$CACHE/bin"
RUN="${SPE_K8S_RUN:-/tmp/spe-k8s}"
NODE="${SPE_K8S_NODE:-1}"
ETCD_PORT=23790
API_PORT="${SPE_K8S_API_PORT:-16443}"
SERVICE_CIDR=10.254.0.0/24
POD_CIDR=10.253.0.0/16
DNS_IP=10.253.0.1  # the bridge gateway; dnsmasq answers there for <svc>.<ns>.svc.cluster.local
export PATH="$BIN:$PATH"
log() { echo "k8s-cluster: $*" >&2; }

start() {  # start NAME CMD...: background, log to $RUN/log/NAME.log, pid in $RUN/pid/NAME
  local name=$1; shift
  mkdir -p "$RUN/log" "$RUN/pid"
  nohup "$@" >"$RUN/log/$name.log" 2>&1 &
  echo $! >"$RUN/pid/$name"
}

wait_for() {  # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "$what did not come up; see $RUN/log/"; return 1
}

certs() {
  local d="$RUN/pki"; mkdir -p "$d"; cd "$d"
  [ -f ca.crt ] && return 0
  local host_ip; host_ip="$(hostname -I | awk '{print $1}')"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -keyout ca.key -out ca.crt -subj "/CN=spe-test-ca" 2>/dev/null
  cat >api.ext <<EXT
subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:${SERVICE_CIDR%.0/24}.1,IP:$host_ip
EXT
  openssl req -newkey rsa:2048 -nodes -keyout api.key -out api.csr -subj "/CN=kube-apiserver" 2>/dev/null
  openssl x509 -req -in api.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out api.crt -extfile api.ext 2>/dev/null
  # the apiserver's client identity towards kubelets (exec, logs)
  openssl req -newkey rsa:2048 -nodes -keyout apiclient.key -out apiclient.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
  openssl x509 -req -in apiclient.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out apiclient.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  local admin node cm sched proxy
  admin=$(openssl rand -hex 16); node=$(openssl rand -hex 16); cm=$(openssl rand -hex 16)
  sched=$(openssl rand -hex 16); proxy=$(openssl rand -hex 16)
  cat >tokens.csv <<TOK
$admin,admin,admin,system:masters
$node,system:node:localhost,node,system:nodes
$cm,system:kube-controller-manager,cm
$sched,system:kube-scheduler,sched
$proxy,system:kube-proxy,proxy
TOK
  for who in admin:$admin node:$node cm:$cm sched:$sched proxy:$proxy; do
    cat >"$RUN/${who%%:*}.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: spe, cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$d/ca.crt"}}]
users: [{name: u, user: {token: "${who#*:}"}}]
contexts: [{name: spe, context: {cluster: spe, user: u}}]
current-context: spe
KC
  done
}

up_control_plane() {
  certs
  local d="$RUN/pki" host_ip; host_ip="$(hostname -I | awk '{print $1}')"
  start etcd etcd --name spe --data-dir "$RUN/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls http://127.0.0.1:23800 \
    --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster spe=http://127.0.0.1:23800
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
  start apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$host_ip" \
    --service-cluster-ip-range "$SERVICE_CIDR" --tls-cert-file "$d/api.crt" --tls-private-key-file "$d/api.key" \
    --client-ca-file "$d/ca.crt" --token-auth-file "$d/tokens.csv" --authorization-mode Node,RBAC \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-account-issuer https://kubernetes.default.svc --api-audiences https://kubernetes.default.svc \
    --kubelet-client-certificate "$d/apiclient.crt" --kubelet-client-key "$d/apiclient.key" \
    --allow-privileged=true --enable-admission-plugins NamespaceLifecycle,ServiceAccount,LimitRanger,ResourceQuota,DefaultStorageClass
  wait_for apiserver 90 kubectl --kubeconfig "$RUN/admin.kubeconfig" get --raw /readyz
  start controller-manager kube-controller-manager --kubeconfig "$RUN/cm.kubeconfig" --leader-elect=false \
    --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" --use-service-account-credentials \
    --cluster-signing-cert-file "$d/ca.crt" --cluster-signing-key-file "$d/ca.key" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-route,-service'
  start scheduler kube-scheduler --kubeconfig "$RUN/sched.kubeconfig" --leader-elect=false
  # the default ServiceAccount appears once the controller-manager runs
  wait_for serviceaccount 60 kubectl --kubeconfig "$RUN/admin.kubeconfig" -n default get sa default
}

up_node() {
  local d="$RUN/pki"
  if [ ! -x /usr/lib/cni/bridge ]; then
    log "installing containernetworking-plugins (CNI bridge, host-local, portmap)"
    apt-get install -y -qq --no-install-recommends containernetworking-plugins >/dev/null
  fi
  mkdir -p "$RUN/containerd" "$RUN/cni/net.d" "$RUN/kubelet"
  cat >"$RUN/containerd/config.toml" <<TOML
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
[grpc]
  address = "$RUN/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "k8s.gcr.io/pause:3.2"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
TOML
  cat >"$RUN/cni/net.d/10-spe.conflist" <<CNI
{"cniVersion": "0.4.0", "name": "spe", "plugins": [
  {"type": "bridge", "bridge": "spe-k8s0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
CNI
  # The bridge exists before any pod, so the DNS stand-in can listen on its address.
  if ! ip link show spe-k8s0 >/dev/null 2>&1; then
    ip link add spe-k8s0 type bridge && ip addr add "$DNS_IP/16" dev spe-k8s0 && ip link set spe-k8s0 up
  fi
  up_dns
  start containerd containerd --config "$RUN/containerd/config.toml"
  wait_for containerd 30 ctr --address "$RUN/containerd/containerd.sock" version
  # the pause image: the static binary from the source tree, as a one-file image
  if ! ctr --address "$RUN/containerd/containerd.sock" -n k8s.io images ls -q | grep -q "k8s.gcr.io/pause:3.2"; then
    local t; t="$(mktemp -d)"; cp "$BIN/pause" "$t/pause"
    printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$t/Dockerfile"
    docker build -q -t spe-k8s-pause:3.2 "$t" >/dev/null
    docker tag spe-k8s-pause:3.2 k8s.gcr.io/pause:3.2
    docker save k8s.gcr.io/pause:3.2 | ctr --address "$RUN/containerd/containerd.sock" -n k8s.io images import - >/dev/null
    docker rmi k8s.gcr.io/pause:3.2 spe-k8s-pause:3.2 >/dev/null; rm -rf "$t"
  fi
  start kubelet kubelet --kubeconfig "$RUN/node.kubeconfig" --hostname-override localhost \
    --container-runtime remote --container-runtime-endpoint "unix://$RUN/containerd/containerd.sock" \
    --root-dir "$RUN/kubelet" --cert-dir "$RUN/kubelet/pki" --cgroup-driver cgroupfs --fail-swap-on=false \
    --anonymous-auth=false --client-ca-file "$d/ca.crt" --authorization-mode AlwaysAllow \
    --read-only-port 0 --pod-infra-container-image k8s.gcr.io/pause:3.2 \
    --eviction-hard 'nodefs.available<1%,imagefs.available<1%,memory.available<100Mi' \
    --image-gc-high-threshold 100 \
    --cgroups-per-qos=false --enforce-node-allocatable= --pod-max-pids 1024 \
    --cluster-dns "$DNS_IP" --cluster-domain cluster.local
  wait_for node 90 sh -c "kubectl --kubeconfig '$RUN/admin.kubeconfig' get node localhost -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  start kube-proxy kube-proxy --kubeconfig "$RUN/proxy.kubeconfig" --hostname-override localhost \
    --proxy-mode iptables --cluster-cidr "$POD_CIDR" --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
  # Docker sets FORWARD to DROP; pods on our bridge must still reach each other and the services
  iptables -C FORWARD -i spe-k8s0 -j ACCEPT 2>/dev/null || iptables -I FORWARD -i spe-k8s0 -j ACCEPT
  iptables -C FORWARD -o spe-k8s0 -j ACCEPT 2>/dev/null || iptables -I FORWARD -o spe-k8s0 -j ACCEPT
}

# No CoreDNS in our registries: dnsmasq (Debian) serves Service names from a hosts file that a
# small loop keeps in sync with the API (the job kube-dns does); other names go to the host's resolver.
up_dns() {
  command -v dnsmasq >/dev/null || { log "installing dnsmasq-base"; apt-get install -y -qq --no-install-recommends dnsmasq-base >/dev/null; }
  mkdir -p "$RUN/dns"; : >"$RUN/dns/hosts"
  local upstream; upstream="$(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)"
  start dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --server="$upstream" \
    --listen-address="$DNS_IP" --bind-interfaces --addn-hosts="$RUN/dns/hosts" --user=root --pid-file= --cache-size=0
  start dns-sync bash -c '
    while sleep 2; do
      kubectl --kubeconfig "$0/admin.kubeconfig" get svc -A -o jsonpath="{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc.cluster.local{\"\n\"}{end}" 2>/dev/null \
        | grep -v "^None " >"$0/dns/hosts.new" || continue
      if ! cmp -s "$0/dns/hosts.new" "$0/dns/hosts"; then mv "$0/dns/hosts.new" "$0/dns/hosts"; kill -HUP "$(cat "$0/pid/dnsmasq")"; fi
    done' "$RUN"
}

all_alive() {  # every component with a pid file still runs
  local f
  for f in "$RUN"/pid/*; do
    [ -f "$f" ] || continue
    kill -0 "$(cat "$f")" 2>/dev/null || return 1
  done
}

node_up() {  # the node's processes run and it is Ready
  [ -f "$RUN/pid/kubelet" ] && [ -f "$RUN/pid/kube-proxy" ] || return 1
  kubectl --kubeconfig "$RUN/admin.kubeconfig" get node localhost \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True
}

down() {
  for name in dns-sync dnsmasq kube-proxy kubelet containerd scheduler controller-manager apiserver etcd; do
    local f="$RUN/pid/$name"
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  # containers of our own containerd (shims outlive it)
  pkill_ours() { for p in $(pgrep -f "containerd-shim.*-address $RUN/containerd" || true); do kill -9 "$p" 2>/dev/null || true; done; }
  pkill_ours
  [ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  # kubelet's and kube-proxy's own chains (KUBE-FIREWALL, canaries, marks) that --cleanup leaves
  # behind: unhook them from the built-in chains by rule number, then flush and delete them.
  for t in nat filter mangle; do
    for base in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
      while n=$(iptables -t "$t" -L "$base" --line-numbers -n 2>/dev/null | awk '$2 ~ /^KUBE-/ {print $1; exit}') && [ -n "$n" ]; do
        iptables -t "$t" -D "$base" "$n" || break
      done
    done
    for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do iptables -t "$t" -F "$c" 2>/dev/null || true; done
    for c in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/{print $2}'); do iptables -t "$t" -X "$c" 2>/dev/null || true; done
  done
  iptables -D FORWARD -i spe-k8s0 -j ACCEPT 2>/dev/null || true
  iptables -D FORWARD -o spe-k8s0 -j ACCEPT 2>/dev/null || true
  ip link del spe-k8s0 2>/dev/null || true
  for m in $(grep -o "$RUN/[^ ]*" /proc/mounts | sort -r || true); do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$RUN"
}

case "${1:-}" in
  up)
    [ -x "$BIN/kube-apiserver" ] || { log "no binaries in $BIN: run scripts/k8s-build.sh"; exit 1; }
    if [ -f "$RUN/pid/apiserver" ]; then
      if all_alive && kubectl --kubeconfig "$RUN/admin.kubeconfig" get --raw /readyz >/dev/null 2>&1 \
         && { [ "$NODE" != 1 ] || node_up; }; then
        log "already up ($RUN)"; echo "export KUBECONFIG=$RUN/admin.kubeconfig"; exit 0
      fi
      # pid files of a cluster that is gone (a reboot, a killed test run) or half started (a
      # failed `up`, a node never started): clear it and start afresh
      log "stale state in $RUN (processes gone, apiserver or node not ready): cleaning up"
      down
    fi
    mkdir -p "$RUN"
    # an `up` that fails leaves nothing behind that the next one could take for a cluster
    trap 'rc=$?; if [ "$rc" -ne 0 ]; then log "up failed (exit $rc): stopping what it started"; down; fi' EXIT
    up_control_plane
    if [ "$NODE" = 1 ]; then up_node; fi
    trap - EXIT
    echo "export KUBECONFIG=$RUN/admin.kubeconfig" ;;
  down) down ;;
  env) echo "export KUBECONFIG=$RUN/admin.kubeconfig" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
