"""`python -m synshard.cli ...`: the same as the `synshard` console script."""
from synshard.cli import run

run()
