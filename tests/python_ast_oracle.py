#!/usr/bin/env python3
"""Python's own `ast` module as an oracle for lore's Python symbols: for every .py file at the
code head of a repository, compare the classes, functions and methods lore stored (name, kind,
first line) with what `ast` finds. Not run in CI; run it by hand on a real repository:

    lore ingest REPO --kb X.lore --no-szz --no-index
    python3 tests/python_ast_oracle.py REPO X.lore [LORE_BINARY]

Compared: classes, functions and methods (functions directly in a class body), wherever they
are defined (under `if`, `try`, `with`, in other functions), qualified as lore writes them
(`Outer.Inner.method`, `outer.inner`). A symbol's line is the line of its `def`/`class`, or of
its first decorator (both are accepted: tree-sitter's definition may start at either).
Prints the agreement and every difference; exits 1 when they differ.
"""
import ast
import json
import subprocess
import sys


def ast_symbols(source):
    """(qualified name, kind) -> accepted first lines. Definitions under `if`, `try`, `with`
    and loops keep their enclosing name; a definition inside a function is qualified by it."""
    out = {}

    def visit(body, prefix, in_class):
        for node in body:
            if isinstance(node, ast.ClassDef):
                kind = "class"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "method" if in_class else "function"
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    inner = getattr(node, field, None)
                    if isinstance(inner, list):
                        visit(inner, prefix, in_class)
                for case in getattr(node, "cases", []) or []:
                    visit(case.body, prefix, in_class)
                if isinstance(node, ast.ExceptHandler):
                    visit(node.body, prefix, in_class)
                continue
            qname = f"{prefix}{node.name}"
            lines = {node.lineno}
            if node.decorator_list:
                lines.add(min(d.lineno for d in node.decorator_list))
            out[(qname, kind)] = lines
            visit(node.body, f"{qname}.", kind == "class")

    visit(ast.parse(source).body, "", False)
    return out


def main():
    repo, kb = sys.argv[1], sys.argv[2]
    lore = sys.argv[3] if len(sys.argv) > 3 else "lore"
    files = subprocess.run(
        ["git", "-C", repo, "ls-tree", "-r", "--name-only", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    agree = missing = extra = wrong_line = skipped = 0
    differences = []
    for path in (f for f in files if f.endswith(".py")):
        source = subprocess.run(["git", "-C", repo, "show", f"HEAD:{path}"], capture_output=True).stdout
        try:
            want = ast_symbols(source)
        except (SyntaxError, ValueError):
            skipped += 1
            continue
        shown = subprocess.run([lore, "--kb", kb, "show", "file", path, "--json"], capture_output=True, text=True)
        if shown.returncode != 0:
            skipped += 1
            continue
        got = {}
        for s in json.loads(shown.stdout).get("symbols", []):
            if s["kind"] in ("class", "function", "method"):
                got[(s["qualified_name"], s["kind"])] = s["start_line"]
        for key, line in got.items():
            if key not in want:
                extra += 1
                differences.append(f"lore only: {path} {key[0]} ({key[1]}) line {line}")
            elif line not in want[key]:
                wrong_line += 1
                differences.append(f"line: {path} {key[0]} lore {line}, ast {sorted(want[key])}")
            else:
                agree += 1
        for key in want:
            if key not in got:
                missing += 1
                differences.append(f"ast only: {path} {key[0]} ({key[1]})")
    total = agree + missing + extra + wrong_line
    print(f"{agree} of {total} symbols agree ({100.0 * agree / max(total, 1):.2f}%): "
          f"{missing} only in ast, {extra} only in lore, {wrong_line} on another line; "
          f"{skipped} files skipped (not Python 3, or not in the lore file)")
    for d in differences[:50]:
        print("  " + d)
    sys.exit(0 if total == agree else 1)


if __name__ == "__main__":
    main()
