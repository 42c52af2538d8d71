"""Input files for the producer: JSONL, CSV, RSS 2.0 and Atom, with defaults and per-record rejects."""
import json
from datetime import datetime, timezone

import pytest

from marketpulse.schemas import stable_id
from stream.sources.files import FileFormatError, detect_format, parse_datetime, read_records

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_format_from_extension():
    assert detect_format("a.jsonl") == detect_format("a.NDJSON") == detect_format("a.json") == "jsonl"
    assert detect_format("a.csv") == "csv"
    assert detect_format("a.xml") == detect_format("a.rss") == detect_format("a.atom") == "xml"
    with pytest.raises(FileFormatError, match="unknown input format '.txt'"):
        detect_format("notes.txt")
    with pytest.raises(FileFormatError):
        read_records("notes.txt", "news")


def test_dates_iso_and_rfc822():
    assert parse_datetime("2024-05-01T12:00:00Z") == NOW
    assert parse_datetime("2024-05-01 14:00:00+02:00") == NOW
    assert parse_datetime("Wed, 01 May 2024 12:00:00 GMT") == NOW
    assert parse_datetime("Wed, 01 May 2024 08:00:00 -0400") == NOW
    assert parse_datetime("2024-05-01T12:00:00") == NOW  # naive = UTC
    assert parse_datetime("soon") is None


def test_jsonl_defaults_and_rejects(tmp_path):
    p = tmp_path / "wire.jsonl"
    p.write_text("\n".join([
        json.dumps({"text": "Apple beats estimates", "url": "https://e.com/1"}),
        json.dumps({"id": "x2", "text": "Fed holds", "published_at": "Wed, 01 May 2024 12:00:00 GMT",
                    "source_name": "Bloomberg", "extra": True}),
        "",
        "{not json",
        json.dumps([1]),
        json.dumps({"text": "   "}),
        json.dumps({"text": "x", "published_at": "someday"}),
        json.dumps({"text": "A post", "source": "social"}),
    ]) + "\n")
    recs = list(read_records(p, "news", now=NOW))
    assert [r.line for r in recs] == [1, 2, 4, 5, 6, 7, 8]
    a, b = recs[0].event, recs[1].event
    assert a.id == stable_id("news", "https://e.com/1", "Apple beats estimates")
    assert a.source == "news" and a.source_name == "wire" and a.published_at == NOW
    assert b.id == "x2" and b.source_name == "Bloomberg" and b.published_at == NOW
    assert [r.reason for r in recs[2:7]] == ["not_json", "not_object", "empty_text", "bad_date", None]
    assert recs[6].event.source == "social"  # a record's own source wins over the default


def test_json_array_file(tmp_path):
    p = tmp_path / "items.json"
    p.write_text(json.dumps([{"text": "one"}, {"text": "two"}]))
    assert [r.event.text for r in read_records(p, "social", now=NOW)] == ["one", "two"]


def test_csv_with_header(tmp_path):
    p = tmp_path / "posts.csv"
    p.write_text('id,text,author,published_at,unused\n'
                 'p1,"$TSLA ripping, again",@bob,2024-05-01T12:00:00Z,zzz\n'
                 ',Just text,,,\n'
                 'p3,,@carol,,\n', encoding="utf-8")
    recs = list(read_records(p, "social", now=NOW))
    assert recs[0].event.text == "$TSLA ripping, again" and recs[0].event.author == "@bob"
    assert recs[1].event.id == stable_id("social", None, "Just text")
    assert recs[1].event.source_name == "posts"
    assert recs[2].reason == "schema" and "text" in recs[2].detail


def test_csv_without_text_column_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("id,body\n1,hello\n")
    with pytest.raises(FileFormatError, match="text"):
        list(read_records(p, "news"))


RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>
  <title>Example Markets Wire</title>
  <item>
    <title>Tesla shares plunge after recall</title>
    <link>https://example.com/tesla</link>
    <description>&lt;p&gt;Tesla &amp;amp; its &lt;b&gt;recall&lt;/b&gt;.&lt;/p&gt;</description>
    <pubDate>Wed, 01 May 2024 12:00:00 GMT</pubDate>
    <guid>tsla-123</guid>
    <dc:creator>Jane Reporter</dc:creator>
  </item>
  <item><title>Headline only</title><link>https://example.com/h</link></item>
  <item><description>no date here</description><pubDate>not a date</pubDate></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom Finance</title>
  <entry>
    <title>Fed holds rates</title>
    <link rel="alternate" href="https://example.com/fed"/>
    <id>urn:uuid:1</id>
    <updated>2024-05-01T13:00:00Z</updated>
    <published>2024-05-01T12:00:00Z</published>
    <summary type="html">&lt;p&gt;The Fed held rates steady.&lt;/p&gt;</summary>
    <author><name>Desk</name></author>
  </entry>
</feed>"""


def test_rss_items(tmp_path):
    p = tmp_path / "feed.rss"
    p.write_text(RSS)
    a, b, c = read_records(p, "news", now=NOW)
    ev = a.event
    assert ev.id == "tsla-123" and ev.source_name == "Example Markets Wire"
    assert ev.title == "Tesla shares plunge after recall" and ev.text == "Tesla & its recall."
    assert ev.published_at == NOW and ev.url == "https://example.com/tesla" and ev.author == "Jane Reporter"
    assert b.event.text == "Headline only" and b.event.published_at == NOW
    assert b.event.id == stable_id("news", "https://example.com/h", "Headline only")
    assert c.reason == "bad_date"


def test_atom_entries(tmp_path):
    p = tmp_path / "feed.atom"
    p.write_text(ATOM)
    (r,) = read_records(p, "news", now=NOW)
    ev = r.event
    assert (ev.id, ev.source_name, ev.title, ev.text) == ("urn:uuid:1", "Atom Finance", "Fed holds rates",
                                                          "The Fed held rates steady.")
    assert ev.published_at == NOW and ev.url == "https://example.com/fed" and ev.author == "Desk"


def test_broken_xml_is_a_clear_error(tmp_path):
    p = tmp_path / "broken.xml"
    p.write_text("<rss><channel><item>")
    with pytest.raises(FileFormatError, match="XML"):
        list(read_records(p, "news"))
    p.write_text("<html><body/></html>")
    with pytest.raises(FileFormatError, match="RSS"):
        list(read_records(p, "news"))


def test_one_absurdly_nested_jsonl_line_is_reported_and_the_rest_of_the_file_is_read(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"text": "one"}) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n"
                 + json.dumps({"text": "three"}) + "\n")
    out = list(read_records(p, "news"))
    assert [(r.line, r.reason) for r in out] == [(1, None), (2, "not_json"), (3, None)]
    assert out[1].detail == "nesting too deep"


def test_a_csv_field_beyond_the_csv_module_limit_is_reported_for_its_row_and_the_rest_is_read(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text('text,title\nfirst,a\n"' + "x" * 300_000 + '",b\nthird,c\n')
    out = list(read_records(p, "news"))
    assert [(r.line, r.reason) for r in out] == [(2, None), (3, "oversize"), (4, None)]
    assert [r.event.text for r in out if r.event] == ["first", "third"]
