#!/usr/bin/env bash
# Times docker-credential-berth get, cold (erase, then a fresh ID token from
# berth dev-issuer exchanged at berth) and warm (from the cache), 20 times
# each. Needs make build. See docs/benchmarks.md.
set -e
B=$(cd "$(dirname "$0")/.." && pwd)/bin
W=$(mktemp -d); export HOME=$W DOCKER_CONFIG=$W/.docker REGISTRY_AUTH_FILE=$W/auth.json XDG_CONFIG_HOME=$W/.config XDG_CACHE_HOME=$W/.cache
unset XDG_RUNTIME_DIR
$B/berth dev-issuer -addr 127.0.0.1:8977 -state-dir $W/iss >/dev/null 2>&1 & I=$!
cat > $W/b.toml <<TOML
[server]
port = 5099
bind_address = "127.0.0.1"
[blob_store.fs]
root_dir = "$W/data"
[log]
level = "warn"
[auth.oidc.gha]
provider = "github"
issuer = "http://127.0.0.1:8977"
audiences = ["bench"]
[global.access_policy]
default_allow = false
rules = ['identity.id != "anonymous"']
TOML
$B/berth serve -c $W/b.toml 2>$W/berth.log & P=$!
for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:5099/v2/ && break; sleep 0.2; done; cat $W/berth.log | head -5
export ACTIONS_ID_TOKEN_REQUEST_URL="http://127.0.0.1:8977/gh/token?api-version=2.0" ACTIONS_ID_TOKEN_REQUEST_TOKEN=dev-request-token
PATH=$B:$PATH $B/berth login http://127.0.0.1:5099 --provider gha --audience bench --token-source github-actions
ms() { echo $(( ($2 - $1) / 1000 )); }
cold=(); warm=()
for i in $(seq 1 20); do
  echo 127.0.0.1:5099 | $B/docker-credential-berth erase
  a=$(date +%s%N); echo 127.0.0.1:5099 | $B/docker-credential-berth get >/dev/null; b=$(date +%s%N)
  echo 127.0.0.1:5099 | $B/docker-credential-berth get >/dev/null; c=$(date +%s%N)
  cold+=($(ms $a $b)); warm+=($(ms $b $c))
done
echo "cold us: $(printf '%s\n' "${cold[@]}" | sort -n | tr '\n' ' ')"
echo "warm us: $(printf '%s\n' "${warm[@]}" | sort -n | tr '\n' ' ')"
kill $P $I; wait 2>/dev/null; rm -rf $W
