#!/usr/bin/env bash
# Start the service on the champion, batch-score photos through it, stop the service.
#   scripts/serve-and-score.sh BIN_DIR PORT PHOTOS(dir or faces XML) OUT.jsonl [TRUTH.xml]
# BEARID_STORE (default: BENTOML_HOME) names the model store holding the champion.
set -euo pipefail
bin=$1 port=$2 photos=$3 out=$4 truth=${5:-}
log=$(dirname "$out")/server.log
mkdir -p "$(dirname "$out")"
"$bin/bearid" serve --port "$port" --workers 2 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    # Our server must be alive (another one answering on the port is not ours).
    kill -0 $server 2>/dev/null || { echo "the service failed to start:"; tail -20 "$log"; exit 1; }
    if "$bin/python" -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:$port/readyz').status_code != 200)" 2>/dev/null; then
        break
    fi
    sleep 1
done
"$bin/bearid" score "$photos" --url "http://127.0.0.1:$port" --out "$out" --table ${truth:+--truth "$truth"}
