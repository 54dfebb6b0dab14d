#!/usr/bin/env python3
"""Rewrites the README's flags table from `traceport --help` (run: go run ./cmd/traceport --help 2>&1 | scripts/readme-flags.py)."""
import re, sys
lines = sys.stdin.read().split("\n")
rows = []
i = 0
while i < len(lines):
    m = re.match(r"  -(\S+)(?: (\S+))?$", lines[i])
    if m:
        desc = lines[i + 1].strip()
        d = re.search(r" \(default (.*)\)$", desc)
        default = ""
        if d:
            default = d.group(1).strip('"')
            desc = desc[:d.start()]
        desc = desc.replace("|", "\\|")
        rows.append("| `--%s` | %s | %s |" % (m.group(1), ("`" + default + "`") if default else "", desc))
        i += 2
    else:
        i += 1
s = open("README.md").read()
head = "| flag | default | meaning |\n|---|---|---|\n"
start = s.index(head) + len(head)
end = s.index("\n\n", start)
s = s[:start] + "\n".join(rows) + s[end:]
open("README.md", "w").write(s)
