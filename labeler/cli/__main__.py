import sys

from labeler.cli.app import main

sys.exit(main())
