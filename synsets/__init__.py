"""synshard.synsets: WordNet 3.0 noun hierarchy, class lists, release trees, crowd-vote consensus.

Pure code: no Ray, no network, no fsspec. Modules: `hierarchy` (load_hierarchy, Hierarchy,
Synset), `subsets` (load_subset, SynsetFilter), `tree` (release_tree, render_tree), `consensus`
(consensus, plan_votes, confidence_batch, min_confidence_batch), `votes` (votes table encoding),
`simulate` (simulated crowds for tests and benchmarks). Data in `data/`: the derived WordNet noun
file (with WordNet's licence notice; see scripts/derive_wordnet.py) and `ilsvrc2012.txt`.
"""
