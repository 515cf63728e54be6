"""Lint the HTTP caching behaviour of URLs with REDbot; exit 1 on any "bad" or "warning" note.

    python tests/hardening/redlint.py URL [-H 'Accept: image/webp'] [URL -H ...]...

Each URL takes the -H headers that follow it (REDbot's own CLI cannot send request headers,
which a negotiated thumbnail needs). Prints one JSON line per URL: its status and REDbot's notes.
REDbot also makes its own follow-up requests (conditional, ranged, compressed) to the URL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from configparser import ConfigParser

import thor
from redbot.resource import HttpResource

FAILING_LEVELS = {"bad", "warning"}


def lint(url: str, headers: list[tuple[str, str]], *, timeout: float = 50.0) -> dict:
    parser = ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})  # the server is on 127.0.0.1
    resource = HttpResource(parser["redbot"])
    resource.set_request(url, headers=headers)
    finished = []

    @thor.events.on(resource)
    def check_done() -> None:
        finished.append(True)
        thor.stop()

    thor.schedule(timeout, thor.stop)
    resource.check()
    thor.run()
    notes = [_note(note) for note in resource.response.notes]
    return {
        "url": url,
        "request_headers": headers,
        "finished": bool(finished),
        "status": resource.response.status_code,
        "fetch_error": str(resource.fetch_error) if resource.fetch_error else None,
        "notes": notes,
        "failing": _failing(notes),
    }


def _note(note) -> dict:
    """A note and its subnotes; a subnote's level counts as much as its parent's."""
    return {
        "id": note.__class__.__name__,
        "level": note.level.value,  # "good", "info", "warning" or "bad"
        "summary": str(note.summary),
        "subnotes": [_note(subnote) for subnote in note.subnotes],
    }


def _failing(notes: list[dict]) -> list[dict]:
    found = []
    for note in notes:
        if note["level"] in FAILING_LEVELS:
            found.append(note)
        found += _failing(note["subnotes"])
    return found


def _parse(argv: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    requests: list[tuple[str, list[tuple[str, str]]]] = []
    arguments = iter(argv)
    for argument in arguments:
        if argument == "-H":
            name, _, value = next(arguments).partition(":")
            requests[-1][1].append((name.strip(), value.strip()))
        else:
            requests.append((argument, []))
    return requests


def main(argv: list[str]) -> int:
    requests = _parse(argv)
    if not requests:
        print(__doc__, file=sys.stderr)
        return 2
    if len(requests) > 1:
        # thor's loop does not restart cleanly after a few stops: one process per URL.
        codes = []
        for url, headers in requests:
            single = [url, *(item for name, value in headers for item in ("-H", f"{name}: {value}"))]
            codes.append(subprocess.run([sys.executable, __file__, *single], timeout=120).returncode)
        return max(codes)
    url, headers = requests[0]
    result = lint(url, headers)
    print(json.dumps(result), flush=True)
    return 1 if result["failing"] or not result["finished"] or result["fetch_error"] is not None else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
