#!/usr/bin/env bash
# The shape of the code (docs/architecture.md), checked by grep so that it stays:
# - sandbox/ imports only sys, util and itself (it never sees flags, presets, npm or reports);
# - observe/ does not import report, commands, pipeline, output, npm or policy;
# - pipeline/ does not import commands or output (it reports through the Events seam);
# - npm/ does not import pipeline, commands or output;
# - findings/ imports nothing above it;
# - only commands/, output/ and main.rs print, besides two documented exceptions: the sandbox
#   init's opt-in step timing (-vv, on the child's stderr) and the interruption handler's one line;
# - `unsafe` appears only in sys.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() { # description, grep output
    if [ -n "$2" ]; then
        echo "layer check failed: $1" >&2
        echo "$2" >&2
        fail=1
    fi
}
check "sandbox/ imports only sys, util and itself" \
    "$(grep -rn 'crate::' src/sandbox | grep -v 'crate::sandbox\|crate::sys\b\|crate::util' || true)"
check "observe/ imports no upper layer" \
    "$(grep -rn 'crate::\(report\|commands\|pipeline\|output\|npm\|policy\|settings\)\b' src/observe || true)"
check "pipeline/ does not import commands or output" \
    "$(grep -rn 'crate::\(commands\|output\)\b' src/pipeline || true)"
check "npm/ does not import pipeline, commands or output" \
    "$(grep -rn 'crate::\(pipeline\|commands\|output\|settings\)\b' src/npm || true)"
check "findings/ imports nothing above it" \
    "$(grep -rn 'crate::' src/findings | grep -v 'crate::findings' || true)"
# A print elsewhere must be marked on the line before it with `// layer-check: may print (why)`.
prints=$(grep -rn -B1 'println!\|eprintln!\|print!(\|eprint!(' src --include=*.rs \
    | grep -v '^src/commands/\|^src/output/\|^src/main.rs' \
    | awk '/layer-check: may print/ { skip = 1; next } /^--$/ { next } /[-:][0-9]+:.*(println!|eprintln!|print!\(|eprint!\()/ { if (!skip) print; skip = 0; next } { skip = 0 }')
check "only commands/, output/ and main.rs print" "$prints"
check "unsafe only in sys.rs" \
    "$(grep -rn 'unsafe \?{\|unsafe fn\|unsafe impl' src --include=*.rs | grep -v '^src/sys.rs:' || true)"
# No import cycle between the top-level modules (`crate::x` references, tests included).
cycles=$(python3 - <<'PY'
import os, re, sys
src = "src"
mods = {}
for entry in os.listdir(src):
    name = entry[:-3] if entry.endswith(".rs") else entry
    if name in ("main", "lib"):
        continue
    paths = []
    full = os.path.join(src, entry)
    if os.path.isdir(full):
        for root, _, files in os.walk(full):
            paths += [os.path.join(root, f) for f in files if f.endswith(".rs")]
    elif entry.endswith(".rs"):
        paths.append(full)
    deps = set()
    for p in paths:
        deps |= set(re.findall(r"crate::([a-z_]+)", open(p).read()))
    mods.setdefault(name, set()).update(deps - {name})
seen, stack, out = set(), [], []
def visit(m):
    if m in stack:
        out.append(" -> ".join(stack[stack.index(m):] + [m]))
        return
    if m in seen:
        return
    seen.add(m)
    stack.append(m)
    for d in sorted(mods.get(m, ())):
        if d in mods:
            visit(d)
    stack.pop()
for m in sorted(mods):
    visit(m)
print("\n".join(out))
PY
)
check "no import cycle between top-level modules" "$cycles"
exit $fail
