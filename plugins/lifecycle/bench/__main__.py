"""``python -m lifecycle.bench [--scale N] [--events N] [--stages ...] [--out DIR] [--keep]``.

Input: argv. Output: the benchmark reports (see ``lifecycle.bench``) and the exit code.
"""

import sys

from lifecycle.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
