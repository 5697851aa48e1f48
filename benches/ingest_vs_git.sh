#!/usr/bin/env bash
# The default `lore ingest` against `git log --numstat --branches --tags`, binaries alternated.
#
#   benches/ingest_vs_git.sh full REPO NAME=LORE_BINARY [NAME=LORE_BINARY ...]
#   benches/ingest_vs_git.sh code REPO NAME=LORE_BINARY [...]
#   benches/ingest_vs_git.sh one  REPO PATH_IN_REPO NAME=LORE_BINARY [...]
#
# full: `git log` is run once to warm the cache, then before, between and after the ingests,
#       each binary's default ingest into a fresh file ($OUT/full-NAME.lore) timed with
#       /usr/bin/time; each ingest's ratio is against the mean of the `git log` runs either side.
#       Give a binary twice (a=old b=new a=old b=new) to alternate them.
# code: the code stage alone: one history-only file is made with the first binary
#       (--no-code --no-szz --no-index --no-compact), then each binary runs the code stage on a
#       copy of it (--no-szz --no-index --no-compact).
# one:  one new commit: a mirror copy of REPO gets a commit appending a line to PATH_IN_REPO;
#       each binary ingests it into a copy of its own $OUT/full-NAME.lore (run `full` first).
#       The line is a comment (`#` for Python, shell, TOML and YAML, `//` otherwise).
#
# OUT defaults to /tmp/lore-bench. Parallelism is whatever the machine has (lore uses every
# core; git log uses one). Results are printed, nothing is kept but the files under OUT.
set -euo pipefail

mode=${1:?usage: ingest_vs_git.sh full|code|one REPO ...}
repo=${2:?a git repository}
shift 2
out=${OUT:-/tmp/lore-bench}
mkdir -p "$out"

now() { date +%s.%N; }
git_log() {
  local s e
  s=$(now)
  git -C "$repo" log --numstat --branches --tags >/dev/null
  e=$(now)
  echo "$e - $s" | bc
}
timed() { # NAME, then the command; prints "NAME: WALL s wall, USER user, SYS sys, RSS KB"
  local name=$1
  shift
  /usr/bin/time -f "$name: %e s wall, %U user, %S sys, %M KB" "$@" 2>&1 >/dev/null | tail -1
}

case "$mode" in
full)
  git_log >/dev/null
  before=$(git_log)
  echo "git log: $before s"
  for pair in "$@"; do
    name=${pair%%=*} bin=${pair#*=}
    rm -f "$out/full-$name.lore"
    line=$(timed "$name" "$bin" ingest "$repo" --kb "$out/full-$name.lore" -q)
    after=$(git_log)
    wall=$(echo "$line" | sed -E 's/^[^:]*: ([0-9.]+) s wall.*/\1/')
    ratio=$(echo "scale=2; 2 * $wall / ($before + $after)" | bc)
    echo "$line  (${ratio}x git)"
    echo "git log: $after s"
    before=$after
  done
  ;;
code)
  first=${1#*=}
  hist="$out/history-only.lore"
  rm -f "$hist"
  "$first" ingest "$repo" --kb "$hist" --no-code --no-szz --no-index --no-compact -q
  for pair in "$@"; do
    name=${pair%%=*} bin=${pair#*=}
    cp "$hist" "$out/code-$name.lore"
    timed "$name" "$bin" ingest "$repo" --kb "$out/code-$name.lore" --no-szz --no-index --no-compact -q
  done
  ;;
one)
  path=${1:?a file path inside the repository}
  shift
  copy="$out/one-commit.git"
  tree="$out/one-commit-tree"
  rm -rf "$copy" "$tree"
  git clone -q --mirror "$repo" "$copy"
  git -C "$copy" worktree add -q "$tree" HEAD
  case "$path" in
  *.py | *.sh | *.toml | *.yml | *.yaml) echo "# one more line" >>"$tree/$path" ;;
  *) echo "// one more line" >>"$tree/$path" ;;
  esac
  git -C "$tree" -c user.name=bench -c user.email=bench@example.com commit -qam "one new commit"
  git -C "$copy" update-ref "$(git -C "$copy" symbolic-ref HEAD)" "$(git -C "$tree" rev-parse HEAD)"
  for pair in "$@"; do
    name=${pair%%=*} bin=${pair#*=}
    [ -f "$out/full-$name.lore" ] || { echo "no $out/full-$name.lore: run \`full\` first" >&2; exit 1; }
    cp "$out/full-$name.lore" "$out/one-$name.lore"
    timed "$name" "$bin" ingest "$copy" --kb "$out/one-$name.lore" -q
  done
  ;;
*)
  echo "unknown mode $mode: full, code or one" >&2
  exit 2
  ;;
esac
