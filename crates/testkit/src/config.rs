//! One builder of `hifi.toml` text for tests.
//!
//! ```
//! use hifi_testkit::config::{Config, Env, Service};
//!
//! let text = Config::new("shop")
//!     .base("main")
//!     .service(Service::new("catalog").build("python3 -m py_compile app.py"))
//!     .environment(Env::cards("dev", 18100, "In Dev").strategy("blue-green").soak("30s"))
//!     .environment(
//!         Env::promote("prod", 18500, "dev")
//!             .strategy("canary")
//!             .canary("steps = [10, 50, 100]\ninterval = \"30s\""),
//!     )
//!     .render();
//! assert!(text.starts_with("[project]\nname = \"shop\"\nbase = \"main\"\n"));
//! ```
//!
//! What it renders is plain and predictable, one `key = value` a line, in
//! this order, so a test may still edit the text (`replace`) or point at a
//! line:
//!
//! ```toml
//! [project]
//! name = "shop"
//! base = "main"          # only when set
//!
//! [workflow]             # only when workflow lines were given
//! follow_releases = false
//!
//! [[service]]            # each service, in the order added
//! name = "catalog"
//! path = "services/catalog"
//! build = "..."          # only when set
//! run = "python3 app.py"
//! health = "/healthz"
//! route = "/catalog"
//!
//! [[environment]]        # each environment, in the order added
//! name = "dev"
//! port = 18100
//! cards_from = "In Dev"  # or promote_from
//! strategy = "..."       # every other key, in the order first set
//! [environment.canary]   # only when canary lines were given
//! steps = [10, 50, 100]
//! [environment.vars]     # only when vars were given
//! MODE = "test"
//! ```
//!
//! Strings are written as TOML basic strings, escaped by [`quote`]. The
//! builder does not validate against hifi's rules: tests of bad configs
//! build them on purpose.

use std::fmt::Write as _;

/// A whole `hifi.toml`: `[project]`, then services, then environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    name: String,
    base: Option<String>,
    /// Lines of `[workflow]`, as given.
    workflow: Vec<String>,
    services: Vec<Service>,
    environments: Vec<Env>,
}

impl Config {
    /// A project named `name`, with no `base` line (hifi's default is main),
    /// no service and no environment.
    pub fn new(name: &str) -> Config {
        Config {
            name: name.to_owned(),
            base: None,
            workflow: Vec::new(),
            services: Vec::new(),
            environments: Vec::new(),
        }
    }

    /// The branch releases are composed on (`base = "..."`).
    pub fn base(mut self, branch: &str) -> Config {
        self.base = Some(branch.to_owned());
        self
    }

    /// Lines of `[workflow]`, TOML text written as given
    /// (`follow_releases = false`); each call appends.
    pub fn workflow(mut self, lines: &str) -> Config {
        self.workflow.extend(
            lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
        self
    }

    /// Adds a `[[service]]` after those added so far.
    pub fn service(mut self, service: Service) -> Config {
        self.services.push(service);
        self
    }

    /// Adds each of `services`, in order.
    pub fn services(mut self, services: impl IntoIterator<Item = Service>) -> Config {
        self.services.extend(services);
        self
    }

    /// Adds an `[[environment]]` after those added so far.
    pub fn environment(mut self, env: Env) -> Config {
        self.environments.push(env);
        self
    }

    /// Adds each of `envs`, in order.
    pub fn environments(mut self, envs: impl IntoIterator<Item = Env>) -> Config {
        self.environments.extend(envs);
        self
    }

    /// The `hifi.toml` text.
    pub fn render(&self) -> String {
        let mut out = String::from("[project]\n");
        line(&mut out, "name", &quote(&self.name));
        if let Some(base) = &self.base {
            line(&mut out, "base", &quote(base));
        }
        if !self.workflow.is_empty() {
            out.push_str("\n[workflow]\n");
            for l in &self.workflow {
                out.push_str(l);
                out.push('\n');
            }
        }
        for service in &self.services {
            out.push('\n');
            service.render_into(&mut out);
        }
        for env in &self.environments {
            out.push('\n');
            env.render_into(&mut out);
        }
        out
    }
}

/// One `[[service]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    name: String,
    path: String,
    build: Option<String>,
    run: String,
    health: String,
    route: String,
    image: Option<String>,
    replicas: Option<u16>,
    protocol: Option<String>,
    request_timeout: Option<String>,
}

impl Service {
    /// A service laid out the way the test projects lay them out: source in
    /// `services/NAME`, run as `python3 app.py`, healthy when `/healthz`
    /// answers, routed at `/NAME`, and no build. Each can be changed.
    pub fn new(name: &str) -> Service {
        Service {
            name: name.to_owned(),
            path: format!("services/{name}"),
            build: None,
            run: "python3 app.py".to_owned(),
            health: "/healthz".to_owned(),
            route: format!("/{name}"),
            image: None,
            replicas: None,
            protocol: None,
            request_timeout: None,
        }
    }

    /// Its Dockerfile, relative to its path.
    pub fn image(mut self, dockerfile: &str) -> Service {
        self.image = Some(dockerfile.to_owned());
        self
    }

    /// How many instances each slot runs.
    pub fn replicas(mut self, replicas: u16) -> Service {
        self.replicas = Some(replicas);
        self
    }

    /// What its instances speak: `http1`, `h2c` or `grpc` (written as
    /// given, so a test can write one hifi refuses).
    pub fn protocol(mut self, protocol: &str) -> Service {
        self.protocol = Some(protocol.to_owned());
        self
    }

    /// How long the proxy waits for its answers, as written (`"1s"`).
    pub fn request_timeout(mut self, duration: &str) -> Service {
        self.request_timeout = Some(duration.to_owned());
        self
    }

    /// Where its source lives in the repository.
    pub fn path(mut self, path: &str) -> Service {
        self.path = path.to_owned();
        self
    }

    /// Its build command.
    pub fn build(mut self, command: &str) -> Service {
        self.build = Some(command.to_owned());
        self
    }

    /// Its run command.
    pub fn run(mut self, command: &str) -> Service {
        self.run = command.to_owned();
        self
    }

    /// Its health check path.
    pub fn health(mut self, path: &str) -> Service {
        self.health = path.to_owned();
        self
    }

    /// The path prefix routed to it.
    pub fn route(mut self, prefix: &str) -> Service {
        self.route = prefix.to_owned();
        self
    }

    fn render_into(&self, out: &mut String) {
        out.push_str("[[service]]\n");
        line(out, "name", &quote(&self.name));
        line(out, "path", &quote(&self.path));
        if let Some(build) = &self.build {
            line(out, "build", &quote(build));
        }
        line(out, "run", &quote(&self.run));
        line(out, "health", &quote(&self.health));
        line(out, "route", &quote(&self.route));
        if let Some(image) = &self.image {
            line(out, "image", &quote(image));
        }
        if let Some(replicas) = self.replicas {
            line(out, "replicas", &replicas.to_string());
        }
        if let Some(protocol) = &self.protocol {
            line(out, "protocol", &quote(protocol));
        }
        if let Some(timeout) = &self.request_timeout {
            line(out, "request_timeout", &quote(timeout));
        }
    }
}

/// Where an environment's releases come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// `cards_from = "STAGE"`.
    Cards(String),
    /// `promote_from = "ENV"`.
    Promote(String),
    /// `promote_from = ["ENV", ...]`.
    PromoteAny(Vec<String>),
    /// `hotfix_of = "ENV"`.
    Hotfix(String),
}

/// One `[[environment]]`.
///
/// `port = 0` can stand for "any port": a harness that starts hifi fills
/// it in with [`Env::port`] before rendering (reading [`Env::name`] and
/// [`Env::public_port`]); rendered as it is, hifi refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    name: String,
    port: u16,
    origin: Origin,
    /// Every other key and its value as TOML text, in the order first set.
    keys: Vec<(String, String)>,
    /// Lines of `[environment.canary]`, as given.
    canary: Vec<String>,
    /// `[environment.vars]`, in the order first set.
    vars: Vec<(String, String)>,
}

impl Env {
    /// An environment composed from the cards at `stage` (`cards_from`).
    pub fn cards(name: &str, port: u16, stage: &str) -> Env {
        Env::with_origin(name, port, Origin::Cards(stage.to_owned()))
    }

    /// An environment promoted from environment `from` (`promote_from`).
    pub fn promote(name: &str, port: u16, from: &str) -> Env {
        Env::with_origin(name, port, Origin::Promote(from.to_owned()))
    }

    /// An environment promoted from any of `from` (`promote_from = [...]`).
    pub fn promote_any(name: &str, port: u16, from: &[&str]) -> Env {
        let from = from.iter().map(|f| f.to_string()).collect();
        Env::with_origin(name, port, Origin::PromoteAny(from))
    }

    /// The hotfix environment of `of` (`hotfix_of`).
    pub fn hotfix(name: &str, port: u16, of: &str) -> Env {
        Env::with_origin(name, port, Origin::Hotfix(of.to_owned()))
    }

    fn with_origin(name: &str, port: u16, origin: Origin) -> Env {
        Env {
            name: name.to_owned(),
            port,
            origin,
            keys: Vec::new(),
            canary: Vec::new(),
            vars: Vec::new(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its public port (0 while a placeholder).
    pub fn public_port(&self) -> u16 {
        self.port
    }

    /// Sets its public port.
    pub fn port(mut self, port: u16) -> Env {
        self.port = port;
        self
    }

    /// `strategy = "..."` (`blue-green`, `canary`).
    pub fn strategy(self, strategy: &str) -> Env {
        self.set("strategy", &quote(strategy))
    }

    /// `soak = "..."`, a duration such as `30s`.
    pub fn soak(self, duration: &str) -> Env {
        self.set("soak", &quote(duration))
    }

    /// `drain = "..."`, a duration such as `1s`.
    pub fn drain(self, duration: &str) -> Env {
        self.set("drain", &quote(duration))
    }

    /// `approvals = N`.
    pub fn approvals(self, approvals: u32) -> Env {
        self.set("approvals", &approvals.to_string())
    }

    /// `smoke = "..."`, the smoke check command (quoted here).
    pub fn smoke(self, command: &str) -> Env {
        self.set("smoke", &quote(command))
    }

    /// Any key of `[[environment]]`, with `value` as TOML text written as
    /// given (quote strings yourself, or use [`quote`]). Setting a key
    /// again replaces its value where it first stood.
    pub fn set(mut self, key: &str, value: &str) -> Env {
        set(&mut self.keys, key, value);
        self
    }

    /// Lines of `[environment.canary]`, TOML text written as given
    /// (`steps = [10, 50, 100]\ninterval = "30s"`); each call appends.
    pub fn canary(mut self, lines: &str) -> Env {
        self.canary.extend(
            lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
        self
    }

    /// One entry of `[environment.vars]`, a string (quoted here). Setting a
    /// var again replaces its value where it first stood.
    pub fn var(mut self, name: &str, value: &str) -> Env {
        set(&mut self.vars, name, &quote(value));
        self
    }

    fn render_into(&self, out: &mut String) {
        out.push_str("[[environment]]\n");
        line(out, "name", &quote(&self.name));
        line(out, "port", &self.port.to_string());
        match &self.origin {
            Origin::Cards(stage) => line(out, "cards_from", &quote(stage)),
            Origin::Promote(from) => line(out, "promote_from", &quote(from)),
            Origin::PromoteAny(from) => {
                let list: Vec<String> = from.iter().map(|f| quote(f)).collect();
                line(out, "promote_from", &format!("[{}]", list.join(", ")));
            }
            Origin::Hotfix(of) => line(out, "hotfix_of", &quote(of)),
        }
        for (key, value) in &self.keys {
            line(out, key, value);
        }
        if !self.canary.is_empty() {
            out.push_str("[environment.canary]\n");
            for l in &self.canary {
                out.push_str(l);
                out.push('\n');
            }
        }
        if !self.vars.is_empty() {
            out.push_str("[environment.vars]\n");
            for (name, value) in &self.vars {
                line(out, name, value);
            }
        }
    }
}

/// `value` as a TOML basic string: in double quotes, with `\` and `"`
/// escaped, and control characters (newlines, tabs, ...) escaped so the
/// string stays on its line.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `key = value`, the key bare when TOML allows it, else quoted.
fn line(out: &mut String, key: &str, value: &str) {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        out.push_str(key);
    } else {
        out.push_str(&quote(key));
    }
    out.push_str(" = ");
    out.push_str(value);
    out.push('\n');
}

/// Sets `key` in `entries`, in place when it is there already.
fn set(entries: &mut Vec<(String, String)>, key: &str, value: &str) {
    match entries.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_owned(),
        None => entries.push((key.to_owned(), value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use toml::{Table, Value};

    use super::*;

    fn parse(text: &str) -> Table {
        text.parse::<Table>()
            .unwrap_or_else(|e| panic!("not TOML ({e}):\n{text}"))
    }

    fn array<'a>(table: &'a Table, key: &str) -> &'a Vec<Value> {
        table[key].as_array().unwrap()
    }

    fn shop() -> Config {
        Config::new("shop")
            .base("main")
            .service(
                Service::new("catalog")
                    .path("services/catalog")
                    .build("python3 -m py_compile app.py")
                    .run("python3 app.py")
                    .health("/healthz")
                    .route("/catalog"),
            )
            .service(Service::new("web").path("web").run("x").route("/"))
            .environment(
                Env::cards("dev", 18100, "In Dev")
                    .strategy("blue-green")
                    .set("soak", "\"30s\"")
                    .drain("1s")
                    .smoke("true")
                    .var("MODE", "test")
                    .var("REGION", "eu"),
            )
            .environment(
                Env::promote("prod", 18500, "dev")
                    .strategy("canary")
                    .approvals(1)
                    .canary("steps = [10, 50, 100]\ninterval = \"30s\"")
                    .canary("min_requests = 5\nmax_error_rate = 0.05\n"),
            )
    }

    #[test]
    fn the_hotfix_lane_and_a_workflow_render_as_toml() {
        let text = Config::new("shop")
            .workflow("follow_releases = false")
            .environment(Env::promote_any("prod", 8500, &["prep", "hotfix"]))
            .environment(Env::hotfix("hotfix", 8600, "prod"))
            .render();
        let value: toml::Value = toml::from_str(&text).expect("valid TOML");
        assert_eq!(value["workflow"]["follow_releases"].as_bool(), Some(false));
        let envs = value["environment"].as_array().expect("environments");
        assert_eq!(envs[0]["promote_from"].as_array().map(|a| a.len()), Some(2));
        assert_eq!(envs[1]["hotfix_of"].as_str(), Some("prod"));
    }

    #[test]
    fn renders_valid_toml_with_every_value() {
        let doc = parse(&shop().render());

        let project = doc["project"].as_table().unwrap();
        assert_eq!(project["name"].as_str(), Some("shop"));
        assert_eq!(project["base"].as_str(), Some("main"));

        let services = array(&doc, "service");
        assert_eq!(services.len(), 2);
        let catalog = services[0].as_table().unwrap();
        assert_eq!(catalog["name"].as_str(), Some("catalog"));
        assert_eq!(catalog["path"].as_str(), Some("services/catalog"));
        assert_eq!(
            catalog["build"].as_str(),
            Some("python3 -m py_compile app.py")
        );
        assert_eq!(catalog["run"].as_str(), Some("python3 app.py"));
        assert_eq!(catalog["health"].as_str(), Some("/healthz"));
        assert_eq!(catalog["route"].as_str(), Some("/catalog"));
        let web = services[1].as_table().unwrap();
        assert_eq!(web["path"].as_str(), Some("web"));
        assert_eq!(web["run"].as_str(), Some("x"));
        assert_eq!(web["route"].as_str(), Some("/"));
        assert!(!web.contains_key("build"), "no build unless given");

        let envs = array(&doc, "environment");
        assert_eq!(envs.len(), 2);
        let dev = envs[0].as_table().unwrap();
        assert_eq!(dev["name"].as_str(), Some("dev"));
        assert_eq!(dev["port"].as_integer(), Some(18100));
        assert_eq!(dev["cards_from"].as_str(), Some("In Dev"));
        assert!(!dev.contains_key("promote_from"));
        assert_eq!(dev["strategy"].as_str(), Some("blue-green"));
        assert_eq!(dev["soak"].as_str(), Some("30s"));
        assert_eq!(dev["drain"].as_str(), Some("1s"));
        assert_eq!(dev["smoke"].as_str(), Some("true"));
        let vars = dev["vars"].as_table().unwrap();
        assert_eq!(vars["MODE"].as_str(), Some("test"));
        assert_eq!(vars["REGION"].as_str(), Some("eu"));
        assert!(!dev.contains_key("canary"));

        let prod = envs[1].as_table().unwrap();
        assert_eq!(prod["promote_from"].as_str(), Some("dev"));
        assert!(!prod.contains_key("cards_from"));
        assert_eq!(prod["approvals"].as_integer(), Some(1));
        let canary = prod["canary"].as_table().unwrap();
        let steps: Vec<i64> = canary["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_integer().unwrap())
            .collect();
        assert_eq!(steps, [10, 50, 100]);
        assert_eq!(canary["interval"].as_str(), Some("30s"));
        assert_eq!(canary["min_requests"].as_integer(), Some(5));
        assert_eq!(canary["max_error_rate"].as_float(), Some(0.05));
        assert!(!prod.contains_key("vars"));
    }

    #[test]
    fn renders_one_key_a_line_in_a_fixed_order() {
        let text = Config::new("shop")
            .base("main")
            .service(Service::new("api").route("/"))
            .environment(
                Env::cards("dev", 0, "In Dev")
                    .strategy("blue-green")
                    .soak("1s")
                    .drain("2s"),
            )
            .render();
        assert_eq!(
            text,
            r#"[project]
name = "shop"
base = "main"

[[service]]
name = "api"
path = "services/api"
run = "python3 app.py"
health = "/healthz"
route = "/"

[[environment]]
name = "dev"
port = 0
cards_from = "In Dev"
strategy = "blue-green"
soak = "1s"
drain = "2s"
"#
        );
    }

    #[test]
    fn a_bare_project_has_no_base_and_no_tables() {
        let text = Config::new("shop").render();
        assert_eq!(text, "[project]\nname = \"shop\"\n");
        let doc = parse(&text);
        assert!(!doc["project"].as_table().unwrap().contains_key("base"));
        assert!(!doc.contains_key("service") && !doc.contains_key("environment"));
    }

    #[test]
    fn strings_are_escaped() {
        let nasty = "a \"quoted\" \\path\\ with 'single' quotes,\na newline and a\ttab \u{7}";
        let text = Config::new(nasty)
            .service(Service::new("api").build(nasty))
            .environment(Env::cards("dev", 1, nasty).smoke(nasty).var("x y", nasty))
            .render();
        let doc = parse(&text);
        assert_eq!(doc["project"]["name"].as_str(), Some(nasty));
        assert_eq!(doc["service"][0]["build"].as_str(), Some(nasty));
        let dev = &doc["environment"][0];
        assert_eq!(dev["cards_from"].as_str(), Some(nasty));
        assert_eq!(dev["smoke"].as_str(), Some(nasty));
        assert_eq!(dev["vars"]["x y"].as_str(), Some(nasty));
        assert_eq!(quote(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
    }

    #[test]
    fn setting_a_key_again_replaces_it_in_place() {
        let env = Env::cards("dev", 1, "In Dev")
            .soak("1s")
            .drain("2s")
            .soak("1h")
            .var("MODE", "a")
            .var("MODE", "b");
        let text = Config::new("shop").environment(env).render();
        assert!(
            text.ends_with("soak = \"1h\"\ndrain = \"2s\"\n[environment.vars]\nMODE = \"b\"\n"),
            "{text}"
        );
        let doc = parse(&text);
        assert_eq!(doc["environment"][0]["soak"].as_str(), Some("1h"));
    }

    #[test]
    fn port_placeholders_can_be_filled_in() {
        let envs = [
            Env::cards("dev", 0, "In Dev"),
            Env::promote("prod", 0, "dev"),
        ];
        assert!(envs.iter().all(|e| e.public_port() == 0));
        let filled = envs.into_iter().zip([20_001, 20_002]).map(|(env, port)| {
            assert_eq!(env.public_port(), 0, "{}", env.name());
            env.port(port)
        });
        let doc = parse(&Config::new("shop").environments(filled).render());
        let ports: Vec<(&str, i64)> = array(&doc, "environment")
            .iter()
            .map(|e| (e["name"].as_str().unwrap(), e["port"].as_integer().unwrap()))
            .collect();
        assert_eq!(ports, [("dev", 20_001), ("prod", 20_002)]);
    }
}
