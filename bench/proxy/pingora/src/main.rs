//! Minimal pingora-proxy reverse proxy for hifi's benchmark: one listener,
//! one upstream chosen per request (as hifi would from its table).
use async_trait::async_trait;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

struct Fwd(String);

#[async_trait]
impl ProxyHttp for Fwd {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0.as_str(), false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen = args.next().expect("listen");
    let upstream = args.next().expect("upstream");
    let threads: usize = args.next().map(|t| t.parse().expect("threads")).unwrap_or(2);
    let mut server = Server::new(Some(Opt::default())).expect("server");
    server.configuration = std::sync::Arc::new({
        let mut c = pingora_core::server::configuration::ServerConf::default();
        c.threads = threads;
        c
    });
    server.bootstrap();
    let mut svc = pingora_proxy::http_proxy_service(&server.configuration, Fwd(upstream));
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.run_forever();
}
