import sys

from runner_container.main import main

sys.exit(main())
