//! The upgrade path (WebSocket and other `Connection: upgrade` requests):
//! once the backend answers 101, the client's and the backend's connections
//! are joined into a tunnel that is counted on the slot and closed at its
//! drain deadline or at proxy shutdown. hyper's connection future ends at an
//! upgrade, so graceful shutdown alone would never see these (PRIOR-ART
//! pitfall 3).

use http::header;
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::compiled::CompiledSlot;
use crate::tracking::UpgradedGuard;
use crate::upstream::Lease;

/// Whether a request asks for an upgrade (HTTP/1.1 `Upgrade` with
/// `Connection: upgrade`).
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The client's side of the upgrade a request asks for, taken before the
/// request is forwarded; `None` for an ordinary request.
#[inline]
pub(super) fn client_side(req: &mut Request<Incoming>) -> Option<OnUpgrade> {
    is_upgrade(req).then(|| hyper::upgrade::on(req))
}

/// The backend accepted the upgrade (`resp` is its 101): join the client's
/// and the backend's upgraded connections, counted on the slot and closed at
/// its drain deadline or at proxy shutdown. The backend connection carries
/// the tunnel, so its lease is discarded, never pooled.
pub(super) fn tunnel(
    client: OnUpgrade,
    resp: &mut Response<Incoming>,
    lease: Option<Lease>,
    slot: &CompiledSlot,
    shutdown: CancellationToken,
) {
    let upstream = hyper::upgrade::on(resp);
    let guard = UpgradedGuard::new(slot.state.clone());
    let drain = slot.state.drain_token();
    let (env, service, name) = (
        slot.state.env.clone(),
        slot.state.service.clone(),
        slot.name.clone(),
    );
    tokio::spawn(async move {
        let _guard = guard;
        let joined = tokio::try_join!(client, upstream);
        // The backend connection's sender is held until the upgrade is
        // done, then dropped without going back to the pool.
        if let Some(lease) = lease {
            lease.discard();
        }
        let (client, upstream) = match joined {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%env, %service, slot = %name, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        tokio::select! {
            _ = drain.cancelled() => {
                tracing::info!(%env, %service, slot = %name, "upgraded connection closed at the drain deadline");
            }
            _ = shutdown.cancelled() => {}
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = r {
                    tracing::debug!(%env, %service, slot = %name, error = %e, "upgraded connection ended");
                }
            }
        }
    });
}
