//! A strict decoder of `Transfer-Encoding: chunked` (RFC 9112 §7.1).
//!
//! It is fed bytes as they arrive and tells, step by step, which are chunk
//! data (forwarded) and which are framing (dropped; the proxy re-encodes).
//! Refused: a size that is not hex digits (`0_2e`, `0x5`, ` 5`, `+5`) or
//! overflows 64 bits, a size line over 4 KiB, a bare CR or LF or a control
//! character in a size line or a trailer, chunk data not followed by CRLF,
//! trailers over 16 KiB. Chunk extensions are accepted and dropped.

/// Longest chunk-size line (size and extensions).
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a size line: value so far, digits seen, in the extensions.
    Size { value: u64, digits: bool, ext: bool },
    /// CR of a size line seen.
    SizeLf { value: u64 },
    /// This many data bytes to go.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// In the trailer section: bytes of the current line.
    Trailer { line: usize },
    /// CR of a trailer line seen (`line` bytes before it).
    TrailerLf { line: usize },
    /// The body has ended.
    Done,
}

/// What the next bytes of the input are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The first `n` bytes are chunk data.
    Data(usize),
    /// The first `n` bytes are framing.
    Framing(usize),
}

/// The decoder's state between reads.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    line: usize,
    trailers: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: false,
                ext: false,
            },
            line: 0,
            trailers: 0,
        }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Classify the bytes at the start of `input` (not empty, body not done).
    pub fn step(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        if let State::Data(left) = self.state {
            let n = (left.min(input.len() as u64)) as usize;
            self.state = if left == n as u64 {
                State::DataCr
            } else {
                State::Data(left - n as u64)
            };
            return Ok(Step::Data(n));
        }
        let mut used = 0;
        for &c in input {
            used += 1;
            self.state = match self.state {
                State::Size { value, digits, ext } => {
                    self.line += 1;
                    if self.line > MAX_SIZE_LINE {
                        return Err(ChunkError("chunk size line too long"));
                    }
                    match c {
                        b'\r' if digits => State::SizeLf { value },
                        _ if ext => {
                            if (c < 0x20 && c != b'\t') || c == 0x7f {
                                return Err(ChunkError("control character in a chunk extension"));
                            }
                            State::Size { value, digits, ext }
                        }
                        b';' if digits => State::Size {
                            value,
                            digits,
                            ext: true,
                        },
                        _ => {
                            let d = match c {
                                b'0'..=b'9' => c - b'0',
                                b'a'..=b'f' => c - b'a' + 10,
                                b'A'..=b'F' => c - b'A' + 10,
                                _ => return Err(ChunkError("chunk size is not hex digits")),
                            };
                            if value > (u64::MAX >> 4) {
                                return Err(ChunkError("chunk size overflows"));
                            }
                            State::Size {
                                value: value << 4 | u64::from(d),
                                digits: true,
                                ext,
                            }
                        }
                    }
                }
                State::SizeLf { value } => {
                    if c != b'\n' {
                        return Err(ChunkError("bare CR after a chunk size"));
                    }
                    self.line = 0;
                    if value == 0 {
                        State::Trailer { line: 0 }
                    } else {
                        self.state = State::Data(value);
                        return Ok(Step::Framing(used));
                    }
                }
                State::DataCr => {
                    if c != b'\r' {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    State::DataLf
                }
                State::DataLf => {
                    if c != b'\n' {
                        return Err(ChunkError("chunk data not followed by CRLF"));
                    }
                    State::Size {
                        value: 0,
                        digits: false,
                        ext: false,
                    }
                }
                State::Trailer { line } => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(ChunkError("trailers too large"));
                    }
                    match c {
                        b'\r' => State::TrailerLf { line },
                        b'\n' => return Err(ChunkError("bare LF in the trailers")),
                        c if (c < 0x20 && c != b'\t') || c == 0x7f => {
                            return Err(ChunkError("control character in the trailers"));
                        }
                        _ => State::Trailer { line: line + 1 },
                    }
                }
                State::TrailerLf { line } => {
                    if c != b'\n' {
                        return Err(ChunkError("bare CR in the trailers"));
                    }
                    if line == 0 {
                        self.state = State::Done;
                        return Ok(Step::Framing(used));
                    }
                    State::Trailer { line: 0 }
                }
                State::Data(_) | State::Done => unreachable_state(),
            };
        }
        Ok(Step::Framing(used))
    }
}

/// The states above never leave `Data` or `Done` inside the loop.
#[cold]
fn unreachable_state() -> State {
    State::Done
}

/// Decode a whole body at once (tests and fuzzing): the data, and how many
/// bytes of `input` the body took; `None` when `input` ends before it does.
pub fn decode_all(input: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ChunkError> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while !d.is_done() {
        if pos == input.len() {
            return Ok(None);
        }
        match d.step(&input[pos..])? {
            Step::Data(n) => {
                out.extend_from_slice(&input[pos..pos + n]);
                pos += n;
            }
            Step::Framing(n) => pos += n,
        }
    }
    Ok(Some((out, pos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_whole_or_byte_by_byte() {
        let body = b"5\r\nhello\r\n6;name=\"v\"\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let (data, used) = decode_all(body).expect("valid").expect("complete");
        assert_eq!(data, b"hello world");
        assert_eq!(&body[used..], b"NEXT");
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for (i, b) in body.iter().enumerate() {
            if d.is_done() {
                assert_eq!(i, used);
                break;
            }
            if let Step::Data(1) = d.step(std::slice::from_ref(b)).expect("valid") {
                out.push(*b);
            }
        }
        assert_eq!(out, b"hello world");
        assert_eq!(
            decode_all(b"A\r\n0123456789\r\n0\r\n\r\n")
                .expect("ok")
                .expect("done")
                .0
                .len(),
            10
        );
        assert_eq!(decode_all(b"5\r\nhel").expect("ok so far"), None);
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"0_2e\r\n"[..],
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-1\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"1ffffffffffffffff\r\n",
            b"5;a\x00b\r\nhello\r\n",
            b"5\rhello",
            b"0\r\nX: a\nY: b\r\n\r\n",
            b"0\r\nX: a\x00\r\n\r\n",
        ] {
            assert!(decode_all(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000));
        assert!(decode_all(long.as_bytes()).is_err());
    }
}
