"""The maturity scorecard: named metrics per model in buckets (0 missing, 1 partial, 2
complete, None not applicable), grouped in domains and rolled up per team and organisation.

`catalogue` holds the metric definitions (apps register theirs), `metrics` the ones governance
and the registry answer, `scorecard` the computation and roll-up, `snapshots` the daily
records that trends are drawn from.
"""
