//! Docker: the engine hifi talks to ([`Engine`], over its unix socket) and
//! the images it builds ([`build_image`]), recorded and run by id.

mod engine;
mod image;

pub use self::engine::{DEFAULT_SOCKET, Engine};
pub use self::image::{BUILD_TIMEOUT, ImageId, build_image, image_exists, image_id, image_tag};
