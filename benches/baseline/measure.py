"""Runs a command once and prints, as JSON, its wall time and its peak
resident memory (the kernel's ru_maxrss of that child, via wait4): the same
measurement for Firebreak's binary and the Python baseline.

    python measure.py CMD [ARG...]
"""

import json
import os
import subprocess
import sys
import time

start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
err = child.stderr.read().decode(errors="replace")[-2000:]
print(
    json.dumps(
        {
            "wall_ms": round(wall * 1000, 1),
            "max_rss_kb": usage.ru_maxrss,
            "exit": os.waitstatus_to_exitcode(status),
            "stderr": err,
        }
    )
)
