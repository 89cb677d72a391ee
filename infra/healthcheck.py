"""Container health check: exit 0 when an HTTP endpoint answers 2xx, 1 otherwise (standard library only).

    python infra/healthcheck.py http://127.0.0.1:5000/health

Every service of `docker-compose.yml` that runs the project image uses it, so no image needs curl.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request


def healthy(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """Whether `url` answers with a 2xx status, and a one-line reason for the log."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as err:
        return False, f"{url}: HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return False, f"{url}: {getattr(err, 'reason', err)}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    ok, message = healthy(argv[1])
    print(message)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
