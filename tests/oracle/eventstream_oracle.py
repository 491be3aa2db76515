"""Oracle for Quarry's event-stream codec: decode with botocore's parser.

botocore has no event-stream encoder, so the oracle test encodes messages with
Quarry and checks that botocore.eventstream.EventStreamBuffer (an independent
decoder) reads back the same headers and payloads.

Modes (input on stdin, JSON lines on stdout):

  decode SEED   stdin is a run of binary frames. They are fed to one
                EventStreamBuffer in random slices (seeded), draining messages
                after each slice as botocore's EventStream does. One line per
                message:
                  {"headers": [[name, kind, value], ...], "payload_base64": "..."}
                where kind is the Python type botocore produced ("bool", "int",
                "bytes" as base64, "str"); then a final line, either
                  {"end": true, "leftover": <bytes still buffered>}
                or {"error": "<exception class>", "message": "..."}.

  frames        stdin has one hex-encoded frame per line; each is decoded on
                its own. One line per frame:
                  {"messages": n, "leftover": n, "error": "<class>" or null}

Exit status 0 unless the script itself is misused.
"""

import base64
import binascii
import json
import random
import sys

import botocore
from botocore.eventstream import EventStreamBuffer


def header_to_json(name, value):
    # bool is a subclass of int: test it first.
    if isinstance(value, bool):
        return [name, "bool", value]
    if isinstance(value, int):
        return [name, "int", value]
    if isinstance(value, (bytes, bytearray)):
        return [name, "bytes", base64.b64encode(bytes(value)).decode("ascii")]
    if isinstance(value, str):
        return [name, "str", value]
    return [name, "unexpected:" + type(value).__name__, repr(value)]


def message_to_json(message):
    return {
        "headers": [header_to_json(k, v) for k, v in message.headers.items()],
        "payload_base64": base64.b64encode(message.payload).decode("ascii"),
    }


def buffered_bytes(buffer):
    # botocore keeps the unparsed bytes in a private attribute; it is only
    # used to report how much was left over at the end.
    return len(getattr(buffer, "_data", b""))


def decode(seed):
    data = sys.stdin.buffer.read()
    rng = random.Random(seed)
    buffer = EventStreamBuffer()
    out = sys.stdout
    pos = 0
    try:
        while pos < len(data):
            size = rng.choice([1, 7, rng.randint(1, 64 * 1024)])
            buffer.add_data(data[pos:pos + size])
            pos += size
            for message in buffer:
                out.write(json.dumps(message_to_json(message)) + "\n")
    except Exception as e:  # any parser failure is the answer we report
        out.write(json.dumps({"error": type(e).__name__, "message": str(e)}) + "\n")
        return
    out.write(json.dumps({"end": True, "leftover": buffered_bytes(buffer)}) + "\n")


def frames():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        buffer = EventStreamBuffer()
        count = 0
        error = None
        try:
            buffer.add_data(binascii.unhexlify(line))
            for _ in buffer:
                count += 1
        except Exception as e:
            error = type(e).__name__
        print(json.dumps({"messages": count, "leftover": buffered_bytes(buffer), "error": error}))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "decode":
        decode(int(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "frames":
        frames()
    elif len(sys.argv) == 2 and sys.argv[1] == "version":
        print(botocore.__version__)
    else:
        sys.stderr.write("usage: eventstream_oracle.py decode SEED | frames | version\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
