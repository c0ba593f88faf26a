"""Time the ER7 tokenizer against the plain split floor.

Run: ``.venv/bin/python bench/tokenize.py [iterations]``. Prints µs per message for
split+decode+parse and for ``text.split("\\r")`` + ``str.split("|")``, and their ratio.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import sys
import timeit

from adapter.ingest.er7 import decode_message, parse_message, split_messages


def generated_oru(observations: int = 18) -> bytes:
    """A typical HER2 panel ORU^R01: header, patient, order and ``observations`` OBX with NTEs."""
    lines = [
        "MSH|^~\\&|PATHLAB^1.2.3.4^ISO|GENHOSP|HER2ADAPTER|HUB|20240312101500+0100||"
        "ORU^R01^ORU_R01|MSG000123|P|2.5.1|||AL|NE||UNICODE UTF-8",
        "PID|1||MRN12345^^^GENHOSP^MR~NHS999^^^NHS^NH||DOE^JANE^Q||19650412|F",
        "PV1|1|O|ONC^^^GENHOSP",
        "ORC|RE|ORD1^EPIC|ACC42^PATHLAB||CM",
        "OBR|1|ORD1^EPIC|ACC42^PATHLAB|85337-4^Breast cancer panel^LN|||20240310090000|||||||"
        "|||||||20240312101500|||F",
        "SPM|1|ACC42-A1&PATHLAB||TISS^Tissue^HL70487|||||||||||||20240310090000",
    ]
    for index in range(1, observations + 1):
        lines.append(
            f"OBX|{index}|CWE|85319-2^HER2 [Presence] in Tissue by Immune stain^LN|1|"
            "LA6577-6^Positive (3+)^LN||||||F|||20240312|||||20240312101500"
        )
        if index % 9 == 0:
            lines.append("NTE|1|L|Circumferential complete membrane staining in \\T\\gt 10% cells")
    return ("\r".join(lines) + "\r").encode("utf-8")


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    data = generated_oru()
    text = data.decode("utf-8")
    segment_count = text.count("\r")

    def tokenizer() -> None:
        for raw in split_messages(data):
            decoded = decode_message(raw)
            parse_message(decoded.text, codec=decoded.codec)

    def floor() -> None:
        for line in text.split("\r"):
            line.split("|")

    ours = min(timeit.repeat(tokenizer, number=iterations, repeat=5)) / iterations * 1e6
    base = min(timeit.repeat(floor, number=iterations, repeat=5)) / iterations * 1e6
    print(f"message: {segment_count} segments, {len(data)} bytes")
    print(f"split+decode+parse: {ours:8.2f} µs/msg")
    print(f"split floor:        {base:8.2f} µs/msg")
    print(f"ratio:              {ours / base:8.2f}x")


if __name__ == "__main__":
    main()
