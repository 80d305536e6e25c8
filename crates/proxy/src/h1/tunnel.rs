//! Upgraded connections: the client and the backend joined byte for byte,
//! counted on the slot, and ended at the slot's drain deadline or at proxy
//! shutdown (PRIOR-ART pitfall 3).
//!
//! A WebSocket (the request carried `Sec-WebSocket-Key` and the backend
//! answered with `Sec-WebSocket-Accept`) is ended the way RFC 6455 asks: the
//! frames in each direction are tracked, so that at the deadline the frame
//! in progress is let through (for at most a second), then a close frame
//! with 1001 (going away) goes to the client (unmasked) and to the backend
//! (masked, as from a client), and both get a moment to answer before the
//! connections close. Clients thus see 1001 and reconnect, instead of 1006.
//! Other upgrades are cut.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::tracking::{SlotState, UpgradedGuard};

/// Time given to a frame in progress, and to the peers' close answers.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Close frame with status 1001 from the server side (unmasked).
const CLOSE_TO_CLIENT: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];

/// Where one direction of a WebSocket is within its frames.
#[derive(Debug, Default, Clone)]
pub(crate) struct Frames {
    /// Payload bytes left in the current frame.
    left: u64,
    /// Header bytes of the next frame gathered so far.
    hdr: [u8; 14],
    have: usize,
}

impl Frames {
    /// Whether the bytes passed so far end on a frame boundary.
    pub(crate) fn at_boundary(&self) -> bool {
        self.left == 0 && self.have == 0
    }

    fn header_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let ext = match self.hdr[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.hdr[1] & 0x80 != 0 { 4 } else { 0 };
        Some(2 + ext + mask)
    }

    fn payload_len(&self) -> u64 {
        match self.hdr[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.hdr[2], self.hdr[3]])),
            127 => u64::from_be_bytes([
                self.hdr[2],
                self.hdr[3],
                self.hdr[4],
                self.hdr[5],
                self.hdr[6],
                self.hdr[7],
                self.hdr[8],
                self.hdr[9],
            ]),
            n => u64::from(n),
        }
    }

    /// Account for `data` passed on; with `stop_at_boundary`, only up to the
    /// end of the frame in progress. Returns how many bytes were taken.
    pub(crate) fn feed(&mut self, data: &[u8], stop_at_boundary: bool) -> usize {
        let mut i = 0;
        while i < data.len() {
            if stop_at_boundary && self.at_boundary() {
                return i;
            }
            if self.left > 0 {
                let k = (self.left.min((data.len() - i) as u64)) as usize;
                self.left -= k as u64;
                i += k;
                continue;
            }
            self.hdr[self.have] = data[i];
            self.have += 1;
            i += 1;
            if self.header_len() == Some(self.have) {
                self.left = self.payload_len();
                self.have = 0;
            }
        }
        i
    }
}

/// The close frame for the backend: masked, as clients must send.
fn close_to_backend() -> [u8; 8] {
    let nanos = crate::metrics::unix_now().subsec_nanos().to_le_bytes();
    let m = [nanos[0] | 1, nanos[1], nanos[2], nanos[3]];
    [0x88, 0x82, m[0], m[1], m[2], m[3], 0x03 ^ m[0], 0xE9 ^ m[1]]
}

/// Carry the upgraded connection until either side closes it, the slot's
/// drain deadline passes, or the proxy shuts down.
pub(crate) async fn run(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    state: &std::sync::Arc<SlotState>,
    websocket: bool,
    shutdown: &CancellationToken,
) {
    let _guard = UpgradedGuard::new(state.clone());
    let drain = state.drain_token();
    let (env, service, slot) = (&state.env, &state.service, &state.slot);
    let mut up = Frames::default();
    let mut down = Frames::default();
    let mut cbuf = vec![0u8; 16 * 1024];
    let mut bbuf = vec![0u8; 16 * 1024];
    let (mut client_open, mut backend_open) = (true, true);
    {
        let (mut cr, mut cw) = client.split();
        let (mut br, mut bw) = backend.split();
        loop {
            if !client_open && !backend_open {
                return;
            }
            tokio::select! {
                r = cr.read(&mut cbuf), if client_open => match r {
                    Ok(0) | Err(_) => {
                        client_open = false;
                        let _ = bw.shutdown().await;
                    }
                    Ok(n) => {
                        up.feed(&cbuf[..n], false);
                        if bw.write_all(&cbuf[..n]).await.is_err() {
                            return;
                        }
                    }
                },
                r = br.read(&mut bbuf), if backend_open => match r {
                    Ok(0) | Err(_) => {
                        backend_open = false;
                        let _ = cw.shutdown().await;
                    }
                    Ok(n) => {
                        down.feed(&bbuf[..n], false);
                        if cw.write_all(&bbuf[..n]).await.is_err() {
                            return;
                        }
                    }
                },
                _ = drain.cancelled() => {
                    tracing::info!(%env, %service, %slot, websocket, "upgraded connection closed at the drain deadline");
                    break;
                }
                _ = shutdown.cancelled() => break,
            }
        }
    }
    if !websocket || !client_open || !backend_open {
        return;
    }
    // Let the frames in progress through, then say goodbye to both sides.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        finish_frame(client, backend, &mut up, &mut cbuf).await;
        finish_frame(backend, client, &mut down, &mut bbuf).await;
    })
    .await;
    if down.at_boundary() {
        let _ = client.write_all(&CLOSE_TO_CLIENT).await;
    }
    if up.at_boundary() {
        let _ = backend.write_all(&close_to_backend()).await;
    }
    let _ = client.shutdown().await;
    let _ = backend.shutdown().await;
    // A moment for the peers' own close frames; then both connections drop.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let (mut a, mut b) = (true, true);
        while a || b {
            tokio::select! {
                r = client.read(&mut cbuf), if a => a = matches!(r, Ok(n) if n > 0),
                r = backend.read(&mut bbuf), if b => b = matches!(r, Ok(n) if n > 0),
            }
        }
    })
    .await;
}

/// Pass on the rest of the frame in progress from `from` to `to`.
async fn finish_frame(
    from: &mut TcpStream,
    to: &mut TcpStream,
    frames: &mut Frames,
    buf: &mut [u8],
) {
    while !frames.at_boundary() {
        let n = match from.read(buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let k = frames.feed(&buf[..n], true);
        if to.write_all(&buf[..k]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tracked_across_reads() {
        // A masked text frame "hi" (client to server) and a 300-byte binary
        // frame with a 16-bit length (server to client).
        let text = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        let mut f = Frames::default();
        assert!(f.at_boundary());
        assert_eq!(f.feed(&text[..3], false), 3);
        assert!(!f.at_boundary());
        assert_eq!(f.feed(&text[3..], false), 5);
        assert!(f.at_boundary());
        let mut big = vec![0x82, 126, 0x01, 0x2c];
        big.extend(std::iter::repeat_n(7u8, 300));
        big.extend_from_slice(&text);
        let mut f = Frames::default();
        assert_eq!(f.feed(&big[..100], false), 100);
        // Stopping at the boundary leaves the next frame alone.
        assert_eq!(f.feed(&big[100..], true), 304 - 100);
        assert!(f.at_boundary());
    }
}
