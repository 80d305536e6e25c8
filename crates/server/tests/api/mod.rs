//! The API, endpoint by endpoint, role by role, and what it does with bad
//! input.

mod auth;
mod endpoints;
mod events;
mod four_eyes;
mod input;
mod roles;
mod tls;
