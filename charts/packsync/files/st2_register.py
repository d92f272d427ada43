#!/usr/bin/env python3
"""packsync's `[stackstorm]` commands through st2api: register, registered, purge.

    python3 st2_register.py PACK               register: POST /v1/packs/register
    python3 st2_register.py registered PACK    what StackStorm holds for PACK, as packsync
                                               reads it: [{"kind", "ref"}] on stdout
    python3 st2_register.py purge KIND REF     removes it: DELETE /v1/<resource>/REF; a
                                               sensor (which st2api cannot delete) is disabled

Register POSTs {"packs": [PACK], "fail_on_failure": true} to $ST2_API_URL/v1/packs/register.
`registered` lists actions, rules, sensor types (enabled ones), trigger types, action aliases
and policies of the pack, page by page. Every request has the header St2-Api-Key: $ST2_API_KEY
and waits $ST2_REGISTER_TIMEOUT seconds (default 120) for the connection and for each read.
Exit 0 when st2api answers 2xx (a purge of what is already gone too); 1 with a message on
stderr otherwise. Standard library only; the API key is never printed.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
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


# packsync's kinds (the st2 CLI's nouns) and st2api's collections.
COLLECTIONS = {
    "action": "actions",
    "rule": "rules",
    "sensor": "sensortypes",
    "trigger": "triggertypes",
    "action-alias": "actionalias",
    "policy": "policies",
}
PAGE = 100


class Api:
    def __init__(self, url, key, timeout):
        self.url, self.key, self.timeout = url, key, timeout

    def call(self, method, path, body=None):
        """The decoded JSON answer and its headers; raises urllib's errors."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "St2-Api-Key": self.key,
            },
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            text = response.read().decode("utf-8", "replace").strip()
            return (json.loads(text) if text else None), response.headers


def registered(api, pack):
    held = []
    for kind, collection in COLLECTIONS.items():
        offset = 0
        while True:
            path = f"/v1/{collection}?pack={urllib.parse.quote(pack)}&limit={PAGE}&offset={offset}"
            try:
                items, _ = api.call("GET", path)
            except urllib.error.HTTPError as err:
                return fail(f"GET {path}: HTTP {err.code} {err.reason}: {fault(err.read())}")
            except (urllib.error.URLError, OSError) as err:
                return fail(f"cannot reach st2api: GET {path}: {getattr(err, 'reason', err)}")
            for item in items or []:
                if kind == "sensor" and item.get("enabled") is False:
                    continue
                held.append({"kind": kind, "ref": item["ref"]})
            if len(items or []) < PAGE:
                break
            offset += PAGE
    print(json.dumps(held))
    return 0


def purge(api, kind, ref):
    collection = COLLECTIONS.get(kind)
    if collection is None:
        return fail(f"unknown kind `{kind}` (one of {', '.join(COLLECTIONS)})")
    path = f"/v1/{collection}/{urllib.parse.quote(ref)}"
    try:
        if kind == "sensor":
            sensor, _ = api.call("GET", path)
            sensor["enabled"] = False
            api.call("PUT", path, sensor)
        else:
            api.call("DELETE", path)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return 0  # already gone
        return fail(f"st2api did not purge {kind} `{ref}`: HTTP {err.code} {err.reason}: {fault(err.read())}")
    except (urllib.error.URLError, OSError) as err:
        return fail(f"cannot reach st2api to purge {kind} `{ref}`: {getattr(err, 'reason', err)}")
    return 0


def main(argv):
    command = argv[1:]
    if not (
        (len(command) == 1 and command[0])
        or (len(command) == 2 and command[0] == "registered")
        or (len(command) == 3 and command[0] == "purge")
    ):
        return fail("usage: st2_register.py PACK | registered PACK | purge KIND REF")
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
    if command[0] == "registered":
        return registered(Api(api, key, timeout), command[1])
    if command[0] == "purge":
        return purge(Api(api, key, timeout), command[1], command[2])

    pack = command[0]
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
