//! The demo's shop as containers (`hifi demo --runtime docker`): the same
//! three services and the same story, each service a `FROM scratch` image
//! of Debian's static busybox — `httpd` serves `/healthz` as a file and the
//! service's route through a CGI script — so no registry is needed. The
//! scripts find everything relative to their service's directory, so the
//! same files would run as local processes too.

use std::path::Path;

use crate::error::{Failure, Result};

/// Where the static busybox the images are made of comes from.
pub const BUSYBOX: &str = "/bin/busybox";

/// Applets each image links to busybox.
const APPLETS: &[&str] = &["sh", "httpd", "wget", "cat"];

/// Each service's Dockerfile: busybox as `/bin` (CGI scripts start with
/// `#!/bin/sh`), the service's files in `/srv`, `httpd` in the foreground.
const DOCKERFILE: &str = "FROM scratch\nCOPY bin /bin\nCOPY . /srv\nWORKDIR /srv\nENV PATH=/bin\nCMD [\"/bin/sh\", \"-c\", \"exec httpd -f -p 127.0.0.1:$PORT -h www\"]\n";

/// The public route of the catalog (busybox runs CGI under `/cgi-bin/`).
pub const CATALOG_ROUTE: &str = "/cgi-bin/catalog";
/// The public route of checkout.
pub const CHECKOUT_ROUTE: &str = "/cgi-bin/checkout";

/// Whether the images can be built here: a static busybox to copy in.
pub fn check() -> Result {
    let output = std::process::Command::new("file")
        .args(["-L", BUSYBOX])
        .output()
        .map_err(|e| Failure::other(format!("cannot run `file` to check {BUSYBOX}: {e}")))?;
    if String::from_utf8_lossy(&output.stdout).contains("statically linked") {
        Ok(())
    } else {
        Err(Failure::other(format!(
            "the container demo builds its images from a static busybox, and {BUSYBOX} is not one; install Debian's busybox-static (`.ci/docker.sh start` installs it and starts an engine)"
        )))
    }
}

/// Writes what every service's image is made of into `services/<name>`:
/// the Dockerfile, busybox with its applets, and the health file.
pub fn scaffold(dir: &Path, service: &str) -> Result {
    let root = dir.join("services").join(service);
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(BUSYBOX, bin.join("busybox"))?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    std::fs::write(root.join("Dockerfile"), DOCKERFILE)?;
    std::fs::create_dir_all(root.join("www/cgi-bin"))?;
    std::fs::write(root.join("www/healthz"), "ok\n")?;
    Ok(())
}

/// The head of a CGI answer: JSON, and the slot that served it.
const HEAD: &str =
    "printf 'Content-Type: application/json\\nx-served-slot: %s\\n\\n' \"$HIFI_SLOT\"";

/// The catalog's script (its path in the repository, its text).
pub fn catalog(items: &str) -> (&'static str, String) {
    (
        "services/catalog/www/cgi-bin/catalog",
        format!(
            "#!/bin/sh\n# The catalog: its items, and the prices kept beside it.\nITEMS='{items}'\n{HEAD}\nprintf '{{\"service\": \"catalog\", \"slot\": \"%s\", \"items\": %s, \"prices\": %s}}\\n' \"$HIFI_SLOT\" \"$ITEMS\" \"$(cat ../../prices.json)\"\n"
        ),
    )
}

/// Checkout's script.
pub fn checkout(methods: &str) -> (&'static str, String) {
    (
        "services/checkout/www/cgi-bin/checkout",
        format!(
            "#!/bin/sh\n# Checkout: the ways to pay.\nMETHODS='{methods}'\n{HEAD}\nprintf '{{\"service\": \"checkout\", \"slot\": \"%s\", \"methods\": %s}}\\n' \"$HIFI_SLOT\" \"$METHODS\"\n"
        ),
    )
}

/// The gateway's script: calls catalog and checkout through `HIFI_URL_*`,
/// passing `x-hifi-slot` and the user's cookie along so one user's request
/// never mixes releases. `broken`: its routes fail, its health passes.
pub fn gateway(broken: bool) -> (&'static str, String) {
    let guard = if broken {
        "# v2 \"optimisation\": the response cache is not ready yet.\nprintf 'Status: 500 Internal Server Error\\nContent-Type: application/json\\nx-served-slot: %s\\n\\n{\"error\": \"cache not ready\", \"slot\": \"%s\"}\\n' \"$HIFI_SLOT\" \"$HIFI_SLOT\"\nexit 0\n"
    } else {
        ""
    };
    (
        "services/gateway/www/cgi-bin/index.cgi",
        format!(
            r#"#!/bin/sh
# The gateway: the shop's front page, made of what catalog and checkout say.
SLOT="${{HTTP_X_HIFI_SLOT:-$HIFI_SLOT}}"
call() {{
    if [ -n "$HTTP_COOKIE" ]; then
        ../../bin/busybox wget -q -O - --header "x-hifi-slot: $SLOT" --header "cookie: $HTTP_COOKIE" "$1"
    else
        ../../bin/busybox wget -q -O - --header "x-hifi-slot: $SLOT" "$1"
    fi
}}
{guard}if catalog=$(call "$HIFI_URL_CATALOG{CATALOG_ROUTE}") && checkout=$(call "$HIFI_URL_CHECKOUT{CHECKOUT_ROUTE}"); then
    {HEAD}
    printf '{{"gateway": "%s", "catalog": %s, "checkout": %s}}\n' "$HIFI_SLOT" "$catalog" "$checkout"
else
    printf 'Status: 500 Internal Server Error\nContent-Type: application/json\nx-served-slot: %s\n\n{{"error": "a peer did not answer", "slot": "%s"}}\n' "$HIFI_SLOT" "$HIFI_SLOT"
fi
"#
        ),
    )
}

/// Writes a script with its executable bit.
pub fn write_script(dir: &Path, (path, text): (&str, String)) -> Result {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, text)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
