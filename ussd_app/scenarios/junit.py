"""JUnit XML (the form CI servers read): one testsuite, one testcase per file.

A file that could not run (it does not load, or the server cannot be reached)
is an ``<error>``; a file whose service answered otherwise than expected, a
``<failure>``. Each test case names its file relative to where the runner
ran, carries its dialect as a property and the hops it played (its
transcript) in ``<system-out>``.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass
class Result:
    path: str
    name: str
    seconds: float
    steps: int = 0
    failure: str | None = None  # what differed (expected and got)
    error: str | None = None  # why the file could not run
    dialect: str | None = None
    transcript: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failure is None and self.error is None


def relative(path: str) -> str:
    """``path`` relative to the working directory (where CI checked out), when
    it lies under it; else as given."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def write(path: str, results: list[Result], suite: str = "ussd-sim") -> None:
    failures = sum(r.failure is not None for r in results)
    errors = sum(r.error is not None for r in results)
    seconds = f"{sum(r.seconds for r in results):.3f}"
    root = ET.Element("testsuites", name=suite, tests=str(len(results)), failures=str(failures),
                      errors=str(errors), time=seconds)
    tsuite = ET.SubElement(root, "testsuite", name=suite, tests=str(len(results)), failures=str(failures),
                           errors=str(errors), skipped="0", time=seconds)
    for r in results:
        file = relative(r.path)
        case = ET.SubElement(tsuite, "testcase", classname=file, name=r.name, file=file,
                             time=f"{r.seconds:.3f}")
        if r.dialect:
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="dialect", value=r.dialect)
        for tag, text, kind in (("error", r.error, "not run"), ("failure", r.failure, "mismatch")):
            if text is not None:
                el = ET.SubElement(case, tag, message=text.splitlines()[0][:500], type=kind)
                el.text = text
        if r.transcript:
            ET.SubElement(case, "system-out").text = "\n".join(r.transcript)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
