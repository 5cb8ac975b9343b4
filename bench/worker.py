"""Entry point of the benches' child processes (started by `Procs.worker`, not by hand):

    python -m bench.worker MODULE:FUNCTION CONFIG.json

runs `await FUNCTION(config)` and prints `RESULT {json}` with what it returns. Workers talk to
the orchestrator in lines on stdout (`emit`: `READY {...}`, `MEASURING {}`, `RESULT {...}`)
and read commands (`STOP`) from stdin.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def emit(kind: str, payload: dict[str, Any]) -> None:
    print(f"{kind} {json.dumps(payload)}", flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or ":" not in argv[0]:
        print("usage: python -m bench.worker MODULE:FUNCTION CONFIG.json", file=sys.stderr)
        return 2
    module_name, function_name = argv[0].split(":", 1)
    config = json.loads(Path(argv[1]).read_text())
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = asyncio.run(function(config))
    except Exception:
        traceback.print_exc()
        return 1
    emit("RESULT", result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
