"""A keygate policy written in Python: a JSON allowlist of key fingerprints.

The operator gives keygate one JSON document with `--policy-input FILE`; it
arrives here as the input named `policy-input:FILE`. The document maps team
names to lists of key fingerprints, written exactly as `ssh-keygen -lf`
prints them (`SHA256:` and 43 base64 characters), plus a `"global"` list of
fingerprints that act for every team:

    {
      "global": ["SHA256:..."],
      "main": ["SHA256:...", "SHA256:..."]
    }

The rule: a key may connect when its fingerprint is listed anywhere; it may
register, land, retire or delete a worker of team T when it is listed under
T or under "global"; it may act for all teams (no team claimed) only when it
is global. Actions this policy does not know are denied. Because "global"
names the global list, a team called "global" cannot be written here.

Every problem in the document fails the load with the input's name and what
is wrong, so keygate keeps serving the policy it had. Duplicate fingerprints
load, with a warning.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Action_Connect,
    Action_Other,
    Decision_Allow,
    Decision_Deny,
    InitReport,
)

GLOBAL = "global"
INPUT_PREFIX = "policy-input:"
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


class Allowlist:
    """The loaded document: fingerprints by team, and the global ones."""

    def __init__(self, teams, global_keys):
        self.teams = teams
        self.global_keys = global_keys
        self.anywhere = set(global_keys).union(*teams.values())

    def decide(self, action, team, fingerprint):
        if isinstance(action, Action_Connect):
            if fingerprint in self.anywhere:
                return Decision_Allow()
            return Decision_Deny(f"key {fingerprint} is not in the allowlist")
        if isinstance(action, Action_Other):
            return Decision_Deny(f"unknown action {action.value}; this policy denies it")
        if fingerprint in self.global_keys:
            return Decision_Allow()
        if team is None:
            return Decision_Deny(
                f"key {fingerprint} is not a global key; only global keys act for all teams"
            )
        if fingerprint in self.teams.get(team, ()):
            return Decision_Allow()
        return Decision_Deny(f"key {fingerprint} is not authorized for team {team}")


# Set by `init`; `authorize` before a successful `init` denies.
LOADED = None


class Policy(exports.Policy):
    """The `policy` export keygate calls."""

    def init(self, inputs):
        """Load the one `policy-input:` document; warn about any other input."""
        global LOADED
        documents = [i for i in inputs if i.name.startswith(INPUT_PREFIX)]
        warnings = [
            f"{i.name}: ignored; this policy reads only --policy-input"
            for i in inputs
            if not i.name.startswith(INPUT_PREFIX)
        ]
        if len(documents) != 1:
            names = ", ".join(i.name for i in documents) or "none"
            raise Err(
                f"expected exactly one --policy-input (a JSON allowlist), got {names}"
            )
        document = documents[0]
        loaded, found = parse(document.name, document.data)
        LOADED = loaded
        warnings.extend(found)
        summary = [
            f"teams: {len(loaded.teams)} ({count(loaded.teams)} team fingerprints)",
            f"global fingerprints: {len(loaded.global_keys)}",
            f"distinct fingerprints: {len(loaded.anywhere)}",
        ]
        host.log(host.Level.INFO, f"python-allowlist loaded {document.name}: {summary[0]}")
        return InitReport(summary=summary, warnings=warnings)

    def authorize(self, request):
        """Decide one request from the loaded allowlist alone."""
        if LOADED is None:
            return Decision_Deny("policy has no allowlist loaded")
        return LOADED.decide(request.action, request.team, request.key.fingerprint)


def count(teams):
    return sum(len(keys) for keys in teams.values())


def parse(name, data):
    """Parse the allowlist document; raise `Err` naming `name` on any fault."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Err(f"{name}: not UTF-8 at byte {e.start}")
    try:
        document = json.loads(text, object_pairs_hook=Members)
    except json.JSONDecodeError as e:
        raise Err(f"{name}:{e.lineno}:{e.colno}: invalid JSON; {e.msg}")
    if not isinstance(document, Members):
        raise Err(f"{name}: expected an object of teams, got {json_type(document)}")
    warnings = []
    lists = {}
    for team, listed in document:
        if team == "":
            raise Err(f"{name}: a team name is empty")
        keys = fingerprints(name, team, listed, warnings)
        if team in lists:
            warnings.append(f"{name}: {where(team)} appears twice; merged")
        lists[team] = lists.get(team, frozenset()) | keys
    global_keys = lists.pop(GLOBAL, frozenset())
    return Allowlist(lists, global_keys), warnings


class Members(list):
    """A JSON object's members in order, duplicates kept. Python's own
    `dict` would keep only the last of two entries for the same team and
    drop the other's keys without a word."""


def where(team):
    return "the global list" if team == GLOBAL else f"team {team}"


def fingerprints(name, team, listed, warnings):
    if type(listed) is not list:
        raise Err(
            f"{name}: {where(team)}: expected a list of fingerprints, got {json_type(listed)}"
        )
    keys = set()
    for n, fingerprint in enumerate(listed, start=1):
        if not isinstance(fingerprint, str):
            raise Err(
                f"{name}: {where(team)}, entry {n}: expected a string, "
                f"got {json_type(fingerprint)}"
            )
        if not FINGERPRINT.fullmatch(fingerprint):
            raise Err(
                f"{name}: {where(team)}, entry {n}: {fingerprint!r} is not a SHA256 fingerprint "
                "(write it as `ssh-keygen -lf` prints it: SHA256: and 43 characters)"
            )
        if fingerprint in keys:
            warnings.append(f"{name}: {where(team)}: {fingerprint} is listed twice")
        keys.add(fingerprint)
    return frozenset(keys)


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Members):
        return "an object"
    return "a list"
