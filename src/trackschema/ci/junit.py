"""`trackschema ci --junit-xml PATH`: the run as a JUnit XML report, the format CI systems
(GitHub Actions reporters, GitLab, Jenkins) show test results from.

One `<testsuite name="trackschema ci">`, one `<testcase>` per step (its title as the name,
its seconds as the time); a failed step carries a `<failure>` whose message is the step's
one-line detail and whose text is one problem per line; a skipped step a `<skipped>`.
The server the run used is a suite property.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from trackschema.ci.steps import FAILED, SKIPPED

SUITE = "trackschema ci"


def report(result: Any) -> ET.ElementTree:
    """The XML tree of a `CiResult`."""
    steps = result.steps
    root = ET.Element("testsuites", name=SUITE, tests=str(len(steps)),
                      failures=str(sum(s.status == FAILED for s in steps)), time=f"{result.seconds:.3f}")
    suite = ET.SubElement(root, "testsuite", name=SUITE, tests=str(len(steps)),
                          failures=str(sum(s.status == FAILED for s in steps)), errors="0",
                          skipped=str(sum(s.status == SKIPPED for s in steps)), time=f"{result.seconds:.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("server", result.server), ("postgres", result.postgres_version)):
        ET.SubElement(properties, "property", name=name, value=str(value))
    for step in steps:
        case = ET.SubElement(suite, "testcase", classname="trackschema.ci", name=step.title, time=f"{step.seconds:.3f}")
        if step.status == FAILED:
            failure = ET.SubElement(case, "failure", message=step.detail, type=step.name)
            failure.text = "\n".join(step.problems) or step.detail
        elif step.status == SKIPPED:
            ET.SubElement(case, "skipped", message=step.detail)
        else:
            ET.SubElement(case, "system-out").text = step.detail
    ET.indent(root)
    return ET.ElementTree(root)


def write(result: Any, path: str | Path) -> None:
    """Write the report of `result` to `path` (UTF-8, with the XML declaration)."""
    report(result).write(str(path), encoding="utf-8", xml_declaration=True)
