#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for $FUZZ_SECONDS seconds each (default 60) and exits
# non-zero if any of them crashed. Installs cargo-fuzz if it is missing. Runs on the stable
# toolchain: cargo-fuzz passes -Z flags (sanitizer, coverage), which RUSTC_BOOTSTRAP=1 allows.
#
#   FUZZ_SECONDS=300 fuzz/run.sh             # both targets, 5 minutes each
#   FUZZ_TARGETS=config fuzz/run.sh          # one target
#   FUZZ_SANITIZER=none fuzz/run.sh          # no AddressSanitizer: about twice the executions
#
# Each target starts from fuzz/corpus/<target> (kept between runs, not committed) and the
# committed crash inputs of fuzz/regressions/<target>, which libFuzzer replays first. A crash
# leaves its input under fuzz/artifacts/<target>/ and cargo fuzz prints it as an op list (see it
# again with `RUSTC_BOOTSTRAP=1 cargo fuzz fmt -a <target> <file>`). Minimize one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -a <target> fuzz/artifacts/<target>/crash-...
# then keep it under fuzz/regressions/<target>/ (tests/fuzz_model.rs replays those on stable).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-differential config}
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 1
fi

# -a: debug assertions and overflow checks on, as in the ordinary tests.
flags=(-a --sanitizer "$sanitizer")

echo "== building the fuzz targets"
cargo fuzz build "${flags[@]}" || exit 1

failed=()
for target in $targets; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -d "fuzz/regressions/$target" ] && dirs+=("fuzz/regressions/$target")
  echo "== fuzzing $target for ${seconds}s"
  # -max_len/-len_control=0: operation sequences of up to ~200 ops from the start, not only
  # after libFuzzer slowly raises its length limit. -timeout: an input running 30 s is a hang.
  if cargo fuzz run "${flags[@]}" "$target" "${dirs[@]}" -- \
      -max_total_time="$seconds" -max_len=1024 -len_control=0 -timeout=30 \
      -print_final_stats=1; then
    echo "== $target: no crash"
  else
    # cargo fuzz has printed the input as an op list (its Debug form) and how to reproduce it.
    echo "== $target: CRASHED (inputs under fuzz/artifacts/$target/)"
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: no crash in ${targets} (${seconds}s each)"
