"""The ES sink's handler without a broker: records from an in-memory source, dead letters into an
in-memory sink, documents into an in-memory bulk endpoint that answers like Elasticsearch's
(per-item statuses). The real-stack behaviour (outages, restarts) is in tests/reliability."""
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from consumers.es_sink import EsSinkHandler
from marketpulse import wire
from marketpulse.consumer_loop import ConsumerLoop, MemorySink, MemorySource, Stopped
from marketpulse.schemas import LabeledEvent
from marketpulse.settings import Settings
from marketpulse.wire import InRecord

T0 = datetime.now(timezone.utc).replace(microsecond=0)
DAY_INDEX = f"marketpulse-events-{T0:%Y.%m.%d}"
S = Settings()


def api_error(status: int, error_type: str = "illegal_argument_exception"):
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import ApiError

    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0,
                           node=NodeConfig("http", "127.0.0.1", 9200))
    return ApiError(f"status {status}", meta, {"error": {"type": error_type}, "status": status})


BLOCKED_WRITE = (403, "cluster_block_exception")  # index.blocks.write / read_only
FLOOD_STAGE = (429, "cluster_block_exception")    # read_only_allow_delete, set by the disk watermark


class MemoryBulk:
    """Elasticsearch's bulk API in memory: ``answers`` maps a doc id to the statuses it gets, in turn
    (a status, or (status, error type)); a request holding an id of ``refuse_whole`` fails as a whole
    with HTTP 400 (as an over-long _id does in Elasticsearch)."""

    def __init__(self, answers=None, refuse_whole=()):
        self.docs: dict[tuple[str, str], dict] = {}
        self.answers = {k: list(v) for k, v in (answers or {}).items()}
        self.refuse_whole = set(refuse_whole)
        self.requests = 0
        self.indices = self  # ensure_event_template calls es.indices.put_index_template
        self.ilm = self  # ... and es.ilm.put_lifecycle (this one answers as a cluster without ILM)

    def put_index_template(self, **kw):
        self.template = kw

    def put_lifecycle(self, **kw):
        from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
        from elasticsearch import ApiError

        meta = ApiResponseMeta(405, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
        raise ApiError("no lifecycle management here", meta, {})

    def search(self, index, query, source=False, size=10):
        ids = set(query["bool"]["filter"][0]["ids"]["values"])
        keep = query["bool"]["must_not"][0]["term"]["_index"]
        return {"hits": {"hits": [{"_index": i, "_id": d} for (i, d) in self.docs if d in ids and i != keep][:size]}}

    def bulk(self, operations, refresh=False):
        if all("delete" in op for op in operations):
            for op in operations:
                self.docs.pop((op["delete"]["_index"], op["delete"]["_id"]), None)
            return {"items": [{"delete": {"status": 200}} for _ in operations]}
        self.requests += 1
        if any(m["index"]["_id"] in self.refuse_whole for m in operations[::2]):
            raise api_error(400)
        items = []
        for meta, doc in zip(operations[::2], operations[1::2]):
            index, _id = meta["index"]["_index"], meta["index"]["_id"]
            queue = self.answers.get(_id)
            answer = queue.pop(0) if queue else 201
            status, error_type = answer if isinstance(answer, tuple) else (answer, None)
            if status < 300:
                self.docs[(index, _id)] = doc
            elif status == 400:
                error_type = error_type or "mapper_parsing_exception"
            items.append({"index": {"_index": index, "_id": _id, "status": status,
                                    **({"error": {"type": error_type, "reason": "bad"}} if error_type else {})}})
        return {"items": items}


def event(i: int, **kw) -> LabeledEvent:
    return LabeledEvent(id=f"e{i}", source="social", source_name="x", published_at=T0, text=f"post {i}",
                        sentiment="negative", sentiment_scores={"negative": 0.9}, topic="Earnings",
                        topic_scores=[], model_version="m", processed_at=T0, **kw)


def record(out: wire.OutRecord, offset: int) -> InRecord:
    return InRecord(out.value, out.key, out.topic, 0, offset, out.headers)


def run(records, es, batch=10):
    dead = MemorySink()
    source = MemorySource(records, batch=batch)
    handler = EsSinkHandler(S, es, dead, threading.Event(), max_backoff_s=0.01)
    loop = ConsumerLoop(source, handler, name="test")
    while not source.exhausted:
        loop.step()
    return source, dead


def test_labeled_events_are_indexed_by_publication_day_under_their_doc_id_and_then_committed():
    es = MemoryBulk()
    recs = [record(wire.encode_labeled(event(i), "events"), i) for i in range(3)]
    source, dead = run(recs, es)
    assert set(es.docs) == {(DAY_INDEX, f"social:e{i}") for i in range(3)}
    assert es.docs[(DAY_INDEX, "social:e0")]["text"] == "post 0"
    assert source.committed == 3 and not dead.delivered


def test_a_redelivered_event_overwrites_its_document():
    es = MemoryBulk()
    rec = record(wire.encode_labeled(event(1), "events"), 0)
    run([rec, rec], es, batch=1)
    assert len(es.docs) == 1


def test_records_that_are_not_labeled_events_are_dead_lettered_with_the_reason_and_the_rest_indexed():
    es = MemoryBulk()
    good = record(wire.encode_labeled(event(1), "events"), 0)
    newer_major = InRecord(good.value, good.key, "events", 0, 1, ((wire.SCHEMA_HEADER, b"labeled-event/2.0"),))
    junk = InRecord(b"{not json", b"k", "events", 0, 2)
    source, dead = run([good, newer_major, junk], es)
    reasons = [json.loads(r.value)["reason"] for r in dead.delivered]
    assert reasons == ["schema_version", "not_json"]
    assert {json.loads(r.value)["stage"] for r in dead.delivered} == {"es_sink"}
    assert len(es.docs) == 1 and source.committed == 3


def test_a_document_elasticsearch_refuses_for_good_is_dead_lettered_and_the_rest_of_the_bulk_stands():
    es = MemoryBulk({"social:e2": [400]})
    recs = [record(wire.encode_labeled(event(i), "events"), i) for i in range(4)]
    source, dead = run(recs, es)
    assert len(es.docs) == 3 and source.committed == 4
    [dl] = [json.loads(r.value) for r in dead.delivered]
    assert dl["reason"] == "es_rejected" and "mapper_parsing_exception" in dl["detail"]
    assert dl["source"]["offset"] == 2


def test_throttled_documents_are_retried_until_acknowledged_before_the_commit():
    es = MemoryBulk({"social:e0": [429, 503]})
    source, dead = run([record(wire.encode_labeled(event(0), "events"), 0)], es)
    assert es.requests == 3 and len(es.docs) == 1 and source.committed == 1 and not dead.delivered


def test_a_stop_while_elasticsearch_refuses_leaves_the_batch_uncommitted():
    es = MemoryBulk({"social:e0": [503] * 1000})
    stop = threading.Event()
    source = MemorySource([record(wire.encode_labeled(event(0), "events"), 0)])
    handler = EsSinkHandler(S, es, MemorySink(), stop, max_backoff_s=0.05)
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Stopped):
        ConsumerLoop(source, handler, name="test").step()
    assert source.committed == 0 and not es.docs


def test_a_document_that_makes_elasticsearch_refuse_the_whole_bulk_is_isolated_and_dead_lettered():
    es = MemoryBulk(refuse_whole={"social:e5"})
    recs = [record(wire.encode_labeled(event(i), "events"), i) for i in range(8)]
    source, dead = run(recs, es)
    assert len(es.docs) == 7 and source.committed == 8
    [dl] = [json.loads(r.value) for r in dead.delivered]
    assert dl["reason"] == "es_rejected" and dl["source"]["offset"] == 5 and "HTTP 400" in dl["detail"]


def test_an_authentication_error_is_not_blamed_on_the_documents():
    class Unauthorized(MemoryBulk):
        def bulk(self, operations, refresh=False):
            raise api_error(401)

    with pytest.raises(Exception, match="401"):
        run([record(wire.encode_labeled(event(0), "events"), 0)], Unauthorized())


def test_events_published_long_ago_go_to_the_archive_index():
    es = MemoryBulk()
    old = event(9).model_copy(update={"published_at": datetime(2001, 9, 11, tzinfo=timezone.utc)})
    run([record(wire.encode_labeled(old, "events"), 0)], es)
    assert set(es.docs) == {("marketpulse-events-archive", "social:e9")}


def test_an_event_re_sent_with_its_time_on_another_day_is_stored_once():
    es = MemoryBulk()
    first = event(1)
    moved = first.model_copy(update={"published_at": first.published_at - timedelta(days=1), "text": "corrected"})
    run([record(wire.encode_labeled(first, "events"), 0), record(wire.encode_labeled(moved, "events"), 1)],
        es, batch=1)
    assert list(es.docs) == [(f"marketpulse-events-{moved.published_at:%Y.%m.%d}", "social:e1")]
    assert next(iter(es.docs.values()))["text"] == "corrected"


def test_documents_of_a_write_blocked_index_wait_for_the_block_to_be_lifted_instead_of_being_dead_lettered():
    es = MemoryBulk({"social:e0": [BLOCKED_WRITE] * 3, "social:e1": [BLOCKED_WRITE, FLOOD_STAGE]})
    recs = [record(wire.encode_labeled(event(i), "events"), i) for i in range(3)]
    source, dead = run(recs, es)
    assert es.requests == 4 and len(es.docs) == 3 and source.committed == 3 and not dead.delivered


def test_a_mapping_error_in_a_blocked_bulk_is_still_dead_lettered_once_the_block_is_lifted():
    es = MemoryBulk({"social:e0": [BLOCKED_WRITE, 400], "social:e1": [BLOCKED_WRITE]})
    recs = [record(wire.encode_labeled(event(i), "events"), i) for i in range(2)]
    source, dead = run(recs, es)
    assert set(es.docs) == {(DAY_INDEX, "social:e1")} and source.committed == 2
    [dl] = [json.loads(r.value) for r in dead.delivered]
    assert dl["reason"] == "es_rejected" and "mapper_parsing_exception" in dl["detail"] and dl["source"]["offset"] == 0


def test_a_whole_bulk_refused_by_a_cluster_block_waits_but_a_forbidden_one_is_an_error():
    class BlockedTwice(MemoryBulk):
        def bulk(self, operations, refresh=False):
            if self.requests < 2:
                self.requests += 1
                raise api_error(403, "cluster_block_exception")
            return super().bulk(operations, refresh)

    es = BlockedTwice()
    source, dead = run([record(wire.encode_labeled(event(0), "events"), 0)], es)
    assert es.requests == 3 and len(es.docs) == 1 and source.committed == 1 and not dead.delivered

    class Forbidden(MemoryBulk):
        def bulk(self, operations, refresh=False):
            raise api_error(403, "security_exception")

    with pytest.raises(Exception, match="403"):
        run([record(wire.encode_labeled(event(0), "events"), 0)], Forbidden())


def test_a_stop_during_a_wait_ends_it_at_once_without_another_request():
    es = MemoryBulk({"social:e0": [BLOCKED_WRITE] * 1000})
    stop = threading.Event()
    source = MemorySource([record(wire.encode_labeled(event(0), "events"), 0)])
    handler = EsSinkHandler(S, es, MemorySink(), stop, max_backoff_s=30.0)
    threading.Timer(0.1, stop.set).start()
    with pytest.raises(Stopped):
        ConsumerLoop(source, handler, name="test").step()
    assert es.requests == 1 and source.committed == 0 and not es.docs
