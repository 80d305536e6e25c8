//! Integration tests of the runtimes: the local runtime against real
//! processes and sockets (helpers in `util`), the Docker runtime against a
//! real engine (`docker`, skipped loudly when none answers).

// A test that unwraps fails loudly where it should.
#![allow(clippy::unwrap_used)]

mod util;

mod adopt;
mod docker;
mod health;
mod probe;
mod stop;
