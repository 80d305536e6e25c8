//! Integration tests of the local runtime against real processes and
//! sockets: one binary, helpers in `util`.

mod util;

mod adopt;
mod health;
mod stop;
