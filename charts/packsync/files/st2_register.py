#!/usr/bin/env python3
"""Registers one pack with StackStorm through st2api: packsync's `[stackstorm] register`.

    python3 st2_register.py PACK

POSTs {"packs": [PACK], "fail_on_failure": true} to $ST2_API_URL/v1/packs/register with the
header St2-Api-Key: $ST2_API_KEY, waiting $ST2_REGISTER_TIMEOUT seconds (default 120) for the
connection and for each read. Exit 0 when st2api answers 2xx (its counts go to stdout); 1 with
a message on stderr otherwise, and packsync switches the previous release back. Standard
library only; the API key is never printed.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def fail(message):
    print(f"st2_register: {message}", file=sys.stderr)
    return 1


def fault(body):
    """st2api's `faultstring` from an error body, else the body's start."""
    text = body.decode("utf-8", "replace").strip()
    try:
        return str(json.loads(text)["faultstring"])
    except (ValueError, KeyError, TypeError):
        return text[:500] or "(no body)"


def main(argv):
    if len(argv) != 2 or not argv[1]:
        return fail("usage: st2_register.py PACK")
    pack = argv[1]
    api = os.environ.get("ST2_API_URL", "").rstrip("/")
    key = os.environ.get("ST2_API_KEY", "").strip()
    if not api:
        return fail("ST2_API_URL is not set (the chart's st2.apiUrl)")
    if not key:
        return fail("ST2_API_KEY is not set or empty (the Secret of the chart's st2.apiKeySecret)")
    try:
        timeout = float(os.environ.get("ST2_REGISTER_TIMEOUT", "120"))
    except ValueError:
        return fail("ST2_REGISTER_TIMEOUT is not a number of seconds")

    url = f"{api}/v1/packs/register"
    request = urllib.request.Request(
        url,
        data=json.dumps({"packs": [pack], "fail_on_failure": True}).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "St2-Api-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        return fail(
            f"st2api did not register pack `{pack}`: POST {url}: HTTP {err.code} {err.reason}: "
            f"{fault(err.read())}"
        )
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return fail(f"cannot reach st2api to register pack `{pack}`: POST {url}: {reason}")
    print(f"registered pack `{pack}`: {body.decode('utf-8', 'replace').strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
