"""PII: emails and phones redacted without touching market numbers; handles pseudonymised with a key."""
import re

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


# -- what is redacted and what is not, both directions ------------------------------------------
REDACTED = [
    # (text, the token it must become) - each case is one sentence a post or article could hold
    ("wire to DE89 3704 0044 0532 0130 00 today", "[iban]"),
    ("IBAN DE89370400440532013000", "[iban]"),
    ("pay GB82 WEST 1234 5698 7654 32 please", "[iban]"),
    ("FR14 2004 1010 0505 0001 3M02 606 is the account", "[iban]"),
    ("NL91ABNA0417164300 for refunds", "[iban]"),
    ("card 4111 1111 1111 1111 exp 12/27", "[card]"),
    ("card 4111-1111-1111-1111 leaked", "[card]"),
    ("my visa 4012888888881881", "[card]"),
    ("amex 3782 822463 10005 charged", "[card]"),
    ("mastercard 5555555555554444 stolen", "[card]"),
    ("SSN 123-45-6789 in the filing", "[ssn]"),
    ("her ssn is 078-05-1120!", "[ssn]"),
    ("call +1 212-555-0100 now", "[phone]"),
    ("UK desk 020 7946 0958 after 9", "[phone]"),
    ("Berlin office 030 12345678", "[phone]"),
    ("Paris 01 23 45 67 89 for press", "[phone]"),
    ("NL 06-12345678 whatsapp", "[phone]"),
    ("call 212 555 0100 for details", "[phone]"),
    ("tel: 212 555 0100", "[phone]"),
    ("Phone 415 555 2671 ext", "[phone]"),
    ("(212) 555-0100 is the IR line", "[phone]"),
    ("+49 (0)30 1234 5678 DE desk", "[phone]"),
    ("write jane(at)example(dot)com", "[email]"),
    ("jane [at] example [dot] co [dot] uk for tips", "[email]"),
    ("tips: john.doe {at} corp.example.com", "[email]"),
    ("JANE (AT) EXAMPLE (DOT) COM", "[email]"),
    ("josé.garcía@exämple.de wrote", "[email]"),
    ("mail 用户@例子.公司 now", "[email]"),
    ("ir@investor.example.co.uk", "[email]"),
]

KEPT = [
    "Revenue 212 555 0100 units",
    "shipped 415 555 2671 parts in Q3",
    "ISIN US0378331005 and CUSIP 037833100",
    "order DE12345 shipped",
    "SEDOL B0YBKJ7 and ticker $BRK.B",
    "EPS 1.23, revenue $94.9B, guidance 4111 to 4150",
    "account balance 4111111111111112 is not a card (Luhn fails)",
    "reference 1234 5678 9012 3456 fails Luhn",
    "filed 10-K and 10-Q on 2024-05-01 at 16:30",
    "S&P 500 at 5,123.45; Dow 39,807.37",
    "SSN-like 000-12-3456 is never issued",
    "area 666-12-3456 is never issued",
    "date 2024-05-01 and range 123-45",
    "meet at noon, dot the i's",
    "price target 150/165/180",
    "volume 12,345,678 shares",
    "the 2023 10-K, item 7",
    "yields 4.25% and 0.5% spread",
    "version 1.2@3.4 released",
    "sold 100 @12.50",
    "GB0002634946 is an ISIN",
    "phone makers rose 3.5%",
]


@pytest.mark.parametrize("text,token", REDACTED)
def test_personal_data_is_redacted(text, token):
    out = redact_pii(text)
    assert token in out, out
    # nothing of the identifier survives: no four digits in a row, no '@'
    assert not re.search(r"\d{4}", out.replace(" ", "")), out
    assert "@" not in out and "(at)" not in out.lower() and "[at]" not in out.lower(), out


@pytest.mark.parametrize("text", KEPT)
def test_market_text_that_only_looks_personal_is_kept(text):
    assert redact_pii(text) == text


@pytest.mark.parametrize("handle", ["@José_Ñ", "@трейдер", "@株式投資家", "@trader_99"])
def test_non_ascii_handles_are_pseudonymised_whole(handle):
    out = pseudonymize_handles(f"{handle} says sell", "k")
    assert out.startswith("@user_") and out.endswith(" says sell") and handle[1:] not in out


@pytest.mark.parametrize("url,expected", [
    ("https://news.example.com/markets/tsla-recall?email=jane%40example.com&utm_source=x",
     "https://news.example.com/markets/tsla-recall"),
    ("https://jane:secret@feeds.example.com/rss#top", "https://feeds.example.com/rss"),
    ("mailto:jane@example.com", None),
    ("tel:+12125550100", None),
    ("https://example.com/u/jane@example.com/post", "https://example.com/u/[email]/post"),
    ("https://www.reuters.com/business/autos/tesla-recalls-2024-05-01/",
     "https://www.reuters.com/business/autos/tesla-recalls-2024-05-01/"),
])
def test_links_keep_where_they_point_and_lose_who_read_them(url, expected):
    from stream.enrich.privacy import redact_url

    assert redact_url(url) == expected


def test_the_url_field_is_redacted_before_storage():
    from datetime import datetime, timezone

    from marketpulse.schemas import RawEvent
    from stream.enrich.pipeline import scrub

    raw = RawEvent(id="n1", source="news", source_name="wire", text="Tesla recalls cars",
                   published_at=datetime(2026, 11, 23, tzinfo=timezone.utc),
                   url="https://news.example.com/a?subscriber=jane%40example.com")
    assert scrub(raw, "k").url == "https://news.example.com/a"
