#!/usr/bin/env python3
"""`lore blame` against `git blame --porcelain` on sampled (file, commit) pairs.

For each pair both run in the same process loop (same cache state: each pair is run once by
each, git first, then lore). Per line, the blamed commit, the line number in that commit and
the path there must agree. Prints the agreement, the disagreeing pairs, and the time each tool
took in total (lore answers from the file, git walks the history).

    python3 benches/blame_vs_git.py --repo REPO --kb FILE.lore [--pairs 150] [--seed 7]
        [--lore target/release/lore] [--show 5]
    python3 benches/blame_vs_git.py --repo REPO --kb FILE.lore --time PATH@COMMIT [--runs 7]

With --time, one file at one commit is blamed --runs times by each tool, alternating, after
one untimed warm-up run of each (both warm), and the best and median wall times are printed
with their ratio; the two outputs must agree line for line.

The file must hold REPO's history with provenance (`lore ingest REPO --kb FILE.lore`).
Pairs whose lines all agree are also compared byte for byte (author, committer, summary,
filename lines), git's `previous` lines aside. Pairs are sampled from the commits `lore
ingest` reads (all branches and tags), merges included, each with a random text file of that
commit's tree, preferring files that changed more than once (where blame has work to do).
"""

import argparse
import random
import subprocess
import sys
import time
from collections import Counter


def run(cmd):
    return subprocess.run(cmd, capture_output=True)


def parse(porcelain):
    """Per final line: (commit, orig line, path)."""
    out = {}
    path_of = {}
    pending = None
    for raw in porcelain.split(b"\n"):
        if raw.startswith(b"\t"):
            continue
        words = raw.split(b" ")
        if len(words) >= 3 and len(words[0]) == 40 and words[1].isdigit() and words[2].isdigit():
            sha, orig, final = words[0].decode(), int(words[1]), int(words[2])
            pending = (sha, orig, final)
            out[final] = [sha, orig, path_of.get(sha)]
        elif raw.startswith(b"filename ") and pending:
            path = raw[len(b"filename "):].decode("utf-8", "replace")
            path_of[pending[0]] = path
            out[pending[2]][2] = path
    return {k: tuple(v) for k, v in out.items()}


def without_previous(porcelain):
    """git's porcelain without its `previous` lines, which lore does not print."""
    return b"".join(l for l in porcelain.splitlines(keepends=True) if not l.startswith(b"previous "))


def first_difference(theirs, ours):
    """The first line where lore's porcelain differs from git's: (lore's, git's)."""
    a = without_previous(theirs).split(b"\n")
    b = ours.split(b"\n")
    for x, y in zip(b, a):
        if x != y:
            return x.decode("utf-8", "replace"), y.decode("utf-8", "replace")
    return "(length)", "(length)"


def time_one(args):
    path, commit = args.time.rsplit("@", 1)
    git = ["git", "-C", args.repo, "blame", "--porcelain", commit, "--", path]
    lore = [args.lore, "blame", path, "--at", commit, "--porcelain", "--kb", args.kb]
    outs = {}
    for name, cmd in (("git", git), ("lore", lore)):
        out = run(cmd)
        if out.returncode != 0:
            print(f"{name} failed: {out.stderr.decode()}")
            return 1
        outs[name] = parse(out.stdout)
    agree = sum(1 for k, v in outs["git"].items() if outs["lore"].get(k) == v)
    times = {"git": [], "lore": []}
    for _ in range(args.runs):
        for name, cmd in (("git", git), ("lore", lore)):
            t = time.perf_counter()
            run(cmd)
            times[name].append(time.perf_counter() - t)
    for name in times:
        times[name].sort()
    best = {k: v[0] for k, v in times.items()}
    median = {k: v[len(v) // 2] for k, v in times.items()}
    print(f"{path} at {commit[:10]}: {len(outs['git'])} lines, {agree} agree")
    for name in ("git", "lore"):
        print(f"  {name} blame --porcelain: best {best[name] * 1000:.1f} ms, median {median[name] * 1000:.1f} ms ({args.runs} runs)")
    print(f"  ratio git/lore: best {best['git'] / best['lore']:.1f}x, median {median['git'] / median['lore']:.1f}x")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--kb", required=True)
    ap.add_argument("--lore", default="target/release/lore")
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--show", type=int, default=5, help="print this many disagreeing pairs")
    ap.add_argument("--time", help="PATH@COMMIT: time one blame instead of sampling")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if args.time:
        return time_one(args)
    rng = random.Random(args.seed)
    git = ["git", "-C", args.repo]

    commits = run(git + ["rev-list", "--branches", "--tags"]).stdout.decode().split()
    merges = set(run(git + ["rev-list", "--merges", "--branches", "--tags"]).stdout.decode().split())
    changes = Counter()
    log = run(git + ["log", "--branches", "--tags", "--format=", "--name-only"]).stdout.decode()
    for line in log.splitlines():
        if line:
            changes[line] += 1

    pairs = []
    tries = 0
    while len(pairs) < args.pairs and tries < args.pairs * 20:
        tries += 1
        commit = rng.choice(commits)
        files = run(git + ["ls-tree", "-r", "--name-only", commit]).stdout.decode().splitlines()
        hot = [f for f in files if changes[f] > 1]
        if not (hot or files):
            continue
        path = rng.choice(hot or files)
        blob = run(git + ["cat-file", "-p", f"{commit}:{path}"]).stdout
        if b"\0" in blob[:8000] or not blob:
            continue
        pairs.append((commit, path))

    total_lines = agree = same_pairs = same_bytes = 0
    git_time = lore_time = 0.0
    disagreements = []
    detail_differences = []
    failures = []
    for commit, path in pairs:
        t = time.perf_counter()
        theirs = run(git + ["blame", "--porcelain", commit, "--", path])
        git_time += time.perf_counter() - t
        t = time.perf_counter()
        ours = run([args.lore, "blame", path, "--at", commit, "--porcelain", "--kb", args.kb])
        lore_time += time.perf_counter() - t
        if theirs.returncode != 0:
            continue
        if ours.returncode != 0:
            failures.append((commit, path, ours.stderr.decode().strip()))
            total_lines += len(parse(theirs.stdout))
            continue
        a, b = parse(theirs.stdout), parse(ours.stdout)
        n = sum(1 for k, v in a.items() if b.get(k) == v)
        total_lines += len(a)
        agree += n
        if n == len(a) and len(a) == len(b):
            same_pairs += 1
            if without_previous(theirs.stdout) == ours.stdout:
                same_bytes += 1
            elif len(detail_differences) < args.show:
                detail_differences.append((commit, path, first_difference(theirs.stdout, ours.stdout)))
        else:
            disagreements.append((commit, path, len(a) - n, len(a)))

    n_merges = sum(1 for c, _ in pairs if c in merges)
    print(f"repository: {args.repo}")
    print(f"pairs: {len(pairs)} ({n_merges} at merge commits), lines: {total_lines}")
    print(f"identical pairs: {same_pairs} of {len(pairs)}")
    print(f"  of which byte-identical porcelain (without git's `previous` lines): {same_bytes}")
    for commit, path, (mine, theirs) in detail_differences:
        print(f"  details differ: {commit[:10]} {path}: git {theirs!r}, lore {mine!r}")
    print(f"agreeing lines: {agree} of {total_lines} ({100.0 * agree / max(total_lines, 1):.2f}%)")
    print(f"lore failures: {len(failures)}")
    for f in failures[: args.show]:
        print("  failed:", *f)
    disagreements.sort(key=lambda d: -d[2])
    for commit, path, bad, n in disagreements[: args.show]:
        print(f"  differs: {commit[:10]} {path}: {bad} of {n} lines")
    print(f"time: git blame {git_time:.2f} s, lore blame {lore_time:.2f} s "
          f"(ratio git/lore {git_time / max(lore_time, 1e-9):.1f}x, one process per pair each, sequential)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
