//! `hifi demo`: the whole story on a generated example project.
//!
//! The demo is a user of hifi like any other: it generates a repository
//! ([`project`]), then runs the very `hifi` commands a person would type —
//! shown as typed — and tells what happened by reading hifi's own state
//! (the store) and what its simulated users ([`load`]) really got back.
//! Every claim it prints is checked; with `--once` the demo exits 0 only if
//! every one held.
//!
//! Whatever happens — a failed step, Ctrl-C half-way — a guard runs
//! `hifi down`, so no process and no port is left behind.

mod containers;
mod load;
mod project;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Output as ProcessOutput, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hifi_app::deploy::Deployment;
use hifi_app::status::EnvStatus;
use hifi_app::{Actor, Project};
use hifi_core::deployment::DeploymentState;
use hifi_core::{ReleaseId, Routing, Verdict};

use self::load::{Load, Tally, get_json};
use self::project::{CARDS, FIX, Flavor, Pace, Ports};
use crate::error::{Failure, Result};

/// Options of `hifi demo`.
pub struct DemoOptions {
    /// Short intervals, stop everything at the end, exit 0 only if every claim held.
    pub once: bool,
    /// Where to generate the project (default: a new temporary directory).
    pub dir: Option<PathBuf>,
    /// The shop as busybox containers of the Docker engine.
    pub containers: bool,
}

/// Runs the demo.
pub fn run(options: DemoOptions) -> Result {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::other(format!("cannot start the async runtime: {e}")))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
            }
        });
    }
    let (dir, temporary) = match &options.dir {
        Some(dir) => (dir.clone(), false),
        None => {
            let dir = std::env::temp_dir().join(format!("hifi-demo-{}", std::process::id()));
            (dir, true)
        }
    };
    let pace = if options.once {
        Pace {
            soak: "1s",
            interval: "2s",
        }
    } else {
        Pace {
            soak: "3s",
            interval: "8s",
        }
    };
    let flavor = if options.containers {
        containers::check()?;
        let engine = hifi_runtime::docker::Engine::from_env();
        runtime.block_on(engine.ping()).map_err(|e| {
            Failure::other(format!("the container demo needs a Docker engine: {e}"))
        })?;
        Flavor::Containers
    } else {
        Flavor::Python
    };
    let ports = project::pick_ports()?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::other(format!("cannot find the hifi binary: {e}")))?;
    let mut story = Story {
        hifi: Hifi {
            exe,
            dir: dir.clone(),
        },
        ports,
        runtime,
        interrupted,
        once: options.once,
        flavor,
        claims: Vec::new(),
        up: false,
        fancy: std::io::stdout().is_terminal(),
        reader: Actor::local("demo"),
    };
    let told = story.tell(pace);
    let stopped = story.stop_everything();
    if temporary && options.once {
        let _ = std::fs::remove_dir_all(&dir);
    }
    told?;
    stopped?;
    story.verdict()
}

/// Runs `hifi` as the user would.
struct Hifi {
    exe: PathBuf,
    dir: PathBuf,
}

impl Hifi {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs quietly and returns what it printed.
    fn output(&self, args: &[&str]) -> Result<ProcessOutput> {
        self.command(args)
            .output()
            .map_err(|e| Failure::other(format!("cannot run hifi {}: {e}", args.join(" "))))
    }
}

struct Claim {
    text: String,
    held: bool,
}

struct Story {
    hifi: Hifi,
    ports: Ports,
    runtime: tokio::runtime::Runtime,
    interrupted: Arc<AtomicBool>,
    once: bool,
    flavor: Flavor,
    claims: Vec<Claim>,
    up: bool,
    fancy: bool,
    /// Who the demo reads hifi's views as.
    reader: Actor,
}

fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Story {
    /// The project, as the demo reads it: through hifi's own views.
    fn project(&self) -> Result<Project> {
        Ok(Project::open(&self.hifi.dir)?)
    }

    /// What runs in one environment.
    fn env(&self, env: &str) -> Result<EnvStatus> {
        let status = self.project()?.status(&self.reader, Some(env))?;
        status
            .environments
            .into_iter()
            .next()
            .ok_or_else(|| Failure::other(format!("no status for {env}")))
    }

    fn check_interrupted(&self) -> Result {
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(Failure::other(
                "interrupted; everything hifi started is being stopped",
            ));
        }
        Ok(())
    }

    fn chapter(&self, title: &str) -> Result {
        self.check_interrupted()?;
        if self.fancy {
            println!("\n\x1b[1m── {title}\x1b[0m");
        } else {
            println!("\n── {title}");
        }
        Ok(())
    }

    fn say(&self, text: &str) {
        println!("{text}");
    }

    /// Records a claim and prints it with its verdict.
    fn claim(&mut self, held: bool, text: String) {
        let mark = if held { "✓" } else { "✗" };
        println!("  {mark} {text}");
        self.claims.push(Claim { text, held });
    }

    /// Shows a command as typed, runs it, shows what it printed (indented).
    fn run(&mut self, args: &[&str]) -> Result<ProcessOutput> {
        self.check_interrupted()?;
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("\"{a}\"")
                } else {
                    a.to_string()
                }
            })
            .collect();
        if self.fancy {
            println!("\x1b[36m$ hifi {}\x1b[0m", shown.join(" "));
        } else {
            println!("$ hifi {}", shown.join(" "));
        }
        let output = self.hifi.output(args)?;
        for stream in [&output.stderr, &output.stdout] {
            for line in String::from_utf8_lossy(stream).lines() {
                println!("  {line}");
            }
        }
        self.check_interrupted()?;
        Ok(output)
    }

    /// Runs a command that must succeed.
    fn must(&mut self, args: &[&str]) -> Result<String> {
        let output = self.run(args)?;
        if !output.status.success() {
            return Err(Failure::other(format!(
                "`hifi {}` failed; the demo cannot go on",
                args.join(" ")
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    fn load(&self, env: &str) -> Load {
        let url = format!("http://127.0.0.1:{}/", self.ports.of(env));
        Load::start(&self.runtime, &url, 16, Duration::from_millis(40))
    }

    fn latest_deployment(&self, env: &str) -> Result<Deployment> {
        self.project()?
            .history(&self.reader, env)?
            .into_iter()
            .next()
            .map(|entry| entry.deployment)
            .ok_or_else(|| Failure::other(format!("no deployment was recorded in {env}")))
    }

    /// Follows a deployment until it ends, printing its steps and, with a
    /// load running, how the users are split and what they get.
    fn follow(&mut self, env: &str, id: i64, load: Option<&Load>) -> Result<Deployment> {
        let project = self.project()?;
        let mut seen = 0;
        let mut last_split = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(180);
        let start = load.map(Load::tally).unwrap_or_default();
        loop {
            self.check_interrupted()?;
            let events = project.deployment_events(&self.reader, id)?;
            for e in &events[seen.min(events.len())..] {
                println!("  · {}", e.message);
            }
            seen = events.len();
            let d = project.deployment(&self.reader, id)?;
            if let Some(load) = load
                && last_split.elapsed() >= Duration::from_secs(1)
                && d.state == DeploymentState::Verifying
            {
                last_split = Instant::now();
                // Only a canary splits users; a blue-green switch is one step.
                let routing = self.env(env)?.routing;
                if routing.candidate.is_some() && routing.weight > 0.0 {
                    println!("    {}", split_line(&routing, &load.tally().since(&start)));
                }
            }
            if !d.state.is_in_progress() {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(Failure::other(format!(
                    "deployment #{id} in {env} did not finish within 3 minutes"
                )));
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Deploys (`args` is the hifi command) while users play, then states
    /// what the users saw.
    fn deploy_under_load(&mut self, env: &str, args: &[&str]) -> Result<(Deployment, Tally)> {
        let load = self.load(env);
        // Let the users settle on the current state first.
        std::thread::sleep(Duration::from_millis(500));
        let before = load.tally();
        self.must(args)?;
        let d = self.latest_deployment(env)?;
        let d = self.follow(env, d.id, Some(&load))?;
        std::thread::sleep(Duration::from_millis(500));
        let tally = load.stop(&self.runtime).since(&before);
        Ok((d, tally))
    }

    fn wait_verified(&mut self, env: &str, release: &ReleaseId) -> Result<bool> {
        let project = self.project()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            self.check_interrupted()?;
            let detail = project.release(&self.reader, release.as_str())?;
            if detail.verified.iter().any(|v| v.env == env) {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(false)
    }

    fn live_release(&self, env: &str) -> Result<Option<ReleaseId>> {
        Ok(self.env(env)?.routing.active.map(|a| a.release))
    }

    fn tell(&mut self, pace: Pace) -> Result {
        let dir = self.hifi.dir.clone();
        self.say("hifi demo — deploying a small shop through dev → uat → staging → prep → prod");
        project::generate(&dir, &self.ports, pace, self.flavor)?;
        self.say(&format!(
            "\nGenerated an example project in {}:",
            dir.display()
        ));
        self.say(match self.flavor {
            Flavor::Python => {
                "  three python3 services: gateway (calls catalog and checkout), catalog, checkout"
            }
            Flavor::Containers => {
                "  three services as busybox images, run as Docker containers: gateway (calls catalog and checkout), catalog, checkout"
            }
        });
        self.say("  four card branches: PAY-1 and CAT-2 (features), CAT-3 (clashes with CAT-2),");
        self.say("  GW-4 (its routes fail for real users; its health check passes)");

        self.cards()?;
        self.compose()?;
        self.blue_green()?;
        let first = self.first_to_prod()?;
        let second = self.canary_to_prod()?;
        self.broken_canary(&second)?;
        self.rollback(&first)?;
        self.hotfix(&first)?;
        self.closing()
    }

    fn cards(&mut self) -> Result {
        self.chapter("1. Cards move across the board")?;
        for card in &CARDS {
            self.must(&[
                "card",
                "add",
                card.id,
                "--branch",
                card.branch,
                "--title",
                card.title,
            ])?;
        }
        self.must(&["card", "move", "PAY-1", "in-test"])?;
        self.must(&["card", "move", "CAT-2", "in-dev"])?;
        self.must(&["card", "move", "CAT-3", "in-dev"])?;
        self.must(&["board"])?;
        Ok(())
    }

    fn compose(&mut self) -> Result {
        self.chapter("2. Each environment is composed from exactly the cards that reached it")?;
        let clash = self.run(&["compose", "dev"])?;
        let flagged = self
            .project()?
            .board(&self.reader)?
            .conflicts
            .iter()
            .any(|f| {
                f.card.as_str() == "CAT-3" && f.with_cards.iter().any(|c| c.as_str() == "CAT-2")
            });
        self.claim(
            !clash.status.success() && flagged,
            "CAT-3 could not be merged with CAT-2: dev was left as it was and CAT-3 is flagged on the board".into(),
        );
        self.say("The team takes CAT-3 back to rework it; it simply drops out:");
        self.must(&["card", "move", "CAT-3", "ready-for-dev"])?;
        self.must(&["compose", "dev"])?;
        self.must(&["compose", "uat"])?;
        let uat = self
            .env("uat")?
            .composed
            .ok_or_else(|| Failure::other("uat was not composed"))?;
        let cards: Vec<String> = self
            .project()?
            .release(&self.reader, uat.as_str())?
            .summary
            .release
            .cards
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        self.claim(
            cards == ["PAY-1"],
            format!(
                "uat holds only the card that reached In Test: {}",
                cards.join(", ")
            ),
        );
        Ok(())
    }

    fn blue_green(&mut self) -> Result {
        self.chapter("3. Blue-green: a new release starts beside the old one and takes traffic only when healthy")?;
        self.must(&["up", "--detach"])?;
        self.up = true;
        for env in ["dev", "uat"] {
            let (d, _) = self.deploy_under_load(env, &["deploy", env])?;
            self.claim(d.state == DeploymentState::Live, format!("{env} is live"));
        }
        self.say("CAT-2 passes its developer checks and moves to In Test: uat is composed anew and switches while users keep shopping.");
        self.must(&["card", "move", "CAT-2", "in-test"])?;
        self.must(&["compose", "uat"])?;
        let (d, tally) = self.deploy_under_load("uat", &["deploy", "uat"])?;
        self.claim(
            d.state == DeploymentState::Live && tally.failed == 0 && tally.total() > 0,
            format!(
                "{} requests during the switch in uat, {} failed",
                group(tally.total()),
                tally.failed
            ),
        );
        Ok(())
    }

    fn through_prep(&mut self, card: &str) -> Result<ReleaseId> {
        self.must(&["card", "move", card, "ready-for-production"])?;
        let id = self.must(&["compose", "prep"])?;
        let (d, _) = self.deploy_under_load("prep", &["deploy", "prep"])?;
        if d.state != DeploymentState::Live {
            return Err(Failure::other(format!(
                "prep did not go live: {}",
                d.reason.unwrap_or_default()
            )));
        }
        let release = self
            .project()?
            .release(&self.reader, &id)?
            .summary
            .release
            .id;
        let verified = self.wait_verified("prep", &release)?;
        self.claim(
            verified,
            format!("prep verified release {release}: live and healthy for its soak time"),
        );
        Ok(release)
    }

    fn first_to_prod(&mut self) -> Result<ReleaseId> {
        self.chapter("4. prep is verified and signed off; prod takes exactly prep's release")?;
        self.say("PAY-1 passed its tests; the product owner looks at it in staging first.");
        self.must(&["card", "move", "PAY-1", "ready-for-po-sign-off"])?;
        self.must(&["compose", "staging"])?;
        let (d, _) = self.deploy_under_load("staging", &["deploy", "staging"])?;
        self.claim(
            d.state == DeploymentState::Live,
            "staging is live for the sign-off".into(),
        );
        let release = self.through_prep("PAY-1")?;
        let refused = self.run(&["promote", "prep", "prod"])?;
        self.claim(
            !refused.status.success(),
            "prod refused the release until the product owner signed it off".into(),
        );
        self.must(&["approve", "prod", "--as", "po@shop"])?;
        self.say("prod has nothing live yet, so there is no one to protect: the first release goes straight in.");
        let (d, _) = self.deploy_under_load("prod", &["promote", "prep", "prod"])?;
        let live = self.live_release("prod")?;
        self.claim(
            d.state == DeploymentState::Live && live.as_ref() == Some(&release),
            format!("prod runs release {release}, the very release verified in prep"),
        );
        Ok(release)
    }

    fn canary_to_prod(&mut self) -> Result<ReleaseId> {
        self.chapter(
            "5. A canary: the next release reaches a small, sticky share of prod's users first",
        )?;
        let release = self.through_prep("CAT-2")?;
        self.must(&["approve", "prod", "--as", "po@shop"])?;
        let (d, tally) = self.deploy_under_load("prod", &["promote", "prep", "prod"])?;
        let analyses = self
            .project()?
            .history(&self.reader, "prod")?
            .into_iter()
            .find(|entry| entry.deployment.id == d.id)
            .map(|entry| entry.analyses)
            .unwrap_or_default();
        let passed = analyses
            .iter()
            .filter(|a| a.verdict == Verdict::Pass)
            .count();
        self.claim(
            d.state == DeploymentState::Live && passed > 0,
            format!("the canary passed {passed} judged step(s) and went live"),
        );
        self.claim(
            tally.failed == 0 && tally.total() > 0,
            format!(
                "{} requests during the canary, {} failed",
                group(tally.total()),
                tally.failed
            ),
        );
        let diff = self.run(&["diff", "prep", "prod"])?;
        let same = String::from_utf8_lossy(&diff.stdout).contains("Same release in both");
        self.claim(
            same,
            "prep and prod run the same release; only their vars differ".into(),
        );
        Ok(release)
    }

    fn broken_canary(&mut self, good: &ReleaseId) -> Result {
        self.chapter("6. A card that breaks for real users is stopped by the canary")?;
        self.say("GW-4 passes its health check, so prep (which has no users) is happy with it.");
        let bad = self.through_prep("GW-4")?;
        self.must(&["approve", "prod", "--as", "po@shop"])?;
        let (d, tally) = self.deploy_under_load("prod", &["promote", "prep", "prod"])?;
        let reason = d.reason.clone().unwrap_or_default();
        self.claim(
            d.state == DeploymentState::Aborted && reason.contains("error ratio"),
            format!("the canary of release {bad} was aborted by itself: {reason}"),
        );
        let live = self.live_release("prod")?;
        self.claim(
            live.as_ref() == Some(good),
            format!("prod still runs release {good}"),
        );
        let routing = self.env("prod")?.routing;
        let canary_slot = d.slot.map(|s| s.to_string()).unwrap_or_default();
        let (canary_ok, canary_failed) =
            tally.by_slot.get(&canary_slot).copied().unwrap_or_default();
        let others_failed = tally.failed - canary_failed;
        self.claim(
            canary_failed > 0 && others_failed == 0,
            format!(
                "only the canary's share of users saw errors ({} of {} requests on {canary_slot}); the other {} requests all succeeded",
                group(canary_failed),
                group(canary_ok + canary_failed),
                group(tally.total() - canary_ok - canary_failed)
            ),
        );
        self.claim(
            routing.candidate.is_none() && routing.standby.is_some(),
            "the aborted rollout left prod as it was, warm standby included".into(),
        );
        Ok(())
    }

    fn rollback(&mut self, previous: &ReleaseId) -> Result {
        self.chapter("7. Rollback: the previous state is still warm, so going back is one step")?;
        let (d, tally) = self.deploy_under_load("prod", &["rollback", "prod"])?;
        let took = d.updated_at - d.created_at;
        let live = self.live_release("prod")?;
        self.claim(
            d.state == DeploymentState::Live && live.as_ref() == Some(previous),
            format!(
                "prod is back on release {previous}, {took} ms after the rollback was asked for"
            ),
        );
        self.claim(
            tally.failed == 0 && tally.total() > 0,
            format!(
                "{} requests during the rollback, {} failed",
                group(tally.total()),
                tally.failed
            ),
        );
        Ok(())
    }

    /// What prod's users are charged for an espresso, asked as a user would.
    fn espresso_in_prod(&self) -> Option<f64> {
        let url = format!(
            "http://127.0.0.1:{}{}",
            self.ports.of("prod"),
            self.flavor.catalog_route()
        );
        get_json(&self.runtime, &url)?["prices"]["espresso"].as_f64()
    }

    fn hotfix(&mut self, live: &ReleaseId) -> Result {
        self.chapter("8. Reacting to production: the hotfix lane")?;
        let price = self.espresso_in_prod();
        self.claim(
            price == Some(25.0),
            format!(
                "a user reports it: prod charges {} for an espresso (wrong since the first release; no error rate shows it)",
                price.map_or("nothing".into(), |p| format!("{p:.2}"))
            ),
        );
        self.say("prep holds work that is not ready (GW-4), so the fix cannot wait for it: it gets a hotfix card.");
        self.must(&[
            "card", "add", FIX.id, "--branch", FIX.branch, "--title", FIX.title, "--hotfix",
        ])?;
        let id = self.must(&["compose", "hotfix"])?;
        let project = self.project()?;
        let fix = project.release(&self.reader, &id)?.summary.release;
        let prod = project
            .release(&self.reader, live.as_str())?
            .summary
            .release;
        let cards: Vec<String> = fix.cards.iter().map(|c| c.id.to_string()).collect();
        self.claim(
            fix.base_commit == prod.commit && cards == ["PAY-1", FIX.id],
            format!(
                "hotfix release {} is prod's live release {live} plus {} and nothing else: cards {}",
                fix.id,
                FIX.id,
                cards.join(", ")
            ),
        );
        let (d, _) = self.deploy_under_load("hotfix", &["deploy", "hotfix"])?;
        let verified = d.state == DeploymentState::Live && self.wait_verified("hotfix", &fix.id)?;
        self.claim(
            verified,
            format!("the hotfix environment verified release {}", fix.id),
        );
        self.must(&["approve", "prod", "--as", "po@shop"])?;
        let (d, tally) = self.deploy_under_load("prod", &["promote", "hotfix", "prod"])?;
        let price = self.espresso_in_prod();
        self.claim(
            d.state == DeploymentState::Live
                && self.live_release("prod")?.as_ref() == Some(&fix.id)
                && price == Some(2.5),
            format!(
                "prod runs the fix: an espresso costs {}, and {} requests during the promotion, {} failed",
                price.map_or("nothing".into(), |p| format!("{p:.2}")),
                group(tally.total()),
                tally.failed
            ),
        );
        let refused = self.run(&["promote", "prep", "prod"])?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        self.claim(
            !refused.status.success() && stderr.contains(FIX.id),
            format!("prep's release lacks {}, so promoting it to prod is refused: it would undo the fix", FIX.id),
        );
        // Verified in prod, the card is Done: past every stage.
        self.wait_verified("prod", &fix.id)?;
        let id = self.must(&["compose", "prep"])?;
        let next = self.project()?.release(&self.reader, &id)?.summary.release;
        self.claim(
            next.cards.iter().any(|c| c.id.as_str() == FIX.id),
            format!(
                "{} is Done, so prep's next release {} carries it",
                FIX.id, next.id
            ),
        );
        Ok(())
    }

    fn closing(&mut self) -> Result {
        self.chapter("9. Where everything stands")?;
        self.must(&["board"])?;
        self.must(&["status"])?;
        if self.once {
            return Ok(());
        }
        self.say("\nEverything is still running. Try it:");
        for (env, port) in &self.ports.envs {
            self.say(&format!("  {env:<8} curl -s http://127.0.0.1:{port}/"));
        }
        let prod = self.ports.of("prod");
        self.say(&format!(
            "  as a tester, reach a candidate being rolled out with: curl -H 'x-hifi-slot: candidate' http://127.0.0.1:{prod}/"
        ));
        self.say(&format!(
            "  hifi commands work there too: cd {} && hifi status",
            self.hifi.dir.display()
        ));
        self.say("Press Ctrl-C to stop everything.");
        while !self.interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.interrupted.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// `hifi down`, then checks that no port is left listening.
    fn stop_everything(&mut self) -> Result {
        if !self.up {
            return Ok(());
        }
        println!("\n$ hifi down");
        let output = self.hifi.output(&["down"])?;
        for line in String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&output.stderr).lines())
        {
            println!("  {line}");
        }
        self.up = false;
        let open: Vec<u16> = self
            .ports
            .envs
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| {
                std::net::TcpStream::connect_timeout(
                    &([127, 0, 0, 1], *p).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
            })
            .collect();
        let instances: usize = self
            .project()?
            .status(&self.reader, None)?
            .environments
            .iter()
            .map(|e| e.instances.len())
            .sum();
        self.claim(
            output.status.success() && open.is_empty() && instances == 0,
            "hifi down stopped every process and freed every port".into(),
        );
        Ok(())
    }

    fn verdict(&self) -> Result {
        let failed: Vec<&Claim> = self.claims.iter().filter(|c| !c.held).collect();
        println!();
        if failed.is_empty() {
            println!("Every claim held ({} checked).", self.claims.len());
            Ok(())
        } else {
            Err(Failure::other(format!(
                "{} of {} claims did not hold:\n  {}",
                failed.len(),
                self.claims.len(),
                failed
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            )))
        }
    }
}

/// "10 % of users on green: 214 requests, 0 failed · blue: 1,930, 0 failed".
fn split_line(routing: &Routing, tally: &Tally) -> String {
    let Some(candidate) = &routing.candidate else {
        return format!(
            "{} requests so far, {} failed",
            group(tally.total()),
            tally.failed
        );
    };
    let slot = candidate.slot.as_str();
    let (c_ok, c_failed) = tally.by_slot.get(slot).copied().unwrap_or_default();
    let (o_ok, o_failed) = (tally.ok - c_ok, tally.failed - c_failed);
    let ratio = |failed: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            failed as f64 * 100.0 / total as f64
        }
    };
    format!(
        "{} % of users on {slot}: {} requests, {:.1} % failed · others: {} requests, {:.1} % failed",
        routing.weight,
        group(c_ok + c_failed),
        ratio(c_failed, c_ok + c_failed),
        group(o_ok + o_failed),
        ratio(o_failed, o_ok + o_failed)
    )
}
