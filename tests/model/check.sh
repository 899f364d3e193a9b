#!/usr/bin/env bash
# Model-checks tests/model/queue_handshake.pml with spin: every configuration
# must verify with no error, and every mutant (a bug put back on purpose) must
# be caught, which shows the checks can fail.
#   tests/model/check.sh          the configurations CI runs (about 20 s)
#   tests/model/check.sh --long   also larger ones (minutes, 4+ GiB)
set -euo pipefail
model="$(cd "$(dirname "$0")" && pwd)/queue_handshake.pml"
command -v spin >/dev/null || { echo "check.sh: spin not found (apt-get install spin)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# verify EXPECT DEFINES...: EXPECT is "ok" or the assertion spin must report.
verify() {
  local expect="$1"; shift
  local dir="$work/run$((++runs))"
  mkdir "$dir"
  (cd "$dir" && spin "$@" -a "$model" >spin.log 2>&1 && gcc -O2 -DSAFETY -DCOLLAPSE -o pan pan.c) ||
    { cat "$dir/spin.log"; echo "FAIL: spin $* did not build"; exit 1; }
  (cd "$dir" && ./pan -m100000 >pan.log 2>&1) || true
  local errors states
  errors="$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log")"
  states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log")"
  if grep -q "max search depth too small" "$dir/pan.log"; then
    echo "FAIL: spin $*: search depth too small"; exit 1
  fi
  if [ "$expect" = ok ]; then
    if [ "$errors" != 0 ]; then
      cat "$dir/pan.log"
      (cd "$dir" && spin -t -p "$model" | tail -40) || true
      echo "FAIL: spin $*: $errors errors"; exit 1
    fi
    echo "ok: spin ${*:-(default)}: $states states, no error"
  else
    if [ "${errors:-0}" = 0 ] || ! grep -qF "$expect" "$dir/pan.log"; then
      cat "$dir/pan.log"
      echo "FAIL: mutant spin $*: not caught (wanted: $expect)"; exit 1
    fi
    echo "ok: mutant spin $*: caught ($(grep -m1 -o 'assertion violated.*(at' "$dir/pan.log" | sed 's/ (at$//'))"
  fi
}

runs=0
verify ok
verify ok -DNO_INLINE
verify ok -DNO_DESTROY
verify ok -DNPROD=3 -DPER_PROD=1
verify "q_len(ring)==0" -DNO_DESTROY -DMUTANT_NO_RECHECK
verify "!(close_returned)" -DMUTANT_CLOSE_NO_WAIT
verify "consumers==1" -DMUTANT_DEAD_WITHOUT_REAPING
verify "listed==0" -DNO_DESTROY -DMUTANT_LATE_SEQ
if [ "${1:-}" = --long ]; then
  verify ok -DPER_PROD=3
  verify ok -DNPROD=3 -DPER_PROD=2
fi
