#!/usr/bin/env bash
# Runs every test of the workspace (unit, machine and engine tests) and reports, at the end,
# how many tests did not run here and why (for example: no /dev/kvm).
set -uo pipefail
cd "$(dirname "$0")"
mkdir -p target
export TANDEM_SKIP_LOG="$PWD/target/skipped-tests.log"
: > "$TANDEM_SKIP_LOG"
log="$PWD/target/test-output.log"

# iasl checks the ACPI tables the board builds; tests/acpi_tables.rs reports itself skipped
# where it cannot be installed (no root, no package registry).
if ! command -v iasl >/dev/null && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && apt-get install -y -qq acpica-tools >/dev/null; } 2>/dev/null || true
fi

# tests/linux_boot.rs boots Debian's kernel to the end of its /init under this debug build's JIT
# (3-5 minutes on 2 cores, its two boots in parallel); its guards kill a boot at 10 minutes, or
# after 5 minutes of console silence, so it cannot hold CI longer than that.
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '; [0-9]+ failed' "$log" | awk '{s += $2} END {print s + 0}')
skipped=$(sort -u "$TANDEM_SKIP_LOG" | grep -c . || true)
echo
if [ "$skipped" -gt 0 ]; then
    echo "tests that did not run here ($skipped):"
    sort -u "$TANDEM_SKIP_LOG" | sed 's/^SKIPPED /  /'
fi
echo "tandem tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
