"""The build: sources -> release. `synshard.api.build` calls `pipeline.run_build`.

The data's way through this room: `inputs` (driver: plan read tasks, load the base release,
takedowns, external hashes, the fingerprint) -> `stages` (Ray tasks: read, transform, stage,
journalled by `journal`) -> `decide` (driver, metadata only: splits, votes, takedowns, the base,
exact and near dedup, classes, caps, labels) -> `assembly` (Ray tasks, one per synset: write the
shards) -> `commit` (driver: side tables, build.json, manifest.json last). `pipeline` is the only
module that schedules Ray work; `raysession` starts or joins Ray. (Named `builder`, not `build`,
so that `synshard.build` stays the API function.)
"""
