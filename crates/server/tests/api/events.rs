//! The event stream: events as they happen, and resumed with
//! Last-Event-ID after a dropped connection, nothing lost.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::Server;

/// An open event stream.
struct Stream {
    tcp: TcpStream,
    text: String,
}

impl Stream {
    async fn open(s: &Server, token: &str, last: Option<i64>) -> Stream {
        let addr = s.url.trim_start_matches("http://").to_string();
        let mut tcp = TcpStream::connect(&addr).await.unwrap();
        let resume = last
            .map(|l| format!("Last-Event-ID: {l}\r\n"))
            .unwrap_or_default();
        // HTTP/1.0: the stream is the body, unchunked, until it closes.
        let request = format!(
            "GET /api/v1/events HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n{resume}\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut stream = Stream {
            tcp,
            text: String::new(),
        };
        stream.until(|t| t.contains("\r\n\r\n")).await;
        assert!(
            stream.text.starts_with("HTTP/1.0 200") || stream.text.starts_with("HTTP/1.1 200"),
            "{}",
            stream.text
        );
        assert!(stream.text.contains("text/event-stream"), "{}", stream.text);
        stream
    }

    /// Reads until `done` holds of what was read (within 10 s).
    async fn until(&mut self, done: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !done(&self.text) {
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("timed out; read so far:\n{}", self.text))
                .unwrap();
            assert!(n > 0, "the stream closed; read:\n{}", self.text);
            self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// The (id, event kind, data) of each event read so far.
    fn events(&self) -> Vec<(i64, String, serde_json::Value)> {
        let body = self
            .text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        body.split("\n\n")
            .filter_map(|block| {
                let mut id = None;
                let mut kind = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    }
                    if let Some(v) = line.strip_prefix("event: ") {
                        kind = Some(v.to_string());
                    }
                    if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                Some((id?, kind?, data?))
            })
            .collect()
    }

    async fn wait_for(&mut self, count: usize) -> Vec<(i64, String, serde_json::Value)> {
        let expected = count;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.events().len() < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {:?}",
                self.events()
            );
            let before = self.text.len();
            self.until(|t| t.len() > before).await;
        }
        self.events()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_as_they_happen_and_resume_after_the_last_seen() {
    let s = Server::start().await;
    s.post(
        "cards",
        &s.developer,
        json!({"id": "A-1", "branch": "feature/a"}),
    )
    .await
    .expect(201);
    let mut stream = Stream::open(&s, &s.viewer, None).await;
    s.post("cards/A-1/move", &s.developer, json!({"stage": "in-dev"}))
        .await
        .expect(200);
    let events = stream.wait_for(1).await;
    let (seen, kind, data) = &events[0];
    assert_eq!(kind, "card.moved");
    assert_eq!(
        (data["actor"].as_str(), data["seq"].as_i64()),
        (Some("dora"), Some(*seen))
    );
    drop(stream);

    // While no one listens, two more changes.
    s.post(
        "cards",
        &s.developer,
        json!({"id": "B-2", "branch": "feature/a"}),
    )
    .await
    .expect(201);
    s.post("cards/B-2/move", &s.developer, json!({"stage": "in-test"}))
        .await
        .expect(200);
    let mut resumed = Stream::open(&s, &s.viewer, Some(*seen)).await;
    let events = resumed.wait_for(2).await;
    let kinds: Vec<(&str, i64)> = events.iter().map(|(id, k, _)| (k.as_str(), *id)).collect();
    assert_eq!(kinds, [("card.added", seen + 1), ("card.moved", seen + 2)]);
    // And from the very beginning.
    let mut all = Stream::open(&s, &s.viewer, Some(0)).await;
    let from_start = all.wait_for(*seen as usize + 2).await;
    assert_eq!(from_start[0].0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_token_and_a_numeric_last_event_id() {
    let s = Server::start().await;
    s.raw("GET", "/api/v1/events", None, &[], b"")
        .await
        .problem(401, "unauthenticated");
    s.raw(
        "GET",
        "/api/v1/events",
        Some(&s.viewer),
        &[("last-event-id", "yesterday")],
        b"",
    )
    .await
    .problem(400, "bad_input");
}
