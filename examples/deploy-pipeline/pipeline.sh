#!/usr/bin/env bash
# pipeline.sh: a deploy step gated on the operational state of the fleet.
#
#   pipeline.sh VERSION [DEPLOY_COMMAND [ARG...]]
#
# 1. Gate: wait (up to GATE_WAIT seconds) until every minion of the tier reports a fresh
#    load under MAX_LOAD1 and a healthy app. Stop if the fleet does not calm down in time.
# 2. Deploy the canary: DEPLOY_COMMAND if one is given, else
#    `reactord run CANARY cmd.run cmd=[DEPLOY_PROGRAM, VERSION]`.
# 3. Verify: wait (up to VERIFY_WAIT seconds) until the canary reports VERSION, healthy.
# 4. Fire `ci/rollout`: the master's rule (rules.yaml) rolls the release out to the rest
#    of the tier, each wave behind its own gate.
# A gate that stays closed or a failed deploy fires `ci/deploy/held` or `ci/deploy/failed`
# instead, so the event log keeps the whole story.
#
# Where it runs: on a host whose user can open the master's control socket (the master's
# host, as the master's user: the socket is 0600). The reactord CLI finds the socket
# through master.yaml: set REACTORD_CONFIG, or the CLI looks in ./ and /etc/reactord/.
#
# Exit codes: 0 rolled out to the canary and handed over to the master; 1 the gate stayed
# closed, the deploy failed or the canary did not become healthy; 2 bad input or config;
# 3 the master is not reachable (at step 1, nothing was deployed).
#
# What the minions must report (see README.md):
#   minion/<id>/beacon/load     the load beacon: data.load1
#   minion/<id>/app/<SERVICE>   the app's health check: data.version, data.healthy
set -euo pipefail

REACTORD=${REACTORD:-reactord}                       # the reactord CLI
SERVICE=${SERVICE:-shop}                             # the app being deployed
TIER=${TIER:-roles:web}                              # grain target: the minions the gate checks
CANARY=${CANARY:-web01}                              # minion id of the canary
MAX_LOAD1=${MAX_LOAD1:-2}                            # the gate: data.load1 below this
GATE_WAIT=${GATE_WAIT:-600}                          # seconds to wait for a calm fleet
VERIFY_WAIT=${VERIFY_WAIT:-300}                      # seconds to wait for a healthy canary
DEPLOY_PROGRAM=${DEPLOY_PROGRAM:-/opt/shop/bin/deploy}   # run on the canary by cmd.run
DEPLOY_TIMEOUT=${DEPLOY_TIMEOUT:-300}                # seconds for the canary's deploy job
COMMIT=${COMMIT:-${GITHUB_SHA:-unknown}}             # recorded in the events

usage() {
    echo "usage: $0 VERSION [DEPLOY_COMMAND [ARG...]]" >&2
    exit 2
}

[[ $# -ge 1 ]] || usage
VERSION=$1
shift

# The values below end up in tags, conditions and JSON: accept only plain words, so no
# quoting can break. The version format is the one the rollout rule accepts.
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "error: bad VERSION '$VERSION' (want N.N.N)" >&2; exit 2; }
[[ $SERVICE =~ ^[a-z0-9][a-z0-9_-]*$ ]] || { echo "error: bad SERVICE '$SERVICE'" >&2; exit 2; }
[[ $CANARY =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || { echo "error: bad CANARY '$CANARY'" >&2; exit 2; }
[[ $COMMIT =~ ^[A-Za-z0-9._-]+$ ]] || { echo "error: bad COMMIT '$COMMIT'" >&2; exit 2; }
[[ $MAX_LOAD1 =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "error: bad MAX_LOAD1 '$MAX_LOAD1'" >&2; exit 2; }
[[ $# -gt 0 || $DEPLOY_PROGRAM =~ ^/[A-Za-z0-9._/-]+$ ]] || { echo "error: bad DEPLOY_PROGRAM '$DEPLOY_PROGRAM'" >&2; exit 2; }

# fire TAG [STEP]: record a pipeline event on the master (source: cli). Text values are passed
# as JSON strings ("1.4.2", not a number). Best effort: a failure here is reported, and
# does not change the pipeline's exit code.
fire() {
    local tag=$1 step=${2:-}
    local args=(-d "service=\"$SERVICE\"" -d "version=\"$VERSION\"" -d "commit=\"$COMMIT\"" -d "canary=\"$CANARY\"")
    [[ -n $step ]] && args+=(-d "step=\"$step\"")
    local id
    if id=$("$REACTORD" event fire "$tag" "${args[@]}"); then
        echo "fired $tag: $id"
    else
        echo "warning: could not fire $tag" >&2
    fi
}

echo "== 1. gate: $TIER, load1 < $MAX_LOAD1 and $SERVICE healthy (waiting up to ${GATE_WAIT}s)"
# Two groups: a tag glob, then its conditions. Each targeted minion must have a fresh row
# (younger than the master's state.ttl, minion not down) for each glob, and every row must
# pass. A minion of the tier that never reported a tag fails the gate ("no state reported").
rc=0                                                 # `|| rc=$?` keeps set -e from exiting
"$REACTORD" gate \
    'minion/*/beacon/load' "data.load1 < $MAX_LOAD1" \
    "minion/*/app/$SERVICE" 'data.healthy == true' \
    -G "$TIER" --wait "$GATE_WAIT" || rc=$?
case $rc in
    0) ;;
    1) echo "the gate did not open: not deploying $SERVICE $VERSION" >&2
       fire ci/deploy/held gate
       exit 1 ;;
    3) echo "the master is not reachable: not deploying" >&2
       exit 3 ;;
    *) exit "$rc" ;;                                 # 2: a usage or config error
esac

echo "== 2. deploy $SERVICE $VERSION to the canary $CANARY"
rc=0
if [[ $# -gt 0 ]]; then
    "$@" || rc=$?                                    # the CI's own deploy command
else
    # A YAML list for the keyword `cmd`: argv, no shell. cmd.run must be in the canary's
    # functions.allow (minion.yaml). `reactord run` exits 1 when the job failed there.
    "$REACTORD" run "$CANARY" cmd.run "cmd=[$DEPLOY_PROGRAM, '$VERSION']" --timeout "$DEPLOY_TIMEOUT" || rc=$?
fi
if [[ $rc -ne 0 ]]; then
    echo "deploy to $CANARY failed (exit $rc)" >&2
    fire ci/deploy/failed deploy
    exit 1
fi

echo "== 3. verify: $CANARY reports $SERVICE $VERSION, healthy (waiting up to ${VERIFY_WAIT}s)"
# The version is quoted for YAML so that 1.10.0 stays text. The gate reads the canary's
# latest report: until its health check reports again after the deploy, that report
# carries the old version and the gate stays closed. It must also be fresh (state.ttl).
# (Each path once per group: a second condition on the same path would replace the first.)
rc=0
"$REACTORD" gate \
    "minion/*/app/$SERVICE" "data.version == '$VERSION'" 'data.healthy == true' \
    --target "$CANARY" --wait "$VERIFY_WAIT" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "$CANARY did not report $SERVICE $VERSION healthy (exit $rc): roll it back" >&2
    [[ $rc -eq 3 ]] || fire ci/deploy/failed verify
    exit "$(( rc == 3 ? 3 : 1 ))"
fi

echo "== 4. hand the rollout over to the master"
# The rule `rollout-shop` (rules.yaml) deploys wave 1 and wave 2, each only while its gate
# is open. Follow it with: reactord event show EVENT_ID
event_id=$("$REACTORD" event fire ci/rollout \
    -d "service=\"$SERVICE\"" -d "version=\"$VERSION\"" -d "commit=\"$COMMIT\"" -d "canary=\"$CANARY\"")
echo "ci/rollout fired: $event_id (reactord event show $event_id)"
