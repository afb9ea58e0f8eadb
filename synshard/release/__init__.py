"""Tools on committed releases: the build lock (`lock`, `lockstore`), `gc`, `diff`, the
`datasheet`, the HTML `report` (+ `thumbnails`), and `external` (hashes of data outside a build,
leakage of an evaluation set into a release). Reading a release's files is `synshard.shards`'s job.
"""
