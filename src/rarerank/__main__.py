import sys

from rarerank.cli import main

sys.exit(main())
