"""Wording for the synthetic stream: headline templates per topic and sentiment, social-post templates,
feeds and handles. Placeholders: {co} company name, {tk} ticker, {peer} another company, {firm} broker,
{pct} {pct2} percentages, {px} price, {amt} money amount, {q} quarter, {role} executive role, {bp} basis
points. Templates without {co}/{tk} are market-wide (no ticker).
"""
from __future__ import annotations

TOPICS: tuple[str, ...] = (
    "Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt",
    "Dividend", "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion",
    "Gold | Metals | Materials", "IPO", "Legal | Regulation", "M&A | Investments", "Macro", "Markets",
    "Politics", "Personnel Change", "Stock Commentary", "Stock Movement",
)
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")

# Sector a topic's company comes from (None: any company).
TOPIC_SECTORS: dict[str, tuple[str, ...] | None] = {
    "Energy | Oil": ("Energy",),
    "Financials": ("Financials",),
    "Gold | Metals | Materials": ("Materials",),
}

NEWS: dict[str, dict[str, tuple[str, ...]]] = {
    "Analyst Update": {
        "negative": ("{firm} downgrades {co} to underweight, cuts price target to {px}",
                     "{co} cut to sell at {firm} on slowing demand"),
        "neutral": ("{firm} initiates coverage of {co} with neutral rating",
                    "{firm} keeps {co} at equal-weight, price target {px}"),
        "positive": ("{firm} upgrades {co} to buy, sees {pct} upside",
                     "{co} raised to outperform at {firm} on margin outlook"),
    },
    "Fed | Central Banks": {
        "negative": ("Fed signals rates to stay higher for longer as inflation proves sticky",
                     "ECB warns of stagnation risk, markets price deeper slowdown"),
        "neutral": ("Fed holds rates steady, as expected; minutes due in three weeks",
                    "Central bank officials to speak at Jackson Hole symposium"),
        "positive": ("Fed signals rate cuts ahead as inflation cools",
                     "Bank of England cuts rates by {bp} basis points, lifts growth outlook"),
    },
    "Company | Product News": {
        "negative": ("{co} recalls {n} vehicles and devices over safety defect",
                     "{co} delays flagship product launch after supply problems"),
        "neutral": ("{co} to hold annual product event next month",
                    "{co} opens new office in Austin"),
        "positive": ("{co} unveils new product line, preorders beat expectations",
                     "{co} wins multiyear contract worth {amt}"),
    },
    "Treasuries | Corporate Debt": {
        "negative": ("Treasury yields jump as bond selloff deepens; 10-year tops {pct2}",
                     "Moody's cuts {co} credit rating to junk, bonds slide"),
        "neutral": ("{co} prices {amt} bond offering in three tranches",
                    "Treasury to auction {amt} in 10-year notes this week"),
        "positive": ("Treasuries rally as demand at auction beats forecasts",
                     "{co} debt upgraded by S&P on stronger cash flow"),
    },
    "Dividend": {
        "negative": ("{co} suspends dividend to preserve cash",
                     "{co} cuts quarterly dividend by {pct}"),
        "neutral": ("{co} declares regular quarterly dividend of {px} per share",
                    "{co} sets record date for quarterly dividend"),
        "positive": ("{co} raises dividend {pct}, announces {amt} buyback",
                     "{co} hikes payout for 12th straight year"),
    },
    "Earnings": {
        "negative": ("{co} misses {q} earnings estimates, cuts full-year guidance",
                     "{co} shares sink after {q} revenue falls short of forecasts"),
        "neutral": ("{co} to report {q} results after the bell on Thursday",
                    "{co} {q} earnings in line with estimates"),
        "positive": ("{co} beats {q} profit estimates, raises outlook",
                     "{co} posts record {q} revenue as demand surges"),
    },
    "Energy | Oil": {
        "negative": ("Oil slumps {pct} on demand worries; {co} shares drop",
                     "{co} cuts output forecast after refinery outage"),
        "neutral": ("OPEC+ meets to review production quotas",
                    "{co} to present energy transition plan at investor day"),
        "positive": ("Oil jumps {pct} as supply tightens, lifting {co}",
                     "{co} boosts production target after new discovery"),
    },
    "Financials": {
        "negative": ("{co} sets aside more for bad loans as defaults rise",
                     "Bank stocks slide as {co} flags lower trading revenue"),
        "neutral": ("{co} completes annual stress test submission",
                    "{co} to host investor day in New York"),
        "positive": ("{co} trading revenue jumps, beating estimates",
                     "{co} passes stress test, plans bigger buyback"),
    },
    "Currencies": {
        "negative": ("Dollar slides to lowest in a year as traders dump US assets",
                     "Yen plunges past 160 per dollar, raising intervention fears"),
        "neutral": ("Dollar steady ahead of payrolls data",
                    "Euro little changed as traders await ECB decision"),
        "positive": ("Dollar rebounds as strong data lifts sentiment",
                     "Emerging-market currencies rally on softer dollar"),
    },
    "General News | Opinion": {
        "negative": ("Opinion: the AI trade looks like a bubble, and {co} is exposed",
                     "Why investors are losing patience with {co}"),
        "neutral": ("What to watch in markets this week",
                    "Explainer: how {co} makes its money"),
        "positive": ("Opinion: {co} is the quiet winner of this cycle",
                     "Why {co} could be a long-term winner"),
    },
    "Gold | Metals | Materials": {
        "negative": ("Copper tumbles {pct} on weak China demand; {co} falls",
                     "Gold slides as dollar strengthens, {co} under pressure"),
        "neutral": ("{co} reports quarterly production in line with guidance",
                    "Gold little changed ahead of inflation data"),
        "positive": ("Gold hits record high, miners led by {co} rally",
                     "{co} gains as copper prices climb on supply concerns"),
    },
    "IPO": {
        "negative": ("IPO market stalls as recent listings trade below offer price",
                     "{co}-backed startup pulls IPO citing market volatility"),
        "neutral": ("Chip designer files for US IPO, seeks valuation of {amt}",
                    "{co} spin-off sets terms for IPO"),
        "positive": ("Shares jump {pct} in market debut after IPO priced above range",
                     "{co}-backed startup soars in blockbuster IPO"),
    },
    "Legal | Regulation": {
        "negative": ("{co} faces DOJ antitrust probe, shares fall",
                     "SEC charges {co} over misleading disclosures; fine of {amt}"),
        "neutral": ("Court hears arguments in {co} patent case",
                    "{co} responds to regulators' information request"),
        "positive": ("{co} wins appeal in long-running patent dispute",
                     "Regulators approve {co} product, clearing path to launch"),
    },
    "M&A | Investments": {
        "negative": ("{co} deal for {peer} collapses after regulators object",
                     "{co} writes down {amt} stake, ending failed investment"),
        "neutral": ("{co} in talks to acquire {peer} unit, sources say",
                    "{co} discloses stake in {peer}"),
        "positive": ("{co} to buy {peer} business for {amt}, shares rise",
                     "{co} takeover bid lifts shares {pct}"),
    },
    "Macro": {
        "negative": ("US economy shrinks unexpectedly as consumer spending weakens",
                     "Inflation rises more than expected, dashing hopes of relief"),
        "neutral": ("US payrolls report due Friday; economists expect 180,000 jobs",
                    "Retail sales data in line with forecasts"),
        "positive": ("US economy grows faster than expected, jobs data strong",
                     "Inflation cools to lowest in three years"),
    },
    "Markets": {
        "negative": ("Wall Street tumbles as tech selloff deepens; Nasdaq down {pct}",
                     "Stocks slide to three-month low on recession fears"),
        "neutral": ("Stocks mixed as investors await Fed decision",
                    "Wall Street flat in quiet holiday trading"),
        "positive": ("S&P 500 closes at record high, led by tech",
                     "Stocks rally as rate-cut bets grow"),
    },
    "Politics": {
        "negative": ("New tariffs threaten supply chains; {co} among companies exposed",
                     "Government shutdown looms as budget talks collapse"),
        "neutral": ("Senate committee to hold hearing on trade policy",
                    "Lawmakers debate tax bill ahead of recess"),
        "positive": ("Congress passes infrastructure bill, boosting builders",
                     "Trade deal eases tariffs, lifting {co}"),
    },
    "Personnel Change": {
        "negative": ("{co} {role} resigns abruptly amid internal probe",
                     "{co} ousts {role} after string of losses"),
        "neutral": ("{co} names new {role}",
                    "{co} appoints board member from {peer}"),
        "positive": ("{co} shares rise after hiring star {role} from {peer}",
                     "{co} founder returns as {role}, investors cheer"),
    },
    "Stock Commentary": {
        "negative": ("{co} stock looks expensive after rally, strategist warns",
                     "Three reasons to avoid {co} shares now"),
        "neutral": ("Is {co} stock a buy? What analysts say",
                    "{co} shares: key levels to watch"),
        "positive": ("{co} stock has room to run, fund manager says",
                     "Why {co} shares could double from here"),
    },
    "Stock Movement": {
        "negative": ("{co} shares plunge {pct} in heavy trading",
                     "{co} stock hits 52-week low"),
        "neutral": ("{co} shares little changed in early trading",
                    "{co} stock volume spikes ahead of options expiry"),
        "positive": ("{co} shares soar {pct} to all-time high",
                     "{co} stock jumps {pct} in premarket trading"),
    },
}

NEWS_BODY: dict[str, tuple[str, ...]] = {
    "negative": ("Investors worry the setback could weigh on results for several quarters.",
                 "Analysts said the news adds to pressure after a difficult year.",
                 "The development raises fresh questions about the outlook."),
    "neutral": ("Further details are expected in the coming days.",
                "The company did not comment beyond its statement.",
                "Analysts said the announcement was broadly as expected."),
    "positive": ("Analysts said the news strengthens the investment case.",
                 "The update was welcomed by investors after a strong run.",
                 "The move is expected to support growth next year."),
}

SOCIAL: dict[str, tuple[str, ...]] = {
    "negative": ("${tk} getting crushed today {emo} this is ugly",
                 "dumped my ${tk} bag, {co} guidance was a disaster {emo}",
                 "${tk} breaking support, next stop {px} {emo}",
                 "anyone else bleeding on ${tk}? {co} just keeps falling {emo}",
                 "{co} management has lost the plot. selling ${tk}"),
    "neutral": ("what's everyone's take on ${tk} into earnings?",
                "watching ${tk} at {px} today, no position yet",
                "{co} event tomorrow, ${tk} options pricing a {pct} move",
                "${tk} flat all day lol {emo}"),
    "positive": ("${tk} to the moon {emo}{emo}",
                 "loaded more ${tk} this morning, {co} is printing {emo}",
                 "${tk} breakout confirmed, target {px} {emo}",
                 "{co} crushing it, long ${tk} {emo}",
                 "so bullish on ${tk} right now {emo}"),
}
EMOJI: dict[str, tuple[str, ...]] = {
    "negative": ("📉", "😬", "🩸", "💀", "😭"),
    "neutral": ("🤔", "👀", "📊", ""),
    "positive": ("🚀", "📈", "💎🙌", "🔥", "💰"),
}

# A burst: clearly negative, specific stories about one company, from news and social.
BURST_NEWS: tuple[str, ...] = (
    "{co} shares plunge {pct} after regulators open fraud probe",
    "{co} recalls {n} products over fire risk; stock tumbles",
    "{co} slashes outlook, warns of steep losses",
    "{co} {role} resigns amid accounting investigation",
    "{co} hit with class action lawsuit as shares crash",
    "{co} halts production after major safety failure",
)
BURST_SOCIAL: tuple[str, ...] = (
    "${tk} is collapsing right now {emo} fraud probe?!",
    "get out of ${tk} while you can {emo}{emo}",
    "{co} recall is a disaster, ${tk} going to zero {emo}",
    "${tk} halted?? what is happening at {co} {emo}",
    "bagholders of ${tk} this is brutal {emo} down {pct} already",
)

NEWS_FEEDS: tuple[tuple[str, str], ...] = (
    ("Reuters", "reuters.example.com"), ("Bloomberg", "bloomberg.example.com"),
    ("MarketWatch", "marketwatch.example.com"), ("CNBC", "cnbc.example.com"),
    ("Financial Times", "ft.example.com"), ("Barron's", "barrons.example.com"),
    ("Seeking Alpha", "seekingalpha.example.com"), ("Yahoo Finance", "finance.example.com"),
)
SOCIAL_NETWORKS: tuple[tuple[str, str], ...] = (
    ("X", "x.example.com"), ("StockTwits", "stocktwits.example.com"), ("Reddit", "reddit.example.com"),
)
FIRMS: tuple[str, ...] = ("Morgan Stanley", "Goldman Sachs", "JPMorgan", "Bernstein", "Jefferies",
                          "Barclays", "UBS", "Wedbush", "Evercore ISI", "Piper Sandler")
ROLES: tuple[str, ...] = ("CEO", "CFO", "chief operating officer", "chief technology officer", "chairman")
HANDLE_PARTS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("bull", "bear", "chart", "value", "options", "dip", "tape", "macro", "gamma", "swing", "diamond"),
    ("trader", "hunter", "guy", "queen", "wizard", "capital", "watcher", "investor", "lord", "kid"),
)
# Fictional contact details (555-01xx numbers, example domains) to exercise redaction.
PII_SNIPPETS: tuple[str, ...] = (
    "DM me or email {user}@example.com for my watchlist",
    "signals group: call +1 212-555-01{d2} anytime",
    "questions? (646) 555-01{d2} or {user}@mail.example.org",
    "UK members ring +44 20 7946 0{d3}",
)

# Optional endings: real posts about the same thing rarely share every word.
SOCIAL_TAILS: dict[str, tuple[str, ...]] = {
    "negative": ("", "not financial advice", "cutting my losses", "stop loss hit at {px}", "worst week since {year}",
                 "who is still buying this?", "this one hurts", "told you so", "{n} shares sold"),
    "neutral": ("", "thoughts?", "not financial advice", "chart in replies", "waiting for the close",
                "IV looks rich", "anyone have the transcript?", "volume light today"),
    "positive": ("", "not financial advice", "LFG", "holding since {px}", "best setup since {year}",
                 "added {n} shares", "shorts in trouble", "easy money"),
}
NEWS_DETAILS: dict[str, tuple[str, ...]] = {
    "negative": ("Shares were down {pct} in afternoon trading.", "The stock has lost {pct} this year.",
                 "Trading volume was {n} shares above average.", "Several brokers cut their estimates.", ""),
    "neutral": ("Shares were little changed at {px}.", "The stock is up {pct} this year.",
                "A spokesperson declined to comment further.", ""),
    "positive": ("Shares rose {pct} to {px}.", "The stock is up {pct} this year.",
                 "Options activity pointed to further gains.", "Several brokers raised their estimates.", ""),
}
