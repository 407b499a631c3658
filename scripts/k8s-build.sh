#!/usr/bin/env bash
# Build the Kubernetes v1.20.2 server binaries, kubectl and a static `pause` from Debian bookworm's
# own `kubernetes` source package (its Go dependencies are vendored: no Go proxy or registry is
# needed), with Debian's Go. About 6-10 minutes on 2 cores; ~3 GB of scratch space.
#
# Usage: scripts/k8s-build.sh [OUTDIR]
#   OUTDIR defaults to ${CHAOSCTL_CACHE_DIR:-~/.cache/chaosctl}/k8s-v1.20.2. When OUTDIR already
#   holds every binary (and a stamp of this script's version), nothing is rebuilt: CI builds once
#   per machine and the tests reuse it.
# Needs root for apt-get (golang-go, dpkg-dev, jq, rsync, Debian's reflect2 1.0.2 sources).
set -euo pipefail
STAMP_VERSION="k8s-build v1 (1.20.2, reflect2 1.0.2)"
OUT=${1:-${CHAOSCTL_CACHE_DIR:-$HOME/.cache/chaosctl}/k8s-v1.20.2}
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl pause)

have_all() {
  [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP_VERSION" ] || return 1
  for b in "${BINS[@]}"; do [ -x "$OUT/$b" ] || return 1; done
}
if have_all; then echo "k8s-build: cached binaries in $OUT"; exit 0; fi

export DEBIAN_FRONTEND=noninteractive
if [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
  # deb-src for the machine's own Debian mirror (the same host apt already uses)
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/chaosctl-debian-src.sources
  apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends golang-go rsync jq dpkg-dev gcc libc6-dev \
  golang-github-modern-go-reflect2-dev >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/k8s-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo "k8s-build: fetching the kubernetes source package"
apt-get source --download-only kubernetes >/dev/null 2>&1
tar xzf kubernetes_*.orig.tar.gz
cd kubernetes-1.20.2
# The vendored reflect2 v1.0.1 crashes with Go >= 1.18; Debian ships 1.0.2.
sed -i 's|modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.1|modern-go/reflect2 => github.com/modern-go/reflect2 v1.0.2|' go.mod
sed -i 's|^\(# github.com/modern-go/reflect2.*=> github.com/modern-go/reflect2\) v1.0.1|\1 v1.0.2|' vendor/modules.txt
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
rm -f vendor/github.com/modern-go/reflect2/go.mod
export GOPROXY=off CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE="$WORK/gocache"
echo "k8s-build: generating files"
make generated_files >/dev/null
echo "k8s-build: compiling (several minutes)"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl" GOLDFLAGS="-s -w" >/dev/null
mkdir -p "$OUT"
cp _output/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kube-proxy,kubectl} "$OUT"/
gcc -Os -static -o "$OUT/pause" build/pause/linux/pause.c
echo "$STAMP_VERSION" > "$OUT/.stamp"
"$OUT"/kube-apiserver --version
echo "k8s-build: binaries in $OUT"
