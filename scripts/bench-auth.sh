#!/usr/bin/env bash
# Load script: manifest GET throughput with authentication and policies,
# next to open mode, in one run (wrk, 2 threads, 32 connections).
#
#   [ROUNDS=N] [WRK_THREADS=N] scripts/bench-auth.sh [DURATION]      (default 10s; needs wrk, curl, jq)
#
# Servers (all loopback): open mode; [auth] (OIDC provider + static user) with a
# one-rule global policy that also lets anonymous callers pull (so "anonymous"
# is measured on the same server as the credentials); the same with a 20-rule
# policy whose last rule matches.
set -euo pipefail
dur=${1:-10s}
for t in wrk curl jq go; do command -v $t >/dev/null || { echo "bench-auth: $t is required" >&2; exit 2; }; done
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
(cd "$root" && go build -o "$work/berth" ./cmd/berth)
B=$work/berth

"$B" dev-issuer -addr 127.0.0.1:18900 -ttl 1h >"$work/issuer.out" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q ACTIONS_ID_TOKEN_REQUEST_TOKEN "$work/issuer.out" && break; sleep 0.1; done
req_url=$(sed -n "s/.*ACTIONS_ID_TOKEN_REQUEST_URL='\(.*\)'/\1/p" "$work/issuer.out")
req_tok=$(sed -n "s/.*ACTIONS_ID_TOKEN_REQUEST_TOKEN='\(.*\)'/\1/p" "$work/issuer.out")
idtok=$(curl -sf -H "Authorization: bearer $req_tok" "$req_url&audience=berth" | jq -r .value)
hash=$(echo secret | "$B" hash-password)

rules20=""
for i in $(seq 19); do rules20+="'identity.username == \"nobody$i\"', "; done
rules20+="'identity.id != \"anonymous\"'"

start() { # name port extra-toml
  cat >"$work/$1.toml" <<CFG
[server]
bind_address = "127.0.0.1"
port = $2
[blob_store.fs]
root_dir = "$work/data-$1"
[log]
level = "error"
$3
CFG
  "$B" serve -c "$work/$1.toml" 2>"$work/$1.log" & pids+=($!)
  for _ in $(seq 50); do curl -s -o /dev/null "127.0.0.1:$2/healthz" && return; sleep 0.1; done
  echo "bench-auth: $1 did not start" >&2; cat "$work/$1.log" >&2; exit 1
}
auth="[auth.oidc.ci]
issuer = \"http://127.0.0.1:18900\"
audiences = [\"berth\"]
[auth.identity.alice]
username = \"alice\"
password = '$hash'"
start open 18901 ""
start auth 18902 "$auth
[global.access_policy]
rules = ['request.action == \"pull\" || identity.id != \"anonymous\"']"
start rules20 18903 "$auth
[global.access_policy]
rules = [$rules20]"

push() { # port authorization-header
  local cfg='{"architecture":"amd64","os":"linux"}' d m
  d=$(printf %s "$cfg" | sha256sum | cut -d' ' -f1)
  curl -sf -o /dev/null -H "$2" -X POST --data-binary "$cfg" "127.0.0.1:$1/v2/bench/app/blobs/uploads/?digest=sha256:$d"
  m="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$d\",\"size\":${#cfg}},\"layers\":[]}"
  curl -sf -o /dev/null -H "$2" -H "Content-Type: application/vnd.oci.image.manifest.v1+json" -X PUT --data-binary "$m" "127.0.0.1:$1/v2/bench/app/manifests/v1"
}
push 18901 "X-None: 1"
push 18902 "Authorization: Bearer $idtok"
push 18903 "Authorization: Bearer $idtok"
access=$(curl -sf -u "ci:$idtok" "127.0.0.1:18902/token?service=berth&scope=repository:bench/app:pull" | jq -r .token)
basic="Basic $(printf 'alice:secret' | base64 -w0)"

run() { # label port header
  local rps
  rps=$(wrk -t${WRK_THREADS:-2} -c32 -d"$dur" -H "$3" "http://127.0.0.1:$2/v2/bench/app/manifests/v1" | awk '/Requests\/sec/ {print $2}')
  echo "$1 $rps"
}
# ROUNDS > 1 interleaves the scenarios and keeps each one's best round, so a
# burst of unrelated load on a shared machine lowers no single scenario.
rounds=${ROUNDS:-1}
all=$(
  for _ in $(seq "$rounds"); do
    run open 18901 "X-None: 1"
    run anonymous 18902 "X-None: 1"
    run oidc-bearer 18902 "Authorization: Bearer $idtok"
    run access-token 18902 "Authorization: Bearer $access"
    run static-basic 18902 "Authorization: $basic"
    run oidc-bearer-20-rules 18903 "Authorization: Bearer $idtok"
  done
)
results=$(echo "$all" | awk '{ if (!($1 in best)) order[n++] = $1; if ($2 > best[$1]) best[$1] = $2 } END { for (i = 0; i < n; i++) print order[i], best[order[i]] }')
open=$(echo "$results" | awk '$1=="open" {print $2}')
anon=$(echo "$results" | awk '$1=="anonymous" {print $2}')
echo "| scenario | requests/s | vs open mode | vs anonymous on the same server |"
echo "| --- | --- | --- | --- |"
echo "$results" | awk -v o="$open" -v a="$anon" '{printf "| %s | %.0f | %.0f %% | %.0f %% |\n", $1, $2, 100*$2/o, 100*$2/a}'
echo "(wrk -t${WRK_THREADS:-2} -c32 -d$dur, best of $rounds interleaved round(s), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
