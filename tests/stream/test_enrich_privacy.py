"""PII: emails and phones redacted without touching market numbers; handles pseudonymised with a key."""
import pytest

from stream.enrich.privacy import pseudonym, pseudonymize_author, pseudonymize_handles, redact_pii


@pytest.mark.parametrize("text", [
    "mail jane.doe+stocks@example.com now",
    "contact IR@investor.example.co.uk",
])
def test_emails_redacted(text):
    out = redact_pii(text)
    assert "[email]" in out and "@" not in out


@pytest.mark.parametrize("phone", [
    "+1 212-555-0100", "(212) 555-0100", "212-555-0100", "212.555.0100", "+44 20 7946 0958",
    "1-800-555-0199", "+49 30 1234 5678",
])
def test_phone_numbers_redacted(phone):
    assert redact_pii(f"call {phone} today") == "call [phone] today"


@pytest.mark.parametrize("text", [
    "Apple closed at $1,234.56, up 12.5% on 2024-05-01",
    "Revenue rose 3.2% y/y to $94.9 billion in 2023",
    "$AAPL $BRK.B and $TSLA",
    "filed its 10-K on 05/01/2024 at 16:30",
    "volume 12,345,678 shares; S&P 500 at 5,123.45",
    "EPS guidance 1.23-1.45; target 150/165/180",
    "Dow +1.2% to 39,807.37; yields at 4.25%",
    "sold 100 @12.50",
    "ISIN US0378331005 and CUSIP 037833100",
])
def test_market_numbers_are_not_redacted(text):
    assert redact_pii(text) == text


def test_pseudonym_is_stable_keyed_and_case_insensitive():
    a = pseudonym("@TraderJoe", "key-1")
    assert a == pseudonym("traderjoe", "key-1") == pseudonym("@traderjoe", b"key-1")
    assert a != pseudonym("@traderjoe", "key-2")
    assert a != pseudonym("@someoneelse", "key-1")
    assert a.startswith("@user_") and len(a) == len("@user_") + 8


def test_handles_in_text_replaced_but_not_emails_or_prices():
    out = pseudonymize_handles("RT @elon: buy $TSLA, ping @bob_99. bought 10 @12", "k")
    assert "@elon" not in out and "@bob_99" not in out
    assert out.startswith(f"RT {pseudonym('elon', 'k')}:")
    assert "$TSLA" in out and "10 @12" in out


def test_author_becomes_pseudonym():
    assert pseudonymize_author("@TraderJoe", "k") == pseudonym("traderjoe", "k")
    assert pseudonymize_author("  ", "k") is None
