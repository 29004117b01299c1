"""The audit hash chain (SPEC §7.2) as the tests see it: `audit verify` run as a command, and the chain
recomputed here from its definition, independently of the agent's code.

    chain = hex(sha256(prev_chain_hex_ascii || line_without_chain))

line_without_chain is the line (no newline) with its trailing `,"chain":"<64 hex>"}` replaced by `}`;
the very first record's prev_chain is 64 zeros. `seq` is the first key (1, 2, … across rotation and
restarts), `chain` the last; the first record of a new file has `prev_file` right after `seq`.

    verify(*paths)              -> Verdict(rc, output, intact, broken) of `emrfs-role-agent audit verify`
    read_chained(path)          -> the lines of one file (plain or .gz), as text
    check_chain(files)          -> recomputes the chain over files (in order); returns the records
    seal(prev_chain, record)    -> the line the agent would write for `record` (a dict without `chain`)
"""

import gzip
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass

from .agent import agent_binary

ZERO = "0" * 64
_TAIL = re.compile(r'^(.*),"chain":"([0-9a-f]{64})"\}$', re.S)
_INTACT = re.compile(r"^intact: (\d+) records?, seq (\d+)\.\.(\d+) in (\d+) files?$", re.M)
_BROKEN = re.compile(r"^BROKEN (.+):(\d+): ([a-z ]+): (.*)$", re.M)


@dataclass
class Verdict:
    rc: int
    output: str
    intact: tuple = None  # (records, first seq, last seq, files)
    broken: tuple = None  # (file, line, kind, detail)


def verify(*paths, timeout=60):
    r = subprocess.run([agent_binary(), "audit", "verify", *map(str, paths)], capture_output=True, text=True,
                       timeout=timeout)  # fmt: skip
    out = r.stdout + r.stderr
    intact = [tuple(map(int, m.groups())) for m in _INTACT.finditer(out)]
    broken = [(m[1], int(m[2]), m[3], m[4]) for m in _BROKEN.finditer(out)]
    assert len(intact) <= 1 and len(broken) <= 1, f"more than one verdict:\n{out}"
    return Verdict(r.returncode, out, intact[0] if intact else None, broken[0] if broken else None)


def read_chained(path):
    """The lines of one audit file, plain or gzip'd, without their newlines (a last line without one
    is returned as it is)."""
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read().decode()
    lines = data.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def chain_of(prev_chain, line_without_chain):
    return hashlib.sha256(prev_chain.encode() + line_without_chain.encode()).hexdigest()


def unchain(line):
    """(line_without_chain, chain) of a chained line."""
    m = _TAIL.match(line)
    assert m, f"no trailing chain: {line[-120:]!r}"
    return m.group(1) + "}", m.group(2)


def keys_in_order(line):
    return [k for k, _ in json.loads(line, object_pairs_hook=lambda pairs: pairs)]


def seal(prev_chain, record):
    """The line for `record` (a dict in key order, without `chain`), chained to prev_chain, in the
    agent's compact form."""
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return body[:-1] + f',"chain":"{chain_of(prev_chain, body)}"}}'


def check_chain(files, prev_files=None, start_seq=1, start_chain=ZERO):
    """Recomputes the chain over `files` (paths, in the order they were written): seq first and +1 per
    record, prev_file exactly on each later file's first record, chain last and as defined. prev_files:
    what each later file's prev_file says (default: the base name of the file before it, .gz aside).
    Returns the records (dicts) in order."""
    records, seq, prev, prev_name = [], start_seq, start_chain, None
    for i, path in enumerate(files):
        if prev_files is not None and i > 0:
            prev_name = prev_files[i - 1]
        for n, line in enumerate(read_chained(path), 1):
            where = f"{path}:{n}"
            keys = keys_in_order(line)
            assert keys[0] == "seq" and keys[-1] == "chain", (where, keys)
            record = json.loads(line)
            assert record["seq"] == seq, (where, record["seq"], seq)
            if n == 1 and i > 0:
                assert keys[1] == "prev_file", (where, keys)
                assert record["prev_file"] == prev_name, (where, record["prev_file"], prev_name)
            else:
                assert "prev_file" not in record, (where, record)
            body, chain = unchain(line)
            assert chain == chain_of(prev, body), f"{where}: chain is not sha256(prev chain || line without chain)"
            records.append(record)
            seq, prev = seq + 1, chain
        prev_name = str(path).rsplit("/", 1)[-1].removesuffix(".gz")
    return records
