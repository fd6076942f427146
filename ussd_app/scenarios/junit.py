"""JUnit XML (the form CI servers read): one testsuite, one testcase per file."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass
class Result:
    path: str
    name: str
    seconds: float
    steps: int = 0
    failure: str | None = None  # what differed (a failure), or why the file could not run

    @property
    def passed(self) -> bool:
        return self.failure is None


def write(path: str, results: list[Result], suite: str = "ussd-sim") -> None:
    failed = sum(not r.passed for r in results)
    root = ET.Element("testsuites", name=suite, tests=str(len(results)), failures=str(failed),
                      errors="0", time=f"{sum(r.seconds for r in results):.3f}")
    tsuite = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)),
                           failures=str(failed), errors="0", skipped="0",
                           time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(tsuite, "testcase", classname=r.path, name=r.name, time=f"{r.seconds:.3f}")
        if r.failure is not None:
            failure = ET.SubElement(case, "failure", message=r.failure.splitlines()[0][:500],
                                    type="mismatch")
            failure.text = r.failure
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
