#!/usr/bin/env python3
"""The layering of Firebreak's crates, checked from the sources.

- No module cycle in any crate: module A depends on B when A's code names B
  (`crate::b::…`, `super::b::…`, `use` lists); a module's references to its
  own ancestors (a child using its parent's items) are how Rust nests and do
  not count.
- In crates/aws, dependencies run one way: the use cases (respond/, undo/,
  inventory/) may use bucket/, place, account and actions/; nothing in
  actions/ or bucket/ names a use case, and actions/ never names bucket/
  (the side effects know the gate, never the records).
- The core names nothing of AWS's SDKs, tokio or the Lambda runtime.

Usage: check_layering.py WORKSPACE_ROOT. Prints "ok …" and exits 0, or
names every violation and exits 1.
"""
import os
import re
import sys

CRATES = ["crates/core/src", "crates/aws/src", "crates/lambda/src", "crates/cli/src"]
USE_CASES = ("respond", "undo", "inventory")
AWS_NAMES = re.compile(r"\b(aws_sdk_\w+|aws_config|aws_smithy_\w+|tokio|lambda_runtime|firebreak_aws)\b")


def modules(src):
    """file path -> module path (tuple of names)."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            out[os.path.join(root, f)] = tuple(parts)
    return out


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def expand(path):
    """`a::{b, c::d}` -> [a::b, a::c::d] (one level of braces is enough here)."""
    m = re.match(r"^(.*?)::\{(.*)\}$", path, flags=re.S)
    if not m:
        return [path]
    head, inner = m.group(1), m.group(2)
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    res = []
    for item in out:
        item = re.sub(r"\s+as\s+\w+$", "", item)
        res.extend(expand(f"{head}::{item}"))
    return res


def references(text):
    """Every path that starts with crate::, super:: or self::."""
    text = strip_comments(text)
    paths = []
    for m in re.finditer(r"\buse\s+((?:crate|super|self)::[^;]+);", text):
        paths.extend(expand(re.sub(r"\s+", "", m.group(1))))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        paths.append(m.group(1))
    return paths


def resolve(path, here, is_dir_module, known):
    """The module a path names (the longest known prefix), or None."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        # In a file `x.rs` (or `x/mod.rs`), `self` is x and `super` is x's parent.
        base = here
        rest = parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    best = None
    for n in range(len(rest), -1, -1):
        cand = base + tuple(rest[:n])
        if cand in known:
            best = cand
            break
    return best


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def show(m):
    return "crate" if not m else "::".join(m)


def check_crate(root, src, problems):
    mods = modules(os.path.join(root, src))
    known = set(mods.values())
    edges = {}
    for path, here in mods.items():
        text = open(path).read()
        for ref in references(text):
            target = resolve(ref, here, path.endswith("mod.rs"), known)
            if target is None or target == here or here[: len(target)] == target:
                continue  # itself, or an ancestor: nesting, not a dependency
            if target[: len(here)] == here:
                continue  # a descendant: a module uses what it contains
            edges.setdefault(here, set()).add(target)
            if src == "crates/aws/src":
                top_from, top_to = here[0] if here else "", target[0]
                if top_from in ("actions", "bucket") and top_to in USE_CASES:
                    problems.append(f"{src}: {show(here)} names the use case {show(target)}")
                if top_from == "actions" and top_to == "bucket":
                    problems.append(f"{src}: {show(here)} names {show(target)}: actions know the gate, never the records")
        if src == "crates/core/src":
            for m in AWS_NAMES.finditer(strip_comments(text)):
                problems.append(f"{src}: {show(here)} names {m.group(1)}: the core stays pure")
    for comp in cycles(edges):
        problems.append(f"{src}: module cycle: {' -> '.join(show(m) for m in sorted(comp))}")
    return len(known), sum(len(v) for v in edges.values())


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    problems, counted = [], []
    for src in CRATES:
        counted.append((src, *check_crate(root, src, problems)))
    problems = list(dict.fromkeys(problems))
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("ok " + "; ".join(f"{s}: {n} modules, {e} dependencies" for s, n, e in counted))


if __name__ == "__main__":
    main()
