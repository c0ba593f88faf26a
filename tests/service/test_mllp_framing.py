"""The MLLP frame decoder, without sockets: bytes in, frames out."""

from __future__ import annotations

import pytest

from adapter.service.mllp import Frame, FrameDecoder, NoStartBlock, OversizedFrame, frame

MSG_A = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1\r"
MSG_B = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|2|P|2.5.1\rPID|2\r"


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame | OversizedFrame]:
    return [item for chunk in chunks for item in decoder.feed(chunk)]


def test_one_frame_in_one_read() -> None:
    """A whole frame in one read gives exactly its payload, without the framing bytes."""
    assert FrameDecoder(1024).feed(frame(MSG_A)) == [Frame(MSG_A)]


@pytest.mark.parametrize("cut", range(1, len(frame(MSG_A))), ids=lambda cut: f"cut-at-{cut}")
def test_frame_split_across_two_reads(cut: int) -> None:
    """Wherever a read boundary falls (inside the end block pair too), the frame is the same."""
    data = frame(MSG_A)
    decoder = FrameDecoder(1024)
    assert decoder.feed(data[:cut]) == []
    assert decoder.feed(data[cut:]) == [Frame(MSG_A)]


def test_byte_at_a_time() -> None:
    """Frames fed one byte at a time come out whole, in order."""
    data = frame(MSG_A) + frame(MSG_B)
    frames = feed_all(FrameDecoder(1024), [data[i : i + 1] for i in range(len(data))])
    assert frames == [Frame(MSG_A), Frame(MSG_B)]


def test_several_frames_in_one_read() -> None:
    """Pipelined frames in one read are all returned, in order."""
    assert FrameDecoder(1024).feed(frame(MSG_A) + frame(MSG_B) + frame(MSG_A)) == [
        Frame(MSG_A),
        Frame(MSG_B),
        Frame(MSG_A),
    ]


def test_junk_between_frames_is_discarded_and_counted() -> None:
    """Bytes outside frames (newlines, noise) are dropped and counted, frames unaffected."""
    decoder = FrameDecoder(1024)
    frames = decoder.feed(b"noise" + frame(MSG_A) + b"\r\n" + frame(MSG_B) + b"xy")
    assert frames == [Frame(MSG_A), Frame(MSG_B)]
    assert decoder.discarded == len(b"noise") + 2 + 2


def test_end_block_without_carriage_return_is_content() -> None:
    """MLLP ends a frame with 0x1C 0x0D: a lone 0x1C inside the message does not end it."""
    payload = b"MSH|x\x1cy\r"
    assert FrameDecoder(1024).feed(frame(payload)) == [Frame(payload)]


def test_start_block_inside_a_frame_restarts_it() -> None:
    """A new start block abandons the unfinished frame (counted) and the new one is kept."""
    decoder = FrameDecoder(1024)
    frames = decoder.feed(b"\x0bpartial" + frame(MSG_A))
    assert frames == [Frame(MSG_A)]
    assert decoder.discarded == len(b"\x0bpartial")


def test_unfinished_frame_is_reported_in_frame() -> None:
    """A frame cut off before its end block is not returned, and the decoder says it is open."""
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"\x0b" + MSG_A) == []
    assert decoder.in_frame
    assert decoder.feed(b"\x1c\r") == [Frame(MSG_A)]
    assert not decoder.in_frame


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        pytest.param(100, "frame", id="at-limit-kept-whole"),
        pytest.param(101, "oversized", id="one-byte-over-limit"),
    ],
)
def test_size_limit_boundary(size: int, expected: str) -> None:
    """A frame of exactly the limit is a frame; one byte more is oversized."""
    payload = b"M" * size
    (result,) = FrameDecoder(100, keep=10).feed(frame(payload))
    if expected == "frame":
        assert result == Frame(payload)
    else:
        assert result == OversizedFrame(payload[:10], size)


def test_oversized_frame_keeps_only_the_prefix_while_streaming() -> None:
    """A huge frame fed in chunks is never buffered past the prefix; its full size is reported."""
    decoder = FrameDecoder(1000, keep=64)
    head = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|BIG|P|2.5.1\r"
    body = b"OBX|" + b"x" * 9_996
    assert decoder.feed(b"\x0b" + head) == []
    results = []
    for start in range(0, len(body), 700):
        results += decoder.feed(body[start : start + 700])
        assert decoder.buffered <= 1000  # never more than the limit while reading
    results += decoder.feed(b"\x1c\r" + frame(MSG_A))
    assert results == [OversizedFrame((head + body)[:64], len(head) + len(body)), Frame(MSG_A)]
    assert decoder.buffered == 0


def test_garbage_without_start_block_over_limit_raises() -> None:
    """More bytes than the garbage limit with no start block: not an MLLP sender."""
    decoder = FrameDecoder(1024, max_garbage=100)
    decoder.feed(b"g" * 100)
    with pytest.raises(NoStartBlock):
        decoder.feed(b"g")


def test_garbage_count_restarts_at_each_start_block() -> None:
    """The garbage limit is per run of bytes without a start block, not per connection."""
    decoder = FrameDecoder(1024, max_garbage=100)
    for _ in range(5):
        assert decoder.feed(b"g" * 90 + frame(MSG_A)) == [Frame(MSG_A)]
    assert decoder.discarded == 450


def test_empty_frame() -> None:
    """An empty frame is a frame with no payload (the service answers it)."""
    assert FrameDecoder(1024).feed(b"\x0b\x1c\r") == [Frame(b"")]
