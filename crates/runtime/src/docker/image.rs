//! Images: building one from a directory, and asking whether an id still
//! exists or what id a tag points to now.
//!
//! A build sends the directory as a tar stream (made on a blocking thread
//! while it is sent, so a large context never sits in memory whole) to the
//! engine's classic builder, appends the builder's output to a log file and
//! returns the image **id**. hifi records that id and runs it, never the
//! tag: a tag can be re-pointed by the next build, an id cannot.
//!
//! Build steps (`RUN`) use host networking like the containers, so no
//! bridge network is ever needed. The context is an export of one service
//! version (its committed files only), less what its `.dockerignore` leaves
//! out (`ignore`), packed in name order so the same files always make the
//! same bytes.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::BuildImageOptions;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::engine::{Engine, is_not_found};
use super::ignore::{self, DockerIgnore};
use crate::error::{Error, Result};

/// Upper bound for one image build, from sending the context to the last
/// line of output: a hung builder must not hang hifi.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Size of the chunks the build context is sent in.
const CHUNK: usize = 64 * 1024;

/// The content id of an image, `sha256:<64 hex digits>`: what hifi records
/// and runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageId(String);

impl ImageId {
    /// `Some` if `text` is an image id (`sha256:` and 64 lowercase hex
    /// digits); a tag or a short id is not.
    pub fn parse(text: &str) -> Option<ImageId> {
        let hex = text.strip_prefix("sha256:")?;
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| ImageId(text.to_owned()))
    }

    /// The id, `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ImageId {
    type Error = String;

    fn try_from(text: String) -> Result<ImageId, String> {
        ImageId::parse(&text).ok_or_else(|| format!("`{text}` is not an image id (sha256:...)"))
    }
}

impl From<ImageId> for String {
    fn from(id: ImageId) -> String {
        id.0
    }
}

/// The tag hifi gives the image of one service version:
/// `hifi/<project>/<service>:<version>`. Names are lowercased and anything a
/// repository or tag cannot hold becomes `-` (hifi's own names already fit).
pub fn image_tag(project: &str, service: &str, version: &str) -> String {
    let repo = |s: &str| -> String {
        let mapped: String = s
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .collect();
        match mapped.trim_matches('-') {
            "" => "x".to_owned(),
            trimmed => trimmed.to_owned(),
        }
    };
    let mut tag: String = version
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .take(128)
        .collect();
    // A tag starts with a letter, digit or `_`.
    if !tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        tag = format!("_{}", tag.get(..127).unwrap_or(&tag));
    }
    format!("hifi/{}/{}:{tag}", repo(project), repo(service))
}

/// Builds an image from the directory `context` with the Dockerfile at
/// `dockerfile` (relative to `context`, e.g. `Dockerfile`), tags it `tag`
/// (see [`image_tag`]), appends the build output to `log` and returns the
/// image id.
///
/// The engine's build cache applies: building an unchanged context again
/// returns the same id.
pub async fn build_image(
    engine: &Engine,
    context: &Path,
    dockerfile: &Path,
    tag: &str,
    log: &Path,
) -> Result<ImageId> {
    let log_error = |source| Error::Log {
        instance: format!("the build of {tag}"),
        path: log.to_path_buf(),
        source,
    };
    if !context.is_dir() {
        return Err(Error::BuildContext {
            dir: context.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let mut out = open_log(log).map_err(log_error)?;
    writeln!(
        out,
        "==> hifi: building image {tag} from {} ({})",
        context.display(),
        dockerfile.display()
    )
    .map_err(log_error)?;

    let docker = engine.client().await?.clone().with_timeout(BUILD_TIMEOUT);
    let options = BuildImageOptions {
        dockerfile: dockerfile.to_string_lossy().into_owned(),
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        // Containers of hifi never get a bridge: neither do build steps.
        networkmode: Some("host".to_owned()),
        ..Default::default()
    };
    let (body, packer) = context_stream(context.to_path_buf(), dockerfile.to_path_buf());
    let build = async {
        let mut stream = docker.build_image(options, None, Some(bollard::body_try_stream(body)));
        let mut id = None;
        // Ok(the builder's words) or Err(the engine could not be reached).
        let mut failure: Option<Result<String, Error>> = None;
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                // How bollard hands over the builder's own error line.
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    failure = Some(Ok(error));
                    break;
                }
                Err(e) => {
                    failure = Some(match engine.failed("build an image", e) {
                        Error::Docker { message, .. } => Ok(message),
                        unreachable => Err(unreachable),
                    });
                    break;
                }
            };
            if let Some(text) = info.stream {
                out.write_all(text.as_bytes()).map_err(log_error)?;
            }
            if let Some(status) = info.status {
                writeln!(out, "{}", status.trim_end()).map_err(log_error)?;
            }
            if let Some(detail) = info.error_detail {
                failure = Some(Ok(detail.message.unwrap_or_else(|| "unknown error".into())));
            }
            if let Some(found) = info.aux.and_then(|aux| aux.id) {
                id = Some(found);
            }
        }
        Ok::<_, Error>((id, failure))
    };
    let outcome = tokio::time::timeout(BUILD_TIMEOUT, build).await;
    // A file that could not be read explains a build that broke off better
    // than the engine's "unexpected EOF". (A broken pipe only means the
    // engine stopped reading: its own error says why.)
    if let Ok(Err(e)) = packer.await
        && !matches!(&e, Error::BuildContext { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    {
        let _ = writeln!(out, "hifi: {e}");
        return Err(e);
    }
    let (id, failure) = match outcome {
        Ok(result) => result?,
        Err(_elapsed) => {
            return Err(Error::Build {
                tag: tag.to_owned(),
                reason: format!("no end within {}s", BUILD_TIMEOUT.as_secs()),
                log: log.to_path_buf(),
            });
        }
    };
    match failure {
        Some(Ok(reason)) => {
            let _ = writeln!(out, "{}", reason.trim_end());
            return Err(Error::Build {
                tag: tag.to_owned(),
                reason: reason.trim().to_owned(),
                log: log.to_path_buf(),
            });
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "hifi: {e}");
            return Err(e);
        }
        None => {}
    }
    // The classic builder reports the id at the end; an engine that does
    // not is asked what the tag now points to.
    let id = match id.as_deref().and_then(ImageId::parse) {
        Some(id) => id,
        None => image_id(engine, tag).await?.ok_or_else(|| Error::Build {
            tag: tag.to_owned(),
            reason: "the engine reported success but the tag names no image".into(),
            log: log.to_path_buf(),
        })?,
    };
    let _ = writeln!(out, "==> hifi: built {tag} as {id}");
    Ok(id)
}

/// Whether the image `id` is in the engine: how a caller checks that a
/// recorded id can still be run.
pub async fn image_exists(engine: &Engine, id: &ImageId) -> Result<bool> {
    Ok(image_id(engine, id.as_str()).await?.as_ref() == Some(id))
}

/// The id of the image `reference` (a tag such as `hifi/shop/catalog:v1`, or
/// an id) names now; `None` if it names none.
pub async fn image_id(engine: &Engine, reference: &str) -> Result<Option<ImageId>> {
    let docker = engine.client().await?;
    match docker.inspect_image(reference).await {
        Ok(image) => Ok(image.id.as_deref().and_then(ImageId::parse)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(engine.failed(format!("inspect image {reference}"), e)),
    }
}

/// How long a push may take.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Pushes image `id` to `repository` (`registry.example.com/shop/catalog`)
/// through the engine, its progress appended to `log`, and returns the
/// digest the registry gave it (`sha256:…`): what a cluster pulls it by,
/// `<repository>@<digest>`, so it runs exactly these bytes. The image is
/// tagged `<repository>:<12 digits of its id>` for the push.
pub async fn push_image(
    engine: &Engine,
    id: &ImageId,
    repository: &str,
    log: &Path,
) -> Result<String> {
    let docker = engine.client().await?;
    let tag = id
        .as_str()
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect::<String>();
    let reference = format!("{repository}:{tag}");
    let failed = |reason: String| Error::Push {
        image: id.to_string(),
        repository: repository.to_owned(),
        reason,
        log: log.to_path_buf(),
    };
    docker
        .tag_image(
            id.as_str(),
            Some(bollard::query_parameters::TagImageOptions {
                repo: Some(repository.to_owned()),
                tag: Some(tag.clone()),
            }),
        )
        .await
        .map_err(|e| engine.failed(format!("tag image {id} as {reference}"), e))?;
    let mut out = open_log(log).map_err(|e| failed(format!("cannot open the log: {e}")))?;
    let _ = writeln!(out, "==> hifi: pushing {id} as {reference}");
    let pushing = docker.push_image(
        repository,
        Some(bollard::query_parameters::PushImageOptions {
            tag: Some(tag.clone()),
            ..Default::default()
        }),
        None,
    );
    let mut pushing = std::pin::pin!(pushing);
    let outcome = tokio::time::timeout(PUSH_TIMEOUT, async {
        while let Some(item) = pushing.next().await {
            let info = item.map_err(|e| e.to_string())?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(error);
            }
            if let Some(status) = info.status {
                let _ = writeln!(out, "{status}");
            }
        }
        Ok(())
    })
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Err(failed(reason)),
        Err(_) => return Err(failed("it did not finish within 30 minutes".to_owned())),
    }
    let inspected = docker
        .inspect_image(&reference)
        .await
        .map_err(|e| engine.failed(format!("inspect image {reference}"), e))?;
    let prefix = format!("{repository}@");
    let digest = inspected
        .repo_digests
        .unwrap_or_default()
        .into_iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_owned))
        .filter(|d| d.starts_with("sha256:"))
        .ok_or_else(|| {
            failed("the engine reported success but knows no digest for it".to_owned())
        })?;
    let _ = writeln!(out, "==> hifi: pushed {id} as {repository}@{digest}");
    Ok(digest)
}

fn open_log(path: &Path) -> io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// The tar stream of `dir`, made on a blocking thread as it is consumed, and
/// the thread's outcome.
fn context_stream(
    dir: PathBuf,
    dockerfile: PathBuf,
) -> (
    impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static,
    tokio::task::JoinHandle<Result<()>>,
) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let packer = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let packed = pack(&dir, &dockerfile, &mut writer).and_then(|()| writer.flush_chunk());
        match packed {
            Ok(()) => Ok(()),
            Err(e) => {
                // End the body with an error so the request is aborted, not
                // sent as a truncated context.
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(Error::BuildContext { dir, source: e })
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (stream, packer)
}

/// Writes `dir` as a tar archive, less what its `.dockerignore` leaves out
/// (the Dockerfile and `.dockerignore` always go): entries in name order,
/// symlinks kept as links (as `docker build` does), ownership and times
/// left out, so the same files always make the same context.
fn pack(dir: &Path, dockerfile: &Path, out: &mut ChannelWriter) -> io::Result<()> {
    let ignore = DockerIgnore::read(dir)?;
    let always = [
        dockerfile
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned(),
        ignore::FILE.to_owned(),
    ];
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    pack_dir(&mut tar, dir, Path::new(""), &ignore, &always)?;
    tar.finish()
}

/// Appends the entries of `root/rel` (and below) that are not left out.
/// Patterns see names as text (a name that is not UTF-8 is matched with
/// its invalid bytes replaced); the archive keeps them as they are.
fn pack_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    ignore: &DockerIgnore,
    always: &[String],
) -> io::Result<()> {
    let mut entries = std::fs::read_dir(root.join(rel))?.collect::<io::Result<Vec<_>>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = rel.join(entry.file_name());
        let text = path.to_string_lossy();
        let excluded = ignore.excludes(&text) && !always.iter().any(|a| *a == text);
        if entry.file_type()?.is_dir() {
            if !excluded {
                tar.append_dir(&path, entry.path())?;
            }
            // Below a directory left out, only an exception (or the
            // Dockerfile) can bring a path back.
            let inside = format!("{text}/");
            if !excluded || ignore.has_exceptions() || always.iter().any(|a| a.starts_with(&inside))
            {
                pack_dir(tar, root, &path, ignore, always)?;
            }
        } else if !excluded {
            tar.append_path_with_name(entry.path(), &path)?;
        }
    }
    Ok(())
}

/// A `Write` that sends what it is given as chunks into a channel.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the engine stopped reading the build context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for ChannelWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelWriter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_full_sha256_digests_only() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(ImageId::parse(&format!("sha256:{hex}")).is_some());
        assert!(ImageId::parse(&hex).is_none());
        assert!(ImageId::parse("sha256:0123").is_none());
        assert!(ImageId::parse(&format!("sha256:{}", hex.to_uppercase())).is_none());
        assert!(ImageId::parse("hifi/shop/catalog:v1").is_none());
        let id: ImageId = serde_json::from_str(&format!("\"sha256:{hex}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            format!("\"sha256:{hex}\"")
        );
        assert!(serde_json::from_str::<ImageId>("\"latest\"").is_err());
    }

    /// The paths `pack` puts in the context of `dir`.
    fn packed(dir: &Path, dockerfile: &str) -> Vec<String> {
        let ignore = DockerIgnore::read(dir).unwrap();
        let always = [dockerfile.to_owned(), ignore::FILE.to_owned()];
        let mut tar = tar::Builder::new(Vec::new());
        pack_dir(&mut tar, dir, Path::new(""), &ignore, &always).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_context_leaves_out_what_dockerignore_lists_but_never_the_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        };
        for path in [
            "b.txt",
            "a.txt",
            "build/Dockerfile",
            "build/notes.md",
            "tmp/x.log",
        ] {
            write(path);
        }
        std::fs::write(dir.path().join(".dockerignore"), "build\ntmp\n").unwrap();
        // In name order; the excluded directory is entered only for the
        // Dockerfile, which always goes, as does `.dockerignore`.
        assert_eq!(
            packed(dir.path(), "build/Dockerfile"),
            [".dockerignore", "a.txt", "b.txt", "build/Dockerfile"]
        );
        // Without a .dockerignore, everything.
        std::fs::remove_file(dir.path().join(".dockerignore")).unwrap();
        assert_eq!(packed(dir.path(), "build/Dockerfile").len(), 7);
    }

    #[test]
    fn tags_are_lowercase_repositories_under_hifi() {
        assert_eq!(
            image_tag("shop", "catalog", "v1.2"),
            "hifi/shop/catalog:v1.2"
        );
        assert_eq!(
            image_tag("Shop", "Cat alog", "a/b+c"),
            "hifi/shop/cat-alog:a-b-c"
        );
        assert_eq!(image_tag("-x_", "é", ".v"), "hifi/x/x:_.v");
    }
}
