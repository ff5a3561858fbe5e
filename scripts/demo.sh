#!/usr/bin/env bash
# The README's main job: the whole pipeline on the embedded profile.
#   simulated market (30 min of history, then a live feed) -> Kafka -> Spark detectors
#   -> DynamoDB Local + Iceberg -> alert API and dashboard on 127.0.0.1, alerts printed as they land.
# Ctrl-C stops everything it started (the local services too). DEMO_SECONDS=N stops it after N s.
# TIER=small|medium|large (default medium, e.g. `make demo TIER=large`) chooses the modules
# (config/tiers/<tier>.yaml). Tiers with the Ethereum connector (medium, large) add a real local chain:
# anvil (`coattail dev up` starts it), Uniswap V2 deployed and driven by `coattail simulate-chain`, and
# the Ethereum connector reading it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$ROOT/.tools/bin:$PATH"
export PYSPARK_PYTHON="$ROOT/.venv/bin/python" SPARK_LOCAL_IP=127.0.0.1

# Each demo run gets its own topic and checkpoint: a re-run never fights an old watermark.
RUN="demo-$(date -u +%Y%m%dT%H%M%S)"
DEMO_DIR="$ROOT/.state/demo/$RUN"
mkdir -p "$DEMO_DIR"
export COATTAIL_STREAM__KAFKA__TOPIC="$RUN-trades" COATTAIL_STREAM__KAFKA__DLQ_TOPIC="$RUN-dlq"
export COATTAIL_STREAM__KAFKA__ONCHAIN_TOPIC="$RUN-onchain" COATTAIL_STREAM__KAFKA__ONCHAIN_DLQ_TOPIC="$RUN-onchain-dlq"
export COATTAIL_PIPELINE__CHECKPOINT_LOCATION="$DEMO_DIR/checkpoints"
# ... and its own alerts table: the same seeds give the same alert ids, which an earlier run's table
# (DynamoDB Local keeps its data) would already hold and mark as published.
export COATTAIL_HOT_STORE__TABLE="$RUN-alerts"
# Every new alert is also published once to this run's alerts topic (key = alert id) for subscribers.
export COATTAIL_ALERTS_OUT__ENABLED=true COATTAIL_ALERTS_OUT__TOPIC="$RUN-alerts"
API_PORT="${API_PORT:-8000}"
API="http://127.0.0.1:$API_PORT"

export COATTAIL_TIER="${TIER:-${COATTAIL_TIER:-medium}}"  # the largest tier that runs here
echo "[demo] tier $COATTAIL_TIER"
coattail config check
CHAIN="$(python -c 'from coattail.settings import load_settings; print(int("ethereum" in load_settings().active_connectors))')"
BACKTEST="$(python -c 'from coattail.settings import load_settings; print(int("MOD-011" in load_settings().active_modules))')"
coattail dev up

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo "[demo] stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  coattail dev down >/dev/null
  echo "[demo] stopped; logs in $DEMO_DIR"
}
trap cleanup EXIT INT TERM

if [ "$BACKTEST" = 1 ]; then
  # The feedback loop needs prices hours after its alerts: 7 h of older market with planted price moves
  # (most after an hour of informed whale flow), ending 7 h 15 min ago — before the wallet history, so the
  # chain's events are valued by their own walk's prices. MOD-010 scores it; MOD-011 back-tests it below.
  ANALYTICS_START="$(python -c 'from datetime import UTC,datetime,timedelta; print((datetime.now(UTC)-timedelta(hours=14, minutes=15)).strftime("%Y-%m-%dT%H:%M:00Z"))')"
  ANALYTICS_END="$(python -c 'from datetime import UTC,datetime,timedelta; print((datetime.now(UTC)-timedelta(hours=7, minutes=15)).strftime("%Y-%m-%dT%H:%M:00Z"))')"
  echo "[demo] simulating 7 hours of older market with planted price moves ($ANALYTICS_START .. $ANALYTICS_END)"
  coattail simulate --seed 9 --minutes 420 --rate 2 --moves 3 --start "$ANALYTICS_START" \
    --out "$DEMO_DIR/moves-history.jsonl" --to-kafka
fi
echo "[demo] simulating 30 minutes of market history with planted whales, bursts and dislocations"
coattail simulate --seed 7 --minutes 30 --rate 20 --out "$DEMO_DIR/history.jsonl" --to-kafka

if [ "$CHAIN" = 1 ]; then
  # The chain follows the live feed's ETH walk (same seed and length); the connector reads it 2 blocks
  # deep from the block before the deployment, with the simulator's tokens on top of the shipped registry.
  ANVIL_URL="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["anvil"])' "$ROOT/.state/dev/services.json")"
  FIRST_BLOCK="$(python -c 'import sys,httpx; print(int(httpx.post(sys.argv[1], json={"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}).json()["result"], 16))' "$ANVIL_URL")"
  # First six hours of wallet history in event time (a minute or two of wall time): informed traders
  # ahead of the price, noise traders, labelled whales moving funds to and from exchanges — the scorer
  # (MOD-004) and the whale labels (MOD-005) have something to find. It ends 50 min ago, before the
  # CEX history's prices (30 min, valid 15 min) could value a part of it with another walk's prices.
  echo "[demo] deploying Uniswap V2 on anvil ($ANVIL_URL) and planting 6 h of wallet history (log: $DEMO_DIR/wallets.log)"
  coattail simulate-chain --rpc-url "$ANVIL_URL" --wallets --seed 8 --ends-ago-minutes 50 --truth "$DEMO_DIR/wallets-truth.json" \
    --tokens-out "$DEMO_DIR/tokens.yaml" --labels-out "$DEMO_DIR/whales.csv" \
    --deployment "$DEMO_DIR/chain-world.json" > "$DEMO_DIR/wallets.log" 2>&1 \
    || { echo "[demo] the wallet history failed; see $DEMO_DIR/wallets.log"; exit 1; }
  export COATTAIL_MODULES__MOD_005__PARAMS__LABEL_FILES="[\"$DEMO_DIR/whales.csv\"]"  # the planted whales
  echo "[demo] driving wallets on it live (log: $DEMO_DIR/chain.log)"
  coattail simulate-chain --rpc-url "$ANVIL_URL" --seconds 14400 --interval 3 --seed 8 --cex-minutes 240 \
    --truth "$DEMO_DIR/chain-truth.json" --deployment "$DEMO_DIR/chain-world.json" > "$DEMO_DIR/chain.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 120); do [ -s "$DEMO_DIR/tokens.yaml" ] && break; sleep 1; done
  [ -s "$DEMO_DIR/tokens.yaml" ] || { echo "[demo] the chain simulator did not deploy; see $DEMO_DIR/chain.log"; exit 1; }
  echo "[demo] starting the Ethereum connector (log: $DEMO_DIR/ethereum.log)"
  COATTAIL_CONNECTORS__ETHEREUM__TOKEN_FILES="[\"$DEMO_DIR/tokens.yaml\"]" \
  COATTAIL_CONNECTORS__ETHEREUM__CONFIRMATIONS=2 COATTAIL_CONNECTORS__ETHEREUM__START_BLOCK="$FIRST_BLOCK" \
  COATTAIL_PRODUCER__STATUS_PORT=9104 \
    coattail connectors run --exchange ethereum > "$DEMO_DIR/ethereum.log" 2>&1 &
  pids+=($!)
fi

echo "[demo] starting the alert API on $API"
coattail api --port "$API_PORT" --log-level warning > "$DEMO_DIR/api.log" 2>&1 &
pids+=($!)
echo "[demo] starting the Spark detector pipeline (log: $DEMO_DIR/pipeline.log)"
coattail pipeline run > "$DEMO_DIR/pipeline.log" 2>&1 &
PIPELINE_PID=$!
pids+=($PIPELINE_PID)
echo "[demo] starting the live market feed"
coattail simulate --seed 8 --minutes 240 --rate 20 --realtime --to-kafka --out "$DEMO_DIR/live.jsonl" \
  > "$DEMO_DIR/live.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 120); do curl -fs "$API/readyz" >/dev/null 2>&1 && break; sleep 1; done
curl -fs "$API/readyz" >/dev/null || { echo "[demo] the API did not come up; see $DEMO_DIR/api.log"; exit 1; }
cat <<MSG

  Dashboard : $API/
  Alert API : $API/alerts   (docs: $API/docs, live stream: $API/alerts/stream)
  Metrics   : pipeline quality http://127.0.0.1:9103/metrics, API $API/internal/metrics$([ "$CHAIN" = 1 ] && echo ", Ethereum connector http://127.0.0.1:9104/metrics")
  Alerts out: Kafka topic $RUN-alerts (key = alert id), at $(coattail dev status 2>/dev/null | grep -m1 -o '127.0.0.1:[0-9]*' || echo 'the local broker')

  The pipeline needs ~1 min to start; then alerts print below as they land. Ctrl-C stops the demo.

MSG
KAFKA="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["kafka"])' "$ROOT/.state/dev/services.json")"
python scripts/watch_alerts.py --kafka "$KAFKA" --topic "$RUN-alerts" &
pids+=($!)
if [ "$BACKTEST" = 1 ]; then
  # Once the pipeline has landed the older market in the lake — its prices read past the range's end
  # (the run's "as of") — MOD-011 over its alerts (report + API); until then, try again a minute later.
  AS_OF_WANTED="$(python -c 'import sys; print(sys.argv[1][:16].replace("T", " "))' "$ANALYTICS_END")"
  (
    sleep 180
    for _ in 1 2 3 4 5 6 7 8; do
      if coattail batch backtest --start "$ANALYTICS_START" --end "$ANALYTICS_END" \
          --report "$DEMO_DIR/backtest.html" > "$DEMO_DIR/backtest.log" 2>&1 \
          && [[ "$(grep -o 'as of [0-9-]* [0-9:]*' "$DEMO_DIR/backtest.log" | head -1 | cut -c7-)" > "$AS_OF_WANTED" ]]; then
        echo "[demo] back-test of the older market: $DEMO_DIR/backtest.html (table: $DEMO_DIR/backtest.log, API: $API/backtests/latest)"
        exit 0
      fi
      sleep 60
    done
    echo "[demo] the back-test did not complete; see $DEMO_DIR/backtest.log"
  ) &
  pids+=($!)
  echo "[demo] predictions: $API/predictions/BTC-USDT (MOD-010, every 15 min window)"
fi
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
else
  wait "$PIPELINE_PID"  # until the pipeline ends (Ctrl-C)
fi
