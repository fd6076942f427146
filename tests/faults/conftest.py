"""Fixtures of the fault tests (the machinery is in faultstack.py); every
test here carries the ``faults`` marker (``-m "not faults"`` leaves them out)."""
from pathlib import Path

import pytest

from faultstack import Stack


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def stack(tmp_path, request):
    """The whole service, started as the Procfile does; ``fsync`` by the
    ``appendfsync`` marker argument (default everysec)."""
    marker = request.node.get_closest_marker("appendfsync")
    s = Stack(tmp_path, marker.args[0] if marker else "everysec")
    try:
        s.start()
        yield s
    finally:
        s.stop()
