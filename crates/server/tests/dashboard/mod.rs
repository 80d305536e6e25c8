//! The web dashboard: its sessions over HTTP, and the pages in a real
//! headless Chromium.

mod browser;
mod live;
mod pages;
mod sessions;
mod showcase;
