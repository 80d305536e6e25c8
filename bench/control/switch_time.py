"""Runs a command and measures, from the moment it starts, how long until a
keep-alive client polling URL gets an answer whose body is WANTED.
Usage: switch_time.py URL WANTED -- COMMAND...  → prints milliseconds."""
import http.client
import subprocess
import sys
import time
import urllib.parse

url, wanted = sys.argv[1], sys.argv[2].encode()
command = sys.argv[sys.argv.index("--") + 1:]
parts = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
start = time.monotonic()
proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
failed = 0
while True:
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            failed += 1
        elif body.strip() == wanted:
            break
    except (OSError, http.client.HTTPException):
        failed += 1
        conn.close()
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    if time.monotonic() - start > 120:
        print("timeout", file=sys.stderr)
        sys.exit(1)
elapsed = (time.monotonic() - start) * 1000
proc.wait()
print(f"{elapsed:.1f} {failed}")
