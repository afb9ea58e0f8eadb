"""The global decisions of a build, on metadata only (no Ray, no image bytes).

`steps.decide` runs them in order; `votes` (crowd-vote confidences), `incremental` (the base
release, takedowns, reusable shards) and `base` (new inputs against the base's samples) feed it.
"""
