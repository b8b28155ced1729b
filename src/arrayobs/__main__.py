import sys

from arrayobs.cli import main

sys.exit(main())
