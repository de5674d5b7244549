"""Turn a `pytest --durations=0` report (stdin) into tests/durations.txt (stdout): one line
per test, its setup + call + teardown seconds and its node id, longest first; tests under
0.2 s are left out (they keep their collection order). See tests/conftest.py."""

from __future__ import annotations

import re
import sys

LINE = re.compile(r"^\s*([0-9.]+)s (setup|call|teardown)\s+(\S.*?)\s*$")


def main() -> None:
    totals: dict[str, float] = {}
    for line in sys.stdin:
        match = LINE.match(line)
        if match:
            nodeid = match.group(3)
            at = nodeid.rfind("@")
            nodeid = nodeid[:at] if at > nodeid.rfind("]") else nodeid
            totals[nodeid] = totals.get(nodeid, 0.0) + float(match.group(1))
    print("# seconds (setup + call + teardown) and node id, from a recorded run; see tests/conftest.py")
    for nodeid, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.2:
            print(f"{seconds:.2f} {nodeid}")


if __name__ == "__main__":
    main()
