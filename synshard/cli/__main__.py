"""`python -m synshard.cli ...`: the same as the `synshard` console script."""
import sys

from synshard.cli.app import main

sys.exit(main())
