"""Alert configurations for replay: a file's 'alerts:' keys override the live settings; every
problem names the file."""
import pytest

from consumers.replay.configs import CURRENT, load_alert_config, load_alert_configs
from marketpulse.settings import AlertSettings


def test_a_file_overrides_only_the_keys_it_sets(tmp_path):
    f = tmp_path / "strict.yaml"
    f.write_text("alerts:\n  threshold: 5.0\n")
    name, cfg = load_alert_config(f, AlertSettings())
    assert name == "strict" and cfg.threshold == 5.0
    assert cfg.cooldown_buckets == load_alert_config(CURRENT, AlertSettings())[1].cooldown_buckets


@pytest.mark.parametrize("body, says", [
    ("alerts:\n  thresold: 5.0\n", "unknown key 'thresold' (did you mean 'threshold'?)"),
    ("alerts:\n  threshold: high\n", "threshold"),
    ("alerts:\n  threshold: 9.0\n  critical_threshold: 8.0\n", "clear_threshold < threshold <= critical_threshold"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_a_bad_file_is_refused_with_its_name_and_the_key(tmp_path, body, says):
    f = tmp_path / "mine.yaml"
    f.write_text(body)
    with pytest.raises(ValueError) as err:
        load_alert_config(f, AlertSettings())
    assert str(f) in str(err.value) and says in str(err.value)


def test_missing_files_and_repeated_names_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_alert_config(tmp_path / "nope.yaml", AlertSettings())
    (tmp_path / "a").mkdir()
    for p in (tmp_path / "x.yaml", tmp_path / "a" / "x.yaml"):
        p.write_text("alerts: {}\n")
    with pytest.raises(ValueError, match="repeated: x"):
        load_alert_configs([str(tmp_path / "x.yaml"), str(tmp_path / "a" / "x.yaml")], AlertSettings())
