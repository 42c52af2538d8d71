"""Curated company dictionary: large-cap US names -> tickers, with the aliases seen in headlines.

Used by ticker linking (``tickers.py``) and by the synthetic generator. Names are matched
case-sensitively on word boundaries; ``exclude`` holds patterns for the common non-company uses of
ambiguous names ("apple pie" is lower case anyway, but "Big Apple" or "Price Target" are not).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Company:
    symbol: str
    name: str                      # short name as used in headlines
    aliases: tuple[str, ...] = ()  # other spellings that link to the same symbol
    sector: str = ""
    exclude: tuple[str, ...] = ()  # regexes; a name match inside one of these is not a mention

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _c(symbol: str, name: str, aliases: tuple[str, ...] = (), sector: str = "", exclude: tuple[str, ...] = ()) -> Company:
    return Company(symbol, name, aliases, sector, exclude)


TECH, COMM, CONS, STAPLES, FIN, HEALTH, ENERGY, IND, MAT, UTIL = (
    "Technology", "Communication", "Consumer", "Consumer Staples", "Financials", "Health Care",
    "Energy", "Industrials", "Materials", "Utilities",
)

COMPANIES: tuple[Company, ...] = (
    _c("AAPL", "Apple", ("Apple Inc",), TECH,
       (r"Big Apple", r"Apple (?:pie|juice|cider|orchard|tree|sauce)s?", r"Apple Daily")),
    _c("MSFT", "Microsoft", (), TECH),
    _c("GOOGL", "Alphabet", ("Google",), COMM),
    _c("AMZN", "Amazon", ("Amazon.com", "AWS"), CONS, (r"Amazon (?:rainforest|river|basin|jungle)s?",)),
    _c("META", "Meta", ("Meta Platforms", "Facebook", "Instagram", "WhatsApp"), COMM,
       (r"Meta-analys[ie]s", r"Meta [Aa]nalys[ie]s")),
    _c("NVDA", "Nvidia", ("NVIDIA",), TECH),
    _c("TSLA", "Tesla", (), CONS, (r"Nikola Tesla", r"Tesla coils?")),
    _c("BRK.B", "Berkshire Hathaway", ("Berkshire",), FIN),
    _c("JPM", "JPMorgan", ("JPMorgan Chase", "JP Morgan", "J.P. Morgan", "JPMorgan Chase & Co"), FIN),
    _c("V", "Visa", (), FIN,
       (r"(?:H-1B|H1B|[Ww]ork|[Ss]tudent|[Tt]ravel|[Gg]olden|[Tt]ourist) [Vv]isas?",
        r"Visas\b", r"Visa (?:application|requirement|waiver|program|rule|ban|holder)s?")),
    _c("MA", "Mastercard", ("MasterCard",), FIN),
    _c("UNH", "UnitedHealth", ("UnitedHealth Group",), HEALTH),
    _c("JNJ", "Johnson & Johnson", ("J&J",), HEALTH),
    _c("PG", "Procter & Gamble", ("P&G",), STAPLES),
    _c("XOM", "Exxon Mobil", ("Exxon", "ExxonMobil"), ENERGY),
    _c("CVX", "Chevron", (), ENERGY),
    _c("HD", "Home Depot", (), CONS),
    _c("LOW", "Lowe's", ("Lowe's Companies",), CONS),
    _c("WMT", "Walmart", ("Wal-Mart",), STAPLES),
    _c("COST", "Costco", (), STAPLES),
    _c("KO", "Coca-Cola", (), STAPLES),
    _c("PEP", "PepsiCo", ("Pepsi",), STAPLES),
    _c("MCD", "McDonald's", (), CONS),
    _c("SBUX", "Starbucks", (), CONS),
    _c("NKE", "Nike", (), CONS),
    _c("DIS", "Disney", ("Walt Disney",), COMM),
    _c("NFLX", "Netflix", (), COMM),
    _c("CMCSA", "Comcast", (), COMM),
    _c("VZ", "Verizon", (), COMM),
    _c("T", "AT&T", (), COMM),
    _c("TMUS", "T-Mobile", ("T-Mobile US",), COMM),
    _c("ORCL", "Oracle", (), TECH, (r"Oracle of Omaha",)),
    _c("CRM", "Salesforce", (), TECH),
    _c("ADBE", "Adobe", (), TECH),
    _c("INTC", "Intel", (), TECH),
    _c("AMD", "AMD", ("Advanced Micro Devices",), TECH),
    _c("AVGO", "Broadcom", (), TECH),
    _c("QCOM", "Qualcomm", (), TECH),
    _c("TXN", "Texas Instruments", (), TECH),
    _c("CSCO", "Cisco", ("Cisco Systems",), TECH),
    _c("IBM", "IBM", (), TECH),
    _c("MU", "Micron", ("Micron Technology",), TECH),
    _c("AMAT", "Applied Materials", (), TECH),
    _c("LRCX", "Lam Research", (), TECH),
    _c("INTU", "Intuit", (), TECH),
    _c("NOW", "ServiceNow", (), TECH),
    _c("PLTR", "Palantir", (), TECH),
    _c("DELL", "Dell", ("Dell Technologies",), TECH),
    _c("PYPL", "PayPal", (), FIN),
    _c("UBER", "Uber", (), IND),
    _c("ABNB", "Airbnb", (), CONS),
    _c("BKNG", "Booking Holdings", (), CONS),
    _c("MAR", "Marriott", ("Marriott International",), CONS),
    _c("SHOP", "Shopify", (), TECH),
    _c("SPOT", "Spotify", (), COMM),
    _c("PINS", "Pinterest", (), COMM),
    _c("COIN", "Coinbase", (), FIN),
    _c("HOOD", "Robinhood", ("Robinhood Markets",), FIN, (r"Robin Hood",)),
    _c("BAC", "Bank of America", ("BofA",), FIN),
    _c("WFC", "Wells Fargo", (), FIN),
    _c("C", "Citigroup", ("Citi",), FIN),
    _c("GS", "Goldman Sachs", ("Goldman",), FIN),
    _c("MS", "Morgan Stanley", (), FIN),
    _c("AXP", "American Express", ("Amex",), FIN),
    _c("BLK", "BlackRock", (), FIN),
    _c("SCHW", "Charles Schwab", ("Schwab",), FIN),
    _c("COF", "Capital One", (), FIN),
    _c("SPGI", "S&P Global", (), FIN),
    _c("MCO", "Moody's", (), FIN),
    _c("CME", "CME Group", (), FIN),
    _c("PFE", "Pfizer", (), HEALTH),
    _c("MRK", "Merck", ("Merck & Co",), HEALTH),
    _c("ABBV", "AbbVie", (), HEALTH),
    _c("LLY", "Eli Lilly", ("Lilly",), HEALTH),
    _c("MRNA", "Moderna", (), HEALTH),
    _c("GILD", "Gilead", ("Gilead Sciences",), HEALTH),
    _c("AMGN", "Amgen", (), HEALTH),
    _c("BMY", "Bristol Myers Squibb", ("Bristol-Myers Squibb", "Bristol-Myers"), HEALTH),
    _c("CVS", "CVS Health", ("CVS",), HEALTH),
    _c("ABT", "Abbott", ("Abbott Laboratories",), HEALTH),
    _c("TMO", "Thermo Fisher", ("Thermo Fisher Scientific",), HEALTH),
    _c("MDT", "Medtronic", (), HEALTH),
    _c("BA", "Boeing", (), IND),
    _c("CAT", "Caterpillar", (), IND),
    _c("DE", "Deere", ("John Deere", "Deere & Co"), IND),
    _c("MMM", "3M", (), IND),
    _c("HON", "Honeywell", (), IND),
    _c("GE", "General Electric", ("GE Aerospace",), IND),
    _c("LMT", "Lockheed Martin", ("Lockheed",), IND),
    _c("RTX", "RTX", ("Raytheon",), IND),
    _c("NOC", "Northrop Grumman", ("Northrop",), IND),
    _c("UPS", "UPS", ("United Parcel Service",), IND),
    _c("FDX", "FedEx", (), IND),
    _c("DAL", "Delta Air Lines", (), IND),
    _c("UAL", "United Airlines", (), IND),
    _c("GM", "General Motors", ("GM",), CONS),
    _c("F", "Ford", ("Ford Motor",), CONS,
       (r"(?:Harrison|Gerald|Tom|Henry|Rob|Doug) Ford", r"Ford Foundation")),
    _c("TGT", "Target", (), STAPLES,
       (r"[Pp]rice [Tt]arget", r"Target [Pp]rice", r"Target [Rr]ate", r"[Ii]nflation [Tt]arget",
        r"Targets?\b(?= (?:of|for|to|range|level)\b)")),
    _c("KR", "Kroger", (), STAPLES),
    _c("WBA", "Walgreens", ("Walgreens Boots Alliance",), STAPLES),
    _c("PM", "Philip Morris", ("Philip Morris International",), STAPLES),
    _c("MO", "Altria", (), STAPLES),
    _c("MDLZ", "Mondelez", (), STAPLES),
    _c("CL", "Colgate-Palmolive", ("Colgate",), STAPLES),
    _c("COP", "ConocoPhillips", (), ENERGY),
    _c("OXY", "Occidental Petroleum", ("Occidental",), ENERGY),
    _c("SLB", "Schlumberger", ("SLB",), ENERGY),
    _c("HAL", "Halliburton", (), ENERGY),
    _c("FCX", "Freeport-McMoRan", ("Freeport",), MAT),
    _c("NEM", "Newmont", (), MAT),
    _c("LIN", "Linde", (), MAT),
    _c("NEE", "NextEra Energy", ("NextEra",), UTIL),
    _c("DUK", "Duke Energy", (), UTIL),
)

BY_SYMBOL: dict[str, Company] = {c.symbol: c for c in COMPANIES}

# Other share classes and old or alternative spellings of the same listing.
SYMBOL_ALIASES: dict[str, str] = {
    "GOOG": "GOOGL", "FB": "META", "BRK-B": "BRK.B", "BRKB": "BRK.B", "BRK/B": "BRK.B",
}


def canonical_symbol(symbol: str) -> str:
    s = symbol.upper()
    return SYMBOL_ALIASES.get(s, s)
