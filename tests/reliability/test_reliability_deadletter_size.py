"""A dead letter always fits in one Kafka message (1 MB by default), whatever it rejects: otherwise
sending it fails, the worker's batch is never acknowledged and the partition stalls on that record."""
import base64
import json

import pytest

from marketpulse.wire import Rejection, deadletter_record

pytestmark = pytest.mark.reliability
KAFKA_MESSAGE_LIMIT = 1_000_000  # the producer's default max_request_size


@pytest.mark.parametrize("original", [
    b"x" * 1_000_000,                       # plain ASCII
    b"\x01" * 900_000,                      # control characters: 6 bytes each once JSON-escaped
    "\U0001F680".encode() * 250_000,        # 4-byte characters: a surrogate pair each when escaped
    b"\xff" * 900_000,                      # not UTF-8: base64
], ids=["ascii", "control", "emoji", "binary"])
def test_deadletter_of_a_huge_record_fits_in_a_kafka_message(original):
    dl = deadletter_record(original, Rejection("oversize", "too big"), "raw", 0, 7)
    assert len(json.dumps(dl).encode()) < 0.6 * KAFKA_MESSAGE_LIMIT  # with room to spare
    assert dl["original_truncated"] and dl["original_size"] == len(original)
    kept = base64.b64decode(dl["original"]) if dl["original_encoding"] == "base64" else dl["original"].encode()
    assert kept and original.startswith(kept)


def test_deadletter_of_any_record_that_could_be_valid_keeps_the_whole_original():
    original = json.dumps({"text": "word " * 36_000}).encode()  # beyond the default 20,000-character text limit
    dl = deadletter_record(original, Rejection("oversize", "too big"), "raw", 0, 7)
    assert dl["original"].encode() == original and "original_truncated" not in dl
