"""Diagnose a device image (a stand-in for the lab's real tool): reads the image if it
exists, walks its "sectors" for ``--seconds`` and prints progress lines as it goes.

Output protocol (agent/jobs.py): ``PROGRESS <percent>`` lines and a final ``RESULT: ...``
line; exit 0 when it finished, 2 when the image cannot be read.

    python agent/jobs_examples/diagnose.py --image data/jobs/images/disk-01.img --seconds 30
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

STEPS = 20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--image", required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args(argv)
    image = Path(args.image)
    if image.is_dir():
        print(f"RESULT: {image.name} is a folder, not a device image.", flush=True)
        return 2
    data = image.read_bytes()[: 1 << 20] if image.is_file() else b""
    seed = hashlib.sha256(data or image.name.encode()).digest()
    size = image.stat().st_size if image.is_file() else 512 * 1024 * 1024
    print(f"diagnosing {image.name} ({size // (1024 * 1024)} MiB)", flush=True)
    bad = 0
    for step in range(1, STEPS + 1):
        time.sleep(args.seconds / STEPS)
        found = seed[step % len(seed)] % 7 == 0
        bad += int(found)
        region = f"sectors {(step - 1) * 5}%..{step * 5}%"
        print(
            f"PROGRESS {step * 100 // STEPS} {region}: {'bad sectors' if found else 'ok'}",
            flush=True,
        )
    verdict = "recoverable" if bad <= 3 else "needs a clean-room recovery"
    print(f"RESULT: {image.name}: {bad} damaged region(s) of {STEPS}; {verdict}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
