#!/usr/bin/env bash
# Build the compiled core with ASan+UBSan (SPARSEMEM_SANITIZE=1) in a temporary copy of the
# source tree -- the normal in-place build is left alone -- and run the core tests (and the
# fleet fast paths, which reuse freed core blocks) under it.
# Usage: .ci/sanitize.sh [PYTHON]   (default: python3).  Exits non-zero on any sanitizer report.
set -euo pipefail

PY="${1:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sparsemem-sanitize.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# tracked + untracked-but-not-ignored files; no build products (*.so, *.c, build/)
( cd "$REPO" && git ls-files -z --cached --others --exclude-standard ) \
    | ( cd "$REPO" && xargs -0 -I{} cp --parents -- {} "$WORK"/ 2>/dev/null || true )
find "$WORK/src" \( -name '*.so' -o -name '_sparsecore.c' \) -delete
test -f "$WORK/src/_sparsecore.pyx" || { echo "sanitize.sh: source copy failed" >&2; exit 2; }

cd "$WORK"
echo "== building with SPARSEMEM_SANITIZE=1 in $WORK"
SPARSEMEM_SANITIZE=1 "$PY" setup.py build_ext --inplace >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; exit 2; }
grep -q -- "-fsanitize=address,undefined" "$WORK/build.log" \
    || { echo "sanitize.sh: the build did not use the sanitizer flags" >&2; exit 2; }

ASAN_LIB="$(gcc -print-file-name=libasan.so)"
UBSAN_LIB="$(gcc -print-file-name=libubsan.so)"
[ -f "$ASAN_LIB" ] && [ -f "$UBSAN_LIB" ] || { echo "sanitize.sh: libasan/libubsan not found" >&2; exit 2; }

LOG="$WORK/sanitizer"
export LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$LOG.asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$LOG.ubsan"
export PYTHONPATH="$WORK/src"
export PYTHONMALLOC=malloc          # let ASan see Python's allocations too
echo "== running the core tests under ASan+UBSan"
set +e
# -p no:cacheprovider: nothing written back into the copy's .pytest_cache matters
"$PY" -m pytest -q -p no:cacheprovider "$WORK"/tests/test_core_*.py "$WORK"/tests/test_concurrency.py \
    "$WORK"/tests/test_fleet_fast_paths.py
rc=$?
set -e
unset LD_PRELOAD
reports=$(ls "$LOG".* 2>/dev/null || true)
if [ -n "$reports" ]; then
    echo "== sanitizer reports:" >&2
    cat $reports >&2
    exit 1
fi
# confirm that the module under test really is the instrumented one
if ! nm -D "$WORK"/src/sparsemem/_sparsecore*.so | grep __asan_ >/dev/null; then  # no -q: SIGPIPE + pipefail
    echo "sanitize.sh: the extension is not instrumented" >&2
    exit 2
fi
[ $rc -eq 0 ] && echo "== sanitizer run clean" || echo "== tests failed (rc=$rc)" >&2
exit $rc
