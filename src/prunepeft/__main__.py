import sys

from prunepeft.cli.main import main

sys.exit(main())
