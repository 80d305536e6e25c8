//! The example project `hifi demo` deploys: a git repository with three
//! python3 services — a gateway that calls catalog and checkout through
//! `HIFI_URL_*`, passing `x-hifi-slot` and the user's cookie along so one
//! user's request never mixes releases — and four card branches: two
//! ordinary features, one that conflicts with another, and one whose routes
//! fail for real users while its health check passes; plus a price that has
//! been wrong since the first commit, and the hotfix branch that corrects it.

use std::path::Path;
use std::process::Command;

use hifi_core::layout::{CONFIG_FILE, STATE_DIR};

use super::containers;
use crate::error::{Failure, Result};

/// What the shop's services are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// python3 programs run as local processes.
    Python,
    /// busybox images run as containers of the Docker engine.
    Containers,
}

impl Flavor {
    /// The catalog's public route.
    pub fn catalog_route(self) -> &'static str {
        match self {
            Flavor::Python => "/catalog",
            Flavor::Containers => containers::CATALOG_ROUTE,
        }
    }

    fn checkout_route(self) -> &'static str {
        match self {
            Flavor::Python => "/checkout",
            Flavor::Containers => containers::CHECKOUT_ROUTE,
        }
    }

    /// Writes the catalog listing `items`.
    fn catalog(self, dir: &Path, items: &str) -> Result {
        match self {
            Flavor::Python => write(dir, "services/catalog/app.py", &catalog(items)),
            Flavor::Containers => containers::write_script(dir, containers::catalog(items)),
        }
    }

    /// Writes checkout offering `methods`.
    fn checkout(self, dir: &Path, methods: &str) -> Result {
        match self {
            Flavor::Python => write(dir, "services/checkout/app.py", &checkout(methods)),
            Flavor::Containers => containers::write_script(dir, containers::checkout(methods)),
        }
    }

    /// Writes the gateway (`broken`: its routes fail, its health passes).
    fn gateway(self, dir: &Path, broken: bool) -> Result {
        match self {
            Flavor::Python => write(dir, "services/gateway/app.py", &gateway(broken)),
            Flavor::Containers => containers::write_script(dir, containers::gateway(broken)),
        }
    }
}

/// The ports the demo's environments listen on.
#[derive(Debug, Clone)]
pub struct Ports {
    /// (environment, port), lowest environment first.
    pub envs: Vec<(&'static str, u16)>,
}

impl Ports {
    /// The port of an environment.
    pub fn of(&self, env: &str) -> u16 {
        self.envs
            .iter()
            .find(|(e, _)| *e == env)
            .map(|(_, p)| *p)
            .unwrap_or(0)
    }
}

/// Picks six ports: 8100, 8200, … when they are free, else free ones.
pub fn pick_ports() -> Result<Ports> {
    let names = ["dev", "uat", "staging", "prep", "prod", "hotfix"];
    let preferred: Vec<u16> = (1..=6).map(|i| 8000 + 100 * i).collect();
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let ports = if preferred.iter().all(|p| free(*p)) {
        preferred
    } else {
        // Hold every listener until all six are chosen, so none repeats.
        let listeners: Vec<std::net::TcpListener> = (0..names.len())
            .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Failure::other(format!("cannot find free ports: {e}")))?;
        listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
            .collect()
    };
    Ok(Ports {
        envs: names.into_iter().zip(ports).collect(),
    })
}

/// Timings: short for `--once`, comfortable to watch otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Soak of prep (and the other environments).
    pub soak: &'static str,
    /// Interval of each canary step in prod.
    pub interval: &'static str,
}

const SERVICE_PRELUDE: &str = r#"import http.server, json, os, urllib.request

SLOT = os.environ.get("HIFI_SLOT", "?")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-served-slot", SLOT)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass
"#;

const SERVICE_MAIN: &str = r#"

# A backlog of 5 (the default) drops connections under a burst of users.
http.server.ThreadingHTTPServer.request_queue_size = 128
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
server.serve_forever()
"#;

/// The catalog's prices, kept apart from its code so a price fix never
/// touches the lines features change.
fn prices(espresso: &str) -> String {
    format!(
        "{{\n  \"espresso\": {espresso},\n  \"filter\": 3.2,\n  \"cold brew\": 4.1,\n  \"pumpkin spice\": 4.9\n}}\n"
    )
}

fn catalog(items: &str) -> String {
    format!(
        "{SERVICE_PRELUDE}
ITEMS = {items}
PRICES = json.load(open(\"prices.json\"))


class Catalog(Handler):
    def do_GET(self):
        if self.path == \"/healthz\":
            return self.reply(200, {{\"ok\": True}})
        prices = {{item: PRICES.get(item) for item in ITEMS}}
        self.reply(200, {{\"service\": \"catalog\", \"slot\": SLOT, \"items\": ITEMS, \"prices\": prices}})


Handler = Catalog{SERVICE_MAIN}"
    )
}

fn checkout(methods: &str) -> String {
    format!(
        "{SERVICE_PRELUDE}
METHODS = {methods}


class Checkout(Handler):
    def do_GET(self):
        if self.path == \"/healthz\":
            return self.reply(200, {{\"ok\": True}})
        self.reply(200, {{\"service\": \"checkout\", \"slot\": SLOT, \"methods\": METHODS}})


Handler = Checkout{SERVICE_MAIN}"
    )
}

fn gateway(broken: bool) -> String {
    let guard = if broken {
        "            # v2 \"optimisation\": the response cache is not ready yet.\n            raise RuntimeError(\"cache not ready\")\n"
    } else {
        ""
    };
    format!(
        "{SERVICE_PRELUDE}

def call(service, path, headers):
    # Peers are found through HIFI_URL_<SERVICE>; passing x-hifi-slot keeps
    # this user's whole request on one release.
    url = os.environ[\"HIFI_URL_\" + service.upper()] + path
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


class Gateway(Handler):
    def do_GET(self):
        if self.path == \"/healthz\":
            return self.reply(200, {{\"ok\": True}})
        try:
{guard}            headers = {{\"x-hifi-slot\": self.headers.get(\"x-hifi-slot\", SLOT)}}
            if self.headers.get(\"cookie\"):
                headers[\"cookie\"] = self.headers[\"cookie\"]
            shop = {{
                \"gateway\": SLOT,
                \"catalog\": call(\"catalog\", \"/catalog\", headers),
                \"checkout\": call(\"checkout\", \"/checkout\", headers),
            }}
            self.reply(200, shop)
        except Exception as error:
            self.reply(500, {{\"error\": str(error), \"slot\": SLOT}})


Handler = Gateway{SERVICE_MAIN}"
    )
}

fn config(ports: &Ports, pace: Pace, flavor: Flavor) -> String {
    let service = |name: &str, route: &str| match flavor {
        Flavor::Python => format!(
            "[[service]]\nname = \"{name}\"\npath = \"services/{name}\"\nbuild = \"python3 -m py_compile app.py\"\nrun = \"exec python3 app.py\"\nhealth = \"/healthz\"\nroute = \"{route}\"\n\n"
        ),
        Flavor::Containers => format!(
            "[[service]]\nname = \"{name}\"\npath = \"services/{name}\"\nimage = \"Dockerfile\"\nrun = \"exec bin/busybox httpd -f -p 127.0.0.1:$PORT -h www\"\nhealth = \"/healthz\"\nroute = \"{route}\"\n\n"
        ),
    };
    let runtime = match flavor {
        Flavor::Python => "",
        Flavor::Containers => "runtime = \"docker\"\n",
    };
    let mut text = format!(
        "# The example project of `hifi demo`.\n[project]\nname = \"shop\"\nbase = \"main\"\n{runtime}\n",
    );
    text.push_str(&service("gateway", "/"));
    text.push_str(&service("catalog", flavor.catalog_route()));
    text.push_str(&service("checkout", flavor.checkout_route()));
    let soak = pace.soak;
    for (env, stage) in [
        ("dev", "In Dev"),
        ("uat", "In Test"),
        ("staging", "Ready for PO Sign-Off"),
        ("prep", "Ready for Production"),
    ] {
        text.push_str(&format!(
            "[[environment]]\nname = \"{env}\"\nport = {}\ncards_from = \"{stage}\"\nstrategy = \"blue-green\"\nsoak = \"{soak}\"\ndrain = \"5s\"\n",
            ports.of(env)
        ));
        if env == "uat" {
            text.push_str(match flavor {
                Flavor::Python => "smoke = \"python3 -c 'import os, urllib.request; urllib.request.urlopen(os.environ[\\\"HIFI_CANDIDATE_URL\\\"] + \\\"/catalog\\\", timeout=5)'\"\n",
                Flavor::Containers => "smoke = \"/bin/busybox wget -q -O /dev/null $HIFI_CANDIDATE_URL/cgi-bin/catalog\"\n",
            });
        }
        text.push_str(&format!(
            "[environment.vars]\nPAYMENT_MODE = \"{}\"\n\n",
            if env == "prep" {
                "live-sandbox"
            } else {
                "test"
            }
        ));
    }
    text.push_str(&format!(
        "[[environment]]\nname = \"prod\"\nport = {}\npromote_from = [\"prep\", \"hotfix\"]\nstrategy = \"canary\"\napprovals = 1\nsoak = \"{soak}\"\ndrain = \"5s\"\n\
         [environment.canary]\nsteps = [10, 50, 100]\ninterval = \"{}\"\nmax_error_rate = 0.02\nmax_p99_ms = 800\nmin_requests = 20\n\
         [environment.vars]\nPAYMENT_MODE = \"live\"\n\n",
        ports.of("prod"),
        pace.interval
    ));
    text.push_str(&format!(
        "# The hotfix lane: prod's live release plus the open hotfix cards.\n\
         [[environment]]\nname = \"hotfix\"\nport = {}\nhotfix_of = \"prod\"\nstrategy = \"blue-green\"\nsoak = \"{soak}\"\ndrain = \"5s\"\n\
         [environment.vars]\nPAYMENT_MODE = \"live-sandbox\"\n",
        ports.of("hotfix")
    ));
    text
}

fn git(dir: &Path, args: &[&str]) -> Result {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "hifi demo")
        .env("GIT_AUTHOR_EMAIL", "demo@hifi.local")
        .env("GIT_COMMITTER_NAME", "hifi demo")
        .env("GIT_COMMITTER_EMAIL", "demo@hifi.local")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| Failure::other(format!("cannot run git: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Failure::other(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

fn write(dir: &Path, path: &str, text: &str) -> Result {
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, text)?;
    Ok(())
}

/// One card of the story.
pub struct DemoCard {
    /// Id.
    pub id: &'static str,
    /// Branch.
    pub branch: &'static str,
    /// Title.
    pub title: &'static str,
}

/// The hotfix card, added when prod's wrong price is reported.
pub const FIX: DemoCard = DemoCard {
    id: "FIX-5",
    branch: "hotfix/espresso-price",
    title: "Espresso costs 2.50, not 25.00",
};

/// The four cards, in the order the story adds them.
pub const CARDS: [DemoCard; 4] = [
    DemoCard {
        id: "PAY-1",
        branch: "feature/pay-by-card",
        title: "Pay by card",
    },
    DemoCard {
        id: "CAT-2",
        branch: "feature/cold-brew",
        title: "Cold brew in the catalog",
    },
    DemoCard {
        id: "CAT-3",
        branch: "feature/seasonal",
        title: "Seasonal catalog",
    },
    DemoCard {
        id: "GW-4",
        branch: "feature/gateway-cache",
        title: "Gateway response cache",
    },
];

/// Writes the project into `dir` (empty or missing) and commits it.
pub fn generate(dir: &Path, ports: &Ports, pace: Pace, flavor: Flavor) -> Result {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Err(Failure::other(format!(
            "{} is not empty; the demo needs an empty directory",
            dir.display()
        )));
    }
    git(dir, &["init", "-q", "-b", "main"])?;
    if flavor == Flavor::Containers {
        for service in ["gateway", "catalog", "checkout"] {
            containers::scaffold(dir, service)?;
        }
    }
    flavor.gateway(dir, false)?;
    flavor.catalog(dir, "[\"espresso\", \"filter\"]")?;
    // The bug nobody sees for a while: a price off by a factor of ten.
    write(dir, "services/catalog/prices.json", &prices("25.0"))?;
    flavor.checkout(dir, "[\"cash\"]")?;
    write(dir, CONFIG_FILE, &config(ports, pace, flavor))?;
    write(dir, ".gitignore", &format!("{STATE_DIR}/\n__pycache__/\n"))?;
    write(
        dir,
        "README.md",
        "# shop\n\nThe example project of `hifi demo`.\n",
    )?;
    git(dir, &["add", "-A"])?;
    git(
        dir,
        &["commit", "-q", "-m", "shop: gateway, catalog and checkout"],
    )?;

    let branch = |name: &str, change: &dyn Fn() -> Result, message: &str| -> Result {
        git(dir, &["checkout", "-q", "-b", name, "main"])?;
        change()?;
        git(dir, &["commit", "-q", "-am", message])?;
        git(dir, &["checkout", "-q", "main"])
    };
    branch(
        CARDS[0].branch,
        &|| flavor.checkout(dir, "[\"cash\", \"card\"]"),
        "checkout: pay by card",
    )?;
    branch(
        CARDS[1].branch,
        &|| flavor.catalog(dir, "[\"espresso\", \"filter\", \"cold brew\"]"),
        "catalog: cold brew",
    )?;
    // Same line as CAT-2, differently: the two cannot both be merged.
    branch(
        CARDS[2].branch,
        &|| flavor.catalog(dir, "[\"espresso\", \"pumpkin spice\"]"),
        "catalog: seasonal menu",
    )?;
    branch(
        CARDS[3].branch,
        &|| flavor.gateway(dir, true),
        "gateway: response cache",
    )?;
    branch(
        FIX.branch,
        &|| write(dir, "services/catalog/prices.json", &prices("2.5")),
        "catalog: espresso costs 2.50",
    )?;
    Ok(())
}
