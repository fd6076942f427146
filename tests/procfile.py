"""The Procfile's processes as tests start them: each command line as
argv, a web server on loopback at the port given."""
import shlex
from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def command(name: str, port: int | None = None) -> list[str]:
    """The Procfile's command of process ``name``, split; ``$PORT`` is ``port``
    and the web server binds 127.0.0.1, not every interface."""
    for line in PROCFILE.read_text().splitlines():
        if line.startswith(f"{name}:"):
            text = line.split(":", 1)[1].strip().replace("0.0.0.0", "127.0.0.1")
            return shlex.split(text.replace("$PORT", str(port)) if port is not None else text)
    raise AssertionError(f"Procfile has no {name}: line")
