"""The synthetic suites' generator: the hard suite really has what it claims (gaps, a level
shift, heavier tails) and never hides an incident in a gap."""
from __future__ import annotations

import numpy as np

from bench.eval_detector import MATCH_TAIL, PER_DAY, SUITES, Realism, make_series


def test_hard_series_have_feed_gaps_outside_incidents_and_a_lasting_level_shift():
    gaps_seen = 0
    for seed in range(6):
        rng = np.random.default_rng([seed, 1])
        ts, neg, total, incidents = make_series(rng, "market", 8, True, SUITES["hard"])
        assert np.all(neg <= total) and len(ts) == 8 * PER_DAY
        # A run of 10+ silent minutes on the market key is an outage (heavy noise alone can
        # empty a minute, not ten in a row).
        zero = (total == 0).astype(int)
        runs = np.convolve(zero, np.ones(10, dtype=int), mode="valid") == 10
        silent = np.zeros(len(total), dtype=bool)
        for i in np.flatnonzero(runs):
            silent[i : i + 10] = True
        gaps_seen += int(silent.any())
        for inc in incidents:
            assert not silent[inc.start : inc.end + MATCH_TAIL].any()
    assert gaps_seen >= 3


def test_the_level_shift_lasts():
    flat = Realism(daily_sigma=0.0)
    shifted = Realism(daily_sigma=0.0, level_shift=True)
    for seed in range(4):
        days = {}
        for name, realism in (("flat", flat), ("shifted", shifted)):
            _, _, total, _ = make_series(np.random.default_rng(seed), "ticker", 8, False, realism)
            days[name] = total.reshape(8, PER_DAY).sum(axis=1)
        before = days["shifted"][0] / days["flat"][0]
        after = days["shifted"][7] / days["flat"][7]  # the Monday after, well past day 3-5
        # Chatter draws differ once the shift has drawn its time, hence the loose band.
        assert 0.75 < before < 1.33 and after > 1.3 * before


def test_hard_noise_has_heavier_tails_than_standard():
    def dispersion(realism):
        # Variance over mean of minute counts in mid-session stretches (fairly flat), pooled.
        ratios = []
        for seed in range(4):
            _, neg, _, _ = make_series(np.random.default_rng(seed), "ticker", 4, False, realism)
            for d in range(4):
                stretch = neg[d * PER_DAY + 15 * 60 : d * PER_DAY + 18 * 60]
                ratios.append(stretch.var() / stretch.mean())
        return float(np.median(ratios))

    assert dispersion(SUITES["hard"]) > 1.5 * dispersion(SUITES["standard"])
