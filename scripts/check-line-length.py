#!/usr/bin/env python3
"""Fails when a Swift line in Sources/ or Tests/ is longer than 120 columns.

Lines inside multi-line string literals are exempt: they are wire fixtures (SSE events,
provider answers) whose bytes a test compares, and breaking them would change the test.
"""
import pathlib
import sys

LIMIT = 120
root = pathlib.Path(__file__).resolve().parent.parent
problems = []
for path in sorted(list(root.glob("Sources/**/*.swift")) + list(root.glob("Tests/**/*.swift"))):
    in_literal = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        delimiters = line.count('"""')
        if len(line) > LIMIT and not in_literal:
            problems.append(f"{path.relative_to(root)}:{number}: {len(line)} columns")
        if delimiters % 2 == 1:
            in_literal = not in_literal
if problems:
    print("Swift lines over %d columns (wrap them; swift format does most):" % LIMIT)
    print("\n".join(problems))
    sys.exit(1)
