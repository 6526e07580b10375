import sys

from hilbench_agent.main import main

if __name__ == "__main__":
    sys.exit(main())
