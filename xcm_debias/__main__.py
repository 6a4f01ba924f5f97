import sys

from xcm_debias.cli import main

sys.exit(main())
