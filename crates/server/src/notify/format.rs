//! What a webhook receives: the event as JSON (signed with HMAC-SHA256 of
//! the body when a secret is set), or a Slack message a person reads.

use hifi_core::NotifyFormat;
use hifi_store::Event;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The body for `format`.
pub fn body(
    format: NotifyFormat,
    project: &str,
    dashboard: Option<&str>,
    event: &Event,
) -> Vec<u8> {
    match format {
        NotifyFormat::Json => serde_json::to_vec(event).unwrap_or_default(),
        NotifyFormat::Slack => {
            let mut text = format!("*hifi {project}*");
            if let Some(env) = &event.env {
                text.push_str(&format!(" · {env}"));
            }
            text.push_str(&format!(
                " · `{}`\n{}",
                event.kind,
                slack_escape(&event.message)
            ));
            if event.actor != "hifi" && !event.message.contains(&event.actor) {
                text.push_str(&format!(" (by {})", slack_escape(&event.actor)));
            }
            if let Some(url) = dashboard {
                let url = url.trim_end_matches('/');
                let page = match (&event.release, &event.env) {
                    (Some(release), _) => format!("{url}/releases/{release}"),
                    (None, Some(env)) => format!("{url}/environments/{env}"),
                    (None, None) => format!("{url}/"),
                };
                text.push_str(&format!("\n<{page}|Open in hifi>"));
            }
            serde_json::to_vec(&serde_json::json!({ "text": text })).unwrap_or_default()
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as sent in
/// `x-hifi-signature`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        // HMAC takes keys of any length; this cannot happen.
        return String::new();
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Slack's three control characters in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
