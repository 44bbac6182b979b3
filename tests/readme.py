"""The README's Production and Single sign-on sections read as commands, so the tests that
follow them (check --deploy, the fresh install) run what the README says and cannot drift from
it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


@dataclass(frozen=True)
class Production:
    commands: list[list[str]]  # every command of the first block, `export` lines excluded
    environment: dict[str, str]  # what its `export` lines set
    plain_http: dict[str, str]  # the second block: what trying it over plain HTTP sets


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _lines(block: str) -> list[str]:
    """Shell lines with continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [raw for raw in joined.splitlines() if shlex.split(raw, comments=True)]


def _exports(words: list[str]) -> dict[str, str]:
    assert words[0] == "export", words
    return dict(word.split("=", 1) for word in words[1:])


def production() -> Production:
    blocks = re.findall(r"```sh\n(.+?)\n *```", _section("Production"), re.S)
    assert len(blocks) >= 2, "Production has the install block and the plain-HTTP block"
    commands: list[list[str]] = []
    environment: dict[str, str] = {}
    for line in _lines(blocks[0]):
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            environment.update(_exports(words))
        else:
            commands.append(words)
    (plain,) = [shlex.split(line, comments=True) for line in _lines(blocks[1])]
    return Production(commands=commands, environment=environment, plain_http=_exports(plain))


@dataclass(frozen=True)
class SingleSignOn:
    environment: dict[str, str]  # what the section's `export` lines set, in order
    group_mapping: list[str]  # `python manage.py sso_group_mapping add GROUP ROLE --as ADMIN`


def single_sign_on() -> SingleSignOn:
    section = _section("Single sign-on")
    environment: dict[str, str] = {}
    for block in re.findall(r"```sh\n(.+?)\n *```", section, re.S):
        for line in _lines(block):
            environment.update(_exports(shlex.split(line, comments=True)))
    (mapping,) = re.findall(r"`(python manage\.py sso_group_mapping add [^`]+)`", section)
    return SingleSignOn(environment=environment, group_mapping=shlex.split(mapping))
