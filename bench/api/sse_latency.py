"""Time from a card move (POST, answered) to its event on an open SSE stream.

Opens GET /api/v1/events, then moves cards one at a time; for each move,
measures from just before the POST is sent until the matching card.moved
event is read off the stream. Standard library only.

    python3 sse_latency.py URL TOKEN MOVES CARDS
"""
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

url, token, moves, cards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host = urllib.parse.urlparse(url).netloc
auth = {"Authorization": f"Bearer {token}"}

seen = {}  # card -> when its latest card.moved event was read
cond = threading.Condition()


def follow():
    conn = http.client.HTTPConnection(host, timeout=60)
    conn.request("GET", "/api/v1/events", headers=auth)
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    data = None
    while True:
        line = resp.fp.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            if data["kind"] == "card.moved":
                with cond:
                    seen[data["card"]] = time.perf_counter()
                    cond.notify_all()
            data = None


threading.Thread(target=follow, daemon=True).start()
time.sleep(0.5)
api = http.client.HTTPConnection(host, timeout=60)
latencies = []
for i in range(moves):
    card = f"B-{i % cards + 1}"
    stage = "in-test" if (i // cards) % 2 == 0 else "ready-for-test"
    with cond:
        seen.pop(card, None)
    start = time.perf_counter()
    api.request("POST", f"/api/v1/cards/{card}/move", body=json.dumps({"stage": stage}),
                headers={**auth, "Content-Type": "application/json"})
    resp = api.getresponse()
    resp.read()
    assert resp.status == 200, resp.status
    with cond:
        if not cond.wait_for(lambda: card in seen, timeout=10):
            sys.exit(f"no event for the move of {card} within 10 s")
        latencies.append((seen[card] - start) * 1000)

latencies.sort()
p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"moves: {len(latencies)}  p50 {p(0.50):.2f} ms  p90 {p(0.90):.2f} ms  "
      f"p99 {p(0.99):.2f} ms  max {latencies[-1]:.2f} ms  mean {statistics.mean(latencies):.2f} ms")
