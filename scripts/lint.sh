#!/usr/bin/env bash
# Lints the C sources: clang-format (.clang-format) must leave every file unchanged, and
# clang-tidy (.clang-tidy: function size) must find nothing.
#
# Usage: scripts/lint.sh BUILD_DIR        (BUILD_DIR configured with CMAKE_EXPORT_COMPILE_COMMANDS=ON)
#        scripts/lint.sh --fix            (rewrites the files with clang-format; no clang-tidy)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
mapfile -t FILES < <(git ls-files 'src/*.c' 'src/*.h' 'tests/unit/*.c' 'tests/fuzz/*.c' 'bench/*.c')
mapfile -t SOURCES < <(git ls-files 'src/*.c')

die() { printf 'lint: ERROR: %s\n' "$*" >&2; exit 1; }
command -v clang-format >/dev/null || die "clang-format is not installed (scripts/install-deps.sh installs it)"

if [[ ${1:-} == --fix ]]; then
  clang-format -i "${FILES[@]}"
  exit 0
fi
BUILD=${1:?usage: scripts/lint.sh BUILD_DIR | --fix}
[[ -f $BUILD/compile_commands.json ]] || die "$BUILD/compile_commands.json missing: configure with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON"
command -v clang-tidy >/dev/null || die "clang-tidy is not installed (scripts/install-deps.sh installs it)"

rc=0
if ! clang-format --dry-run --Werror "${FILES[@]}"; then
  echo "lint: clang-format would change the files above: run scripts/lint.sh --fix"
  rc=1
fi
if ! clang-tidy --quiet -p "$BUILD" "${SOURCES[@]}" 2>/dev/null; then
  echo "lint: clang-tidy found the problems above (.clang-tidy)"
  rc=1
fi
((rc == 0)) && echo "lint: ${#FILES[@]} files formatted, ${#SOURCES[@]} sources pass clang-tidy"
exit "$rc"
