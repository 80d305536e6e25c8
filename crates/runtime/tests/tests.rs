//! Integration tests of the local runtime against real processes and
//! sockets: one binary, helpers in `util`.

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod util;

mod adopt;
mod health;
mod stop;
