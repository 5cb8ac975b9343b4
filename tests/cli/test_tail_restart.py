"""`baton tail` is built on the Python client's follow: it keeps following across a server
restart, printing every event once."""

from __future__ import annotations

import asyncio
import os
import re
import sys

from baton_client import BatonClient, Participant
from tests.clients.test_python_client import free_port, server_process, stop_gracefully
from tests.support import ROOT


async def test_tail_keeps_following_across_a_server_restart(database_url: str) -> None:
    port = free_port()
    first = server_process(database_url, port)
    first.start()
    servers = [first]
    tail: asyncio.subprocess.Process | None = None
    output = ""

    async def read_until(pattern: str, timeout: float = 30) -> None:
        nonlocal output
        assert tail is not None and tail.stdout is not None
        async with asyncio.timeout(timeout):
            while not re.search(pattern, output):
                line = await tail.stdout.readline()
                assert line, f"tail ended:\n{output}"
                output += line.decode()

    try:
        async with BatonClient(first.target) as client:
            agent = await client.agents.create("Ada")
            customer = await client.customers.create("Cy")
            session = await client.sessions.create(
                agent_id=agent.id, customer_id=customer.id, mode="MANUAL"
            )
            olga = Participant(id="olga", display_name="Olga")
            await client.events.send_message(
                session.id, "before", source="HUMAN_AGENT", participant=olga
            )
            tail = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "baton_server",
                "tail",
                session.id,
                "--target",
                first.target,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            await read_until(r"Olga: before")
            await read_until(r"caught up")

            assert await asyncio.to_thread(stop_gracefully, first) == 0
            second = server_process(database_url, port)
            servers.append(second)
            await asyncio.to_thread(second.start)
            await client.events.send_message(
                session.id, "after the restart", source="HUMAN_AGENT", participant=olga
            )
            await read_until(r"Olga: after the restart")
            assert tail.returncode is None, "tail is still running"

            head = (await client.sessions.get(session.id)).next_offset
            await read_until(rf"#{head - 1} ")
        offsets = [int(m) for m in re.findall(r"^#(\d+) ", output, re.MULTILINE)]
        assert offsets == list(range(head)), output
        assert output.count("caught up") == 1, output
    finally:
        if tail is not None and tail.returncode is None:
            tail.kill()
            await tail.wait()
        for server in servers:
            server.kill()
