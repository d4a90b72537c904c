"""Run Python code in a fresh interpreter (a clean ``sys.modules``) and read its answer."""

from __future__ import annotations

import json
import subprocess
import sys


def fresh_python_json(code: str) -> dict:
    """Run ``code`` with ``python -c``; it must exit 0 and print a JSON object as its last line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
