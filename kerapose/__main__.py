import sys

from kerapose.cli import main

sys.exit(main())
