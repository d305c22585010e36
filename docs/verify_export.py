#!/usr/bin/env python3
"""Independent verifier for a grantlog export (docs/audit.md), standard library only.

    python3 verify_export.py FILE [--head POSITION:HASH] [--since POSITION:HASH]

Prints `ok N events, head POSITION:HASH` and exits 0, or
`bad at line L position P: CODE: DETAIL` and exits 1 (2 on a usage or I/O error).
Written from docs/audit.md alone; it must agree with `grantlog verify-export`.
"""

import argparse
import datetime
import hashlib
import json
import struct
import sys
import uuid

GENESIS = bytes(32)
U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

METADATA_FIELDS = ["actor", "effective_date", "reason", "command_id", "correlation_id", "causation_id"]
METADATA_ATTRIBUTES = ["actor", "effectivedate", "reason", "commandid", "correlationid", "causationid"]
NATIVE_KEYS = {
    "position", "stream", "version", "id", "type", "schema_version", "recorded_at", "recorded_at_micros",
    "data_json", "metadata_json", "data", "prev_hash", "hash", *METADATA_FIELDS,
}
CLOUD_REQUIRED = {
    "specversion", "id", "source", "type", "subject", "datacontenttype", "data", "position", "streamversion",
    "schemaversion", "recordedatmicros", "datajson", "metadatajson", "prevhash", "hash",
}
CLOUD_OPTIONAL = {"time", *METADATA_ATTRIBUTES}


class Bad(Exception):
    def __init__(self, line, position, code, detail):
        super().__init__(detail)
        self.line, self.position, self.code, self.detail = line, position, code, detail


class Malformed(Exception):
    pass


# --- JSON numbers, typed as docs/audit.md says (integers that fit u64 or
# negative i64 stay integers; everything else, and -0, is a double) -------

def _parse_int(text):
    v = int(text)
    if text.startswith("-"):
        if I64_MIN <= v < 0:
            return v
    elif v <= U64_MAX:
        return v
    return _parse_float(text)


def _parse_float(text):
    f = float(text)
    if f in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return f


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(text):
    value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
    # Lone surrogates ("\ud800") are not Unicode text.
    json.dumps(value, ensure_ascii=False).encode("utf-8")
    return value


def same(a, b):
    """JSON equality that tells integers, doubles and booleans apart."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# --- the canonical encoding and the chain rule ---------------------------

def text(s):
    b = s.encode("utf-8")
    return struct.pack(">I", len(b)) + b


def chain_hash(prev, position, stream, version, event_id, event_type, schema_version, data, metadata, micros):
    h = hashlib.sha256()
    h.update(prev)
    h.update(struct.pack(">Q", position))
    h.update(text(stream))
    h.update(struct.pack(">Q", version))
    h.update(event_id)
    h.update(text(event_type))
    h.update(struct.pack(">I", schema_version))
    h.update(text(data))
    h.update(text(metadata))
    h.update(struct.pack(">q", micros))
    return h.digest()


def rfc3339_micros(micros):
    try:
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=micros)
    except OverflowError:
        return None
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
            f".{t.microsecond:06d}Z")


# --- parsing one line ----------------------------------------------------

def get(obj, key):
    if key not in obj:
        raise Malformed(f"missing key {key!r}")
    return obj[key]


def string(obj, key):
    v = get(obj, key)
    if not isinstance(v, str):
        raise Malformed(f"{key!r} is not a string")
    return v


def unsigned(obj, key, maximum):
    v = get(obj, key)
    if type(v) is not int or not 0 <= v <= maximum:
        raise Malformed(f"{key!r} is not an integer from 0 to {maximum}")
    return v


def signed(obj, key):
    v = get(obj, key)
    if type(v) is not int or not I64_MIN <= v <= I64_MAX:
        raise Malformed(f"{key!r} is not a 64-bit signed integer")
    return v


def _digits(s):
    return s != "" and all(c in "0123456789" for c in s) and (s == "0" or not s.startswith("0"))


def decimal_unsigned(obj, key, maximum):
    s = string(obj, key)
    if not _digits(s) or int(s) > maximum:
        raise Malformed(f"{key!r} is not a decimal string from 0 to {maximum}")
    return int(s)


def decimal_signed(obj, key):
    s = string(obj, key)
    digits = s[1:] if s.startswith("-") else s
    if not _digits(digits) or s == "-0" or not I64_MIN <= int(s) <= I64_MAX:
        raise Malformed(f"{key!r} is not a decimal string of a 64-bit signed integer")
    return int(s)


def hash_field(obj, key):
    s = string(obj, key)
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise Malformed(f"{key!r} is not 64 lowercase hex digits")
    return bytes.fromhex(s)


def uuid_field(obj, key):
    s = string(obj, key)
    try:
        u = uuid.UUID(s)
    except ValueError:
        u = None
    if u is None or str(u) != s:
        raise Malformed(f"{key!r} is not a lowercase hyphenated UUID")
    return u.bytes


ABSENT = object()


def parse_line(raw):
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed(f"not UTF-8: {e}")
    try:
        obj = loads(s)
    except (ValueError, UnicodeEncodeError, RecursionError) as e:
        raise Malformed(f"not JSON: {e}")
    if not isinstance(obj, dict):
        raise Malformed("not a JSON object")
    if "specversion" in obj:
        return parse_cloud(obj)
    unknown = [k for k in obj if k not in NATIVE_KEYS]
    if unknown:
        raise Malformed(f"unknown key {unknown[0]!r}")
    line = dict(
        cloud=False,
        position=unsigned(obj, "position", U64_MAX),
        stream=string(obj, "stream"),
        version=unsigned(obj, "version", U64_MAX),
        id=uuid_field(obj, "id"),
        type=string(obj, "type"),
        schema_version=unsigned(obj, "schema_version", U32_MAX),
        micros=signed(obj, "recorded_at_micros"),
        data_json=string(obj, "data_json"),
        metadata_json=string(obj, "metadata_json"),
        prev_hash=hash_field(obj, "prev_hash"),
        hash=hash_field(obj, "hash"),
        recorded_at=get(obj, "recorded_at"),
        data=get(obj, "data"),
    )
    line["meta"] = [get(obj, k) for k in METADATA_FIELDS]
    return line


def parse_cloud(obj):
    unknown = [k for k in obj if k not in CLOUD_REQUIRED and k not in CLOUD_OPTIONAL]
    if unknown:
        raise Malformed(f"unknown attribute {unknown[0]!r}")
    if string(obj, "specversion") != "1.0":
        raise Malformed('"specversion" is not "1.0"')
    if string(obj, "datacontenttype") != "application/json":
        raise Malformed('"datacontenttype" is not "application/json"')
    if string(obj, "source") == "":
        raise Malformed('"source" is empty')
    line = dict(
        cloud=True,
        position=decimal_unsigned(obj, "position", U64_MAX),
        stream=string(obj, "subject"),
        version=decimal_unsigned(obj, "streamversion", U64_MAX),
        id=uuid_field(obj, "id"),
        type=string(obj, "type"),
        schema_version=decimal_unsigned(obj, "schemaversion", U32_MAX),
        micros=decimal_signed(obj, "recordedatmicros"),
        data_json=string(obj, "datajson"),
        metadata_json=string(obj, "metadatajson"),
        prev_hash=hash_field(obj, "prevhash"),
        hash=hash_field(obj, "hash"),
        recorded_at=obj.get("time", ABSENT),
        data=get(obj, "data"),
    )
    line["meta"] = [obj.get(k, ABSENT) for k in METADATA_ATTRIBUTES]
    return line


def opt_same(a, b):
    if a is ABSENT or b is ABSENT:
        return a is b
    return same(a, b)


def check_fields(line):
    """None if the reader's fields agree; ('bad-payload'|'field-mismatch', detail) otherwise."""
    try:
        data = loads(line["data_json"])
    except (ValueError, UnicodeEncodeError, RecursionError) as e:
        return "bad-payload", f"data_json is not JSON: {e}"
    try:
        meta = loads(line["metadata_json"])
    except (ValueError, UnicodeEncodeError, RecursionError) as e:
        return "bad-payload", f"metadata_json is not JSON: {e}"
    if not isinstance(meta, dict):
        return "bad-payload", "metadata_json is not a JSON object"
    cloud = line["cloud"]
    time = rfc3339_micros(line["micros"])
    if cloud:
        expected_time = ABSENT if time is None else time
    else:
        expected_time = time
    if not opt_same(line["recorded_at"], expected_time):
        name = "time" if cloud else "recorded_at"
        return "field-mismatch", f"{name} does not match recorded_at_micros {line['micros']}"
    if not same(line["data"], data):
        return "field-mismatch", "data does not match the payload in data_json"
    for i, field in enumerate(METADATA_FIELDS):
        stored = meta.get(field, ABSENT)
        if cloud:
            expected = ABSENT if stored is ABSENT or stored is None else stored
        else:
            expected = None if stored is ABSENT else stored
        if not opt_same(line["meta"][i], expected):
            name = METADATA_ATTRIBUTES[i] if cloud else field
            return "field-mismatch", f"{name} does not match metadata_json"
    return None


# --- the walk ------------------------------------------------------------

def fmt_head(position, h):
    return f"{position}:{h.hex()}"


def verify(lines, head=None, since=None):
    """Returns (checked, (position, hash) or None); raises Bad."""
    checked = 0
    previous = None  # (position, hash) of the last good line
    first_position = None
    first_prev = None
    from_start = False
    streams = {}
    last_micros = None
    head_hash_seen = None
    n = 0
    for raw in lines:
        n += 1
        try:
            line = parse_line(raw)
        except Malformed as e:
            raise Bad(n, None, "malformed-line", str(e))
        p = line["position"]
        if previous is None:
            first_position = p
            from_start = p == 1
            if p == 0:
                raise Bad(n, 0, "gap", "positions start at 1")
            if since is not None and since[0] == 0 and since[1] != GENESIS:
                raise Bad(n, 0, "not-a-prefix", f"the earlier head {fmt_head(*since)} is not the genesis")
            anchor = since if since is not None and since[0] > 0 else None
            if p == 1:
                expected_prev = GENESIS
            elif anchor is None:
                raise Bad(n, 1, "gap", f"the export starts at position {p}: positions 1 to {p - 1} are missing")
            elif p == anchor[0] + 1:
                if line["prev_hash"] != anchor[1]:
                    raise Bad(n, anchor[0], "not-a-prefix",
                              f"the export does not continue from the earlier head {fmt_head(*anchor)}")
                expected_prev = anchor[1]
            elif p > anchor[0] + 1:
                raise Bad(n, anchor[0] + 1, "gap",
                          f"the export starts at position {p}, after the earlier head {fmt_head(*anchor)}")
            else:
                expected_prev = line["prev_hash"]
        else:
            last, expected_prev = previous
            if p == last:
                raise Bad(n, p, "duplicate", f"position {p} appears again")
            if p < last:
                raise Bad(n, p, "out-of-order", f"position {p} comes after position {last}")
            if p != last + 1:
                raise Bad(n, last + 1, "gap", f"expected position {last + 1}, found {p}")
        if line["prev_hash"] != expected_prev:
            raise Bad(n, p, "prev-hash-mismatch",
                      f"prev_hash {line['prev_hash'].hex()} is not the previous event's hash {expected_prev.hex()}")
        computed = chain_hash(line["prev_hash"], p, line["stream"], line["version"], line["id"], line["type"],
                              line["schema_version"], line["data_json"], line["metadata_json"], line["micros"])
        if computed != line["hash"]:
            raise Bad(n, p, "hash-mismatch",
                      f"hash {line['hash'].hex()} but the content hashes to {computed.hex()}")
        found = check_fields(line)
        if found is not None:
            raise Bad(n, p, found[0], found[1])
        stream = line["stream"]
        if stream in streams:
            expected_version = min(streams[stream] + 1, U64_MAX)
        else:
            expected_version = 0 if from_start else None
        if expected_version is not None and expected_version != line["version"]:
            raise Bad(n, p, "stream-version",
                      f"stream {stream!r}: expected version {expected_version}, found {line['version']}")
        if checked > 0 and line["micros"] < last_micros:
            raise Bad(n, p, "time-backwards",
                      f"recorded_at_micros {line['micros']} is before the previous event's {last_micros}")
        if since is not None and since[0] == p and since[1] != line["hash"]:
            raise Bad(n, p, "not-a-prefix", f"the hash at position {p} is not the earlier head {fmt_head(*since)}")
        if head is not None and head[0] == p:
            head_hash_seen = line["hash"]
        if checked == 0:
            first_prev = line["prev_hash"]
        streams[stream] = line["version"]
        last_micros = line["micros"]
        previous = (p, line["hash"])
        checked += 1

    after = n + 1
    last = previous[0] if previous else None

    def line_of(position):
        if first_position is not None and position >= first_position:
            return 1 + (position - first_position)
        return after

    if since is not None:
        s = since[0]
        if s == 0 and since[1] != GENESIS:
            raise Bad(after, 0, "not-a-prefix", f"the earlier head {fmt_head(*since)} is not the genesis")
        if s > 0 and (last is None or last < s):
            raise Bad(after, s, "not-a-prefix", f"the export ends before the earlier head {fmt_head(*since)}")
    if head is not None:
        h = head[0]
        if last is None:
            found = GENESIS if h == 0 else None
        elif h + 1 == first_position:
            found = first_prev
        elif h >= first_position:
            found = head_hash_seen
        else:
            found = None
        if last is not None and last < h:
            raise Bad(after, h, "head-mismatch", f"the export ends at position {last}, before the expected head")
        if last is None and h > 0:
            raise Bad(after, h, "head-mismatch", "the export is empty")
        if found != head[1]:
            raise Bad(line_of(h), h, "head-mismatch", f"the hash at position {h} is not the expected head")
        if last is not None and last > h:
            raise Bad(line_of(h + 1), h + 1, "head-mismatch",
                      f"the export continues past the expected head to position {last}")
    return checked, previous


def read_lines(path):
    with open(path, "rb") as f:
        content = f.read()
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def parse_head(text):
    position, sep, h = text.partition(":")
    try:
        if not sep or position == "" or any(c not in "0123456789" for c in position) or len(h) != 64:
            raise ValueError
        return int(position), bytes.fromhex(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a head (POSITION:HASH, hash as 64 hex digits)")


def report(path, head=None, since=None):
    """(exit status, the line to print) for one export file."""
    lines = read_lines(path)
    try:
        checked, last = verify(lines, head, since)
    except Bad as b:
        position = "-" if b.position is None else b.position
        return 1, f"bad at line {b.line} position {position}: {b.code}: {b.detail}"
    return 0, f"ok {checked} events, head {'-' if last is None else fmt_head(*last)}"


def main():
    parser = argparse.ArgumentParser(description="Verify a grantlog export with no database.")
    parser.add_argument("file")
    parser.add_argument("--head", type=parse_head, help="the head the export must end at")
    parser.add_argument("--since", type=parse_head, help="an earlier head the export must contain")
    args = parser.parse_args()
    try:
        status, line = report(args.file, args.head, args.since)
    except OSError as e:
        print(f"cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
