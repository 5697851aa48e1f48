#!/usr/bin/env python3
"""Build an issue dump (lore's JSONL format) from a repository's commit history, for
`lore eval locate` on repositories whose issue tracker cannot be downloaded.

Every issue number a commit message closes (`Fixes #N`, `Closes: #N`, `resolved #N`, ...)
becomes an issue whose title is the title of the change that fixed it: the subject line without
its `(#PR)` suffix, or for merge commits (`Merge pull request #P`, `Auto merge of #P`) the
first line of the body. The body is left empty, so nothing but a one-line summary of the
fix is known. The issue is dated one day before the fixing commit was authored.

Usage: benches/issues-from-history.py REPO OUT.jsonl
"""
import json
import re
import subprocess
import sys
from datetime import datetime, timezone

CLOSES = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+#(\d+)", re.I)
MERGE = re.compile(r"^(?:Merge pull request #\d+|Auto merge of #\d+|Merge #\d+)")
PR_SUFFIX = re.compile(r"\s*\(#\d+\)\s*$")


def iso(t):
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    repo, out = sys.argv[1], sys.argv[2]
    log = subprocess.run(
        ["git", "-C", repo, "log", "--all", "--reverse", "--format=%H%x00%at%x00%ct%x00%B%x1e"],
        check=True, capture_output=True, text=True, errors="replace",
    ).stdout
    issues = {}
    for record in log.split("\x1e"):
        record = record.strip("\n")
        if not record:
            continue
        sha, authored, committed, message = record.split("\x00", 3)
        lines = [l.strip() for l in message.splitlines()]
        subject = lines[0] if lines else ""
        if MERGE.match(subject):
            rest = [l for l in lines[1:] if l]
            title = rest[0] if rest else subject
        else:
            title = PR_SUFFIX.sub("", subject)
        for n in CLOSES.findall(message):
            n = int(n)
            if n in issues:
                continue
            issues[n] = {
                "number": n,
                "kind": "issue",
                "title": title,
                "body": "",
                "state": "closed",
                "created_at": iso(int(authored) - 86400),
                "updated_at": iso(int(committed)),
                "closed_at": iso(int(committed)),
                "comments": [],
            }
    with open(out, "w") as f:
        for n in sorted(issues):
            f.write(json.dumps(issues[n]) + "\n")
    print(f"{len(issues)} issues written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
