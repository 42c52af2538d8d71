"""The events index template carries the settings that shape each daily index."""
from consumers.es_index import ensure_event_template
from marketpulse.settings import ElasticsearchSettings


class _Indices:
    def put_index_template(self, **kw):
        self.template = kw


class _NoIlm:
    def put_lifecycle(self, name, policy):
        from elasticsearch import ApiError

        raise ApiError("no lifecycle module", type("Meta", (), {"status": 400})(), {})


class _FakeEs:
    def __init__(self):
        self.indices, self.ilm = _Indices(), _NoIlm()


def template_settings(es_settings: ElasticsearchSettings) -> dict:
    es = _FakeEs()
    ensure_event_template(es, es_settings)
    return es.indices.template["template"]["settings"]


def test_the_refresh_interval_is_a_setting_of_the_daily_indices():
    assert template_settings(ElasticsearchSettings(index_prefix="ev"))["refresh_interval"] == "1s"  # the default
    s = template_settings(ElasticsearchSettings(index_prefix="ev", refresh_interval="200ms", number_of_replicas=1))
    assert (s["refresh_interval"], s["number_of_replicas"], s["number_of_shards"]) == ("200ms", 1, 1)
